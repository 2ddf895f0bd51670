"""Hyperliquid: hourly funding scaled to 8 h, index-aligned contexts, POST bodies and backfill."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sources import ParseError, SourceError
from bot.sources._futures import funding_history
from bot.sources.hyperliquid import HyperliquidSource, parse_asset_contexts, parse_funding_history
from tests.harness.exchanges import (
    NOW,
    app_settings,
    by_series,
    client,
    json_values,
    latest,
    paths,
    venue_settings,
)
from tests.harness.fake_source import Answer, FakeSource
from tests.harness.files import fixture_json, fixture_text
from tests.harness.payloads import mutate


def fx(name: str) -> Any:
    return fixture_json("hyperliquid", name)


# parsing -----------------------------------------------------------------------------------------
def test_contexts_align_with_the_universe_by_index() -> None:
    contexts = parse_asset_contexts(fx("meta_and_asset_ctxs.json"), ["btc", "eth", "sol"])
    assert contexts["btc"].rate == 0.0000125
    assert (contexts["eth"].mark, contexts["eth"].oi_coins) == (3861.4, 712054.4128)
    assert contexts["sol"].mark == 186.41


def test_a_coin_missing_from_the_universe_is_an_error() -> None:
    with pytest.raises(ParseError, match="DOGE is not in the universe"):
        parse_asset_contexts(fx("meta_and_asset_ctxs.json"), ["btc", "doge"])


def test_a_delisted_coin_is_refused() -> None:
    with pytest.raises(ParseError, match="MATIC is delisted"):
        parse_asset_contexts(fx("meta_and_asset_ctxs.json"), ["matic"])


def test_a_relisted_coin_is_read_from_its_live_entry() -> None:
    payload = fx("meta_and_asset_ctxs.json")
    payload[0]["universe"].append({"name": "MATIC", "szDecimals": 1, "maxLeverage": 10})
    payload[1].append(payload[1][2] | {"markPx": "0.21"})
    assert parse_asset_contexts(payload, ["matic"])["matic"].mark == 0.21


def test_misaligned_lists_are_refused() -> None:
    payload = fx("meta_and_asset_ctxs.json")
    payload[1].pop()
    with pytest.raises(ParseError, match="cannot align"):
        parse_asset_contexts(payload, ["btc"])


def test_null_mid_price_of_other_coins_does_not_matter() -> None:
    payload = fx("meta_and_asset_ctxs.json")
    payload[1][0]["midPx"] = None
    payload[1][0]["impactPxs"] = None
    assert parse_asset_contexts(payload, ["btc"])["btc"].mark == 109850.0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("funding", None, "funding: expected a number, found None"),
        ("funding", "1.25e-05", None),
        ("markPx", "0.0", "markPx: expected a positive number"),
        ("openInterest", "-3", "openInterest: expected a positive number"),
        ("openInterest", True, "openInterest: expected a number, found True"),
    ],
)
def test_fields_are_checked(field: str, value: Any, reason: str | None) -> None:
    payload = fx("meta_and_asset_ctxs.json")
    payload[1][0][field] = value
    if reason is None:
        assert parse_asset_contexts(payload, ["btc"])["btc"].rate == 0.0000125
        return
    with pytest.raises(ParseError, match=rf"^hyperliquid: assetCtxs\[0\] \(BTC\)\.{reason}"):
        parse_asset_contexts(payload, ["btc"])


def test_funding_history_snaps_jittered_hours() -> None:
    settlements = parse_funding_history(fx("funding_history_btc.json"), "btc", NOW)
    assert len(settlements) == 24
    assert settlements[0].ts == datetime(2025, 10, 31, 12, tzinfo=UTC)
    assert all(s.ts.minute == 0 and s.ts.second == 0 for s in settlements)


def test_hourly_history_is_multiplied_by_eight_even_across_a_gap() -> None:
    settlements = parse_funding_history(fx("funding_history_btc.json"), "btc", NOW)
    gappy = settlements[:5] + settlements[7:]
    points = funding_history("btc", "hyperliquid", gappy, 1.0, fixed=True)
    assert points[1].value == pytest.approx(0.0001)
    assert points[5].value == pytest.approx(8 * settlements[7].rate)


def test_empty_history_is_no_points() -> None:
    assert parse_funding_history(fx("empty.json"), "btc", NOW) == []


def test_another_coin_in_the_history_is_refused() -> None:
    payload = fx("funding_history_btc.json")
    payload[3]["coin"] = "ETH"
    with pytest.raises(ParseError, match=r"fundingHistory\[3\]\.coin: expected 'BTC'"):
        parse_funding_history(payload, "btc", NOW)


# over HTTP ----------------------------------------------------------------------------------------
async def test_poll_posts_one_request_and_scales_hourly_funding_to_eight_hours() -> None:
    async with FakeSource() as src, client() as http:
        src.route("POST", "/info", body=fx("meta_and_asset_ctxs.json"))
        points = await HyperliquidSource(venue_settings(src), app_settings()).poll(http, NOW)
    assert latest(points) == pytest.approx(
        {
            "funding.btc.hyperliquid": 0.0001,
            "oi.btc.hyperliquid": 29876.54321 * 109850.0,
            "price.btc.hyperliquid": 109850.0,
            "funding.eth.hyperliquid": 8 * -0.0000045913,
            "oi.eth.hyperliquid": 712054.4128 * 3861.4,
            "price.eth.hyperliquid": 3861.4,
        }
    )
    assert {p.ts for p in points} == {NOW}
    (request,) = src.requests
    assert request.method == "POST"
    assert json.loads(request.body) == {"type": "metaAndAssetCtxs"}
    assert request.headers["Content-Type"] == "application/json"


async def test_a_422_refusal_is_permanent() -> None:
    async with FakeSource() as src, client() as http:
        body = fixture_text("hyperliquid", "error_422.txt")
        src.route("POST", "/info", body=body, status=422)
        with pytest.raises(SourceError, match="HTTP 422") as caught:
            await HyperliquidSource(venue_settings(src, retries=2), app_settings()).poll(http, NOW)
    assert caught.value.permanent


async def test_503_then_success_is_retried() -> None:
    async with FakeSource() as src, client() as http:
        src.route_sequence(
            "/info", [Answer("upstream", status=503), fx("meta_and_asset_ctxs.json")], method="POST"
        )
        points = await HyperliquidSource(venue_settings(src, retries=1), app_settings()).poll(
            http, NOW
        )
    assert len(points) == 6


async def test_429_is_retried() -> None:
    async with FakeSource() as src, client() as http:
        src.route_sequence(
            "/info", [Answer("", status=429), fx("meta_and_asset_ctxs.json")], method="POST"
        )
        source = HyperliquidSource(venue_settings(src, retries=1), app_settings())
        assert len(await source.poll(http, NOW)) == 6
    assert len(src.requests) == 2


async def test_an_html_page_is_a_parse_error() -> None:
    async with FakeSource() as src, client() as http:
        page = fixture_text("hyperliquid", "maintenance.html")
        src.route("POST", "/info", body=page, content_type="text/html")
        with pytest.raises(ParseError, match="expected JSON"):
            await HyperliquidSource(venue_settings(src), app_settings()).poll(http, NOW)


# backfill -----------------------------------------------------------------------------------------
async def test_backfill_posts_funding_history_from_since() -> None:
    since = datetime(2025, 10, 31, tzinfo=UTC)
    async with FakeSource() as src, client() as http:
        src.route_sequence(
            "/info",
            [fx("meta_and_asset_ctxs.json"), fx("funding_history_btc.json")],
            method="POST",
        )
        source = HyperliquidSource(venue_settings(src), app_settings(["btc"]))
        points = by_series(await source.backfill(http, NOW, since))
    funding = points["funding.btc.hyperliquid"]
    assert len(funding) == 25
    assert funding[1][1] == pytest.approx(0.0001)
    assert "oi.btc.hyperliquid" in points  # the current snapshot only: no OI history offered
    history = json.loads(src.requests[1].body)
    assert history == {
        "type": "fundingHistory",
        "coin": "BTC",
        "startTime": int(since.timestamp() * 1000),
        "endTime": int(NOW.timestamp() * 1000),
    }


async def test_backfill_pages_forward_and_reaches_the_present_within_budget() -> None:
    def page(first: datetime) -> list[dict[str, Any]]:
        return [
            {
                "coin": "BTC",
                "fundingRate": "0.0000125",
                "premium": "-0.0002",
                "time": int((first + timedelta(hours=i)).timestamp() * 1000) + 17,
            }
            for i in range(500)
        ]

    since = datetime(2020, 1, 1, tzinfo=UTC)
    earliest = NOW - timedelta(hours=10 * 500)
    async with FakeSource() as src, client() as http:
        src.route_sequence(
            "/info",
            [fx("meta_and_asset_ctxs.json"), page(earliest), []],
            method="POST",
        )
        source = HyperliquidSource(venue_settings(src), app_settings(["btc"]))
        await source.backfill(http, NOW, since)
    bodies = [json.loads(r.body) for r in src.requests[1:]]
    assert bodies[0]["startTime"] == int(earliest.timestamp() * 1000)
    assert bodies[1]["startTime"] == int(
        (earliest + timedelta(hours=499, minutes=1)).timestamp() * 1000
    )
    assert len(bodies) == 2


# properties ---------------------------------------------------------------------------------------
PARSERS: dict[str, Callable[[Any], list[float]]] = {
    "meta_and_asset_ctxs.json": lambda p: [
        v
        for c in parse_asset_contexts(p, ["btc", "eth"]).values()
        for v in (c.rate, c.mark, c.oi_coins, c.oi_usd)
    ],
    "funding_history_btc.json": lambda p: [
        x.value
        for x in funding_history(
            "btc", "hyperliquid", parse_funding_history(p, "btc", NOW), 1.0, fixed=True
        )
    ],
}


@settings(deadline=None, max_examples=150)
@given(name=st.sampled_from(sorted(PARSERS)), path=paths, value=json_values)
def test_mutated_payloads_only_ever_raise_parse_error(
    name: str, path: list[int], value: Any
) -> None:
    payload = mutate(fx(name), path, value)
    try:
        values = PARSERS[name](payload)
    except ParseError:
        return
    assert all(math.isfinite(v) for v in values)


@settings(deadline=None, max_examples=150)
@given(payload=json_values)
def test_arbitrary_json_only_ever_raises_parse_error(payload: Any) -> None:
    for parse in PARSERS.values():
        with contextlib.suppress(ParseError):
            parse(payload)
