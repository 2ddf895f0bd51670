"""OKX v5 swaps: string-everything payloads, interval from the schedule, HTTP path and backfill."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sources import ParseError, SourceError
from bot.sources._futures import funding_history
from bot.sources.okx import (
    OkxSource,
    parse_funding_history,
    parse_funding_rate,
    parse_mark_price,
    parse_oi_history,
    parse_open_interest,
)
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

MINUTE = datetime(2025, 11, 1, 11, 59, tzinfo=UTC)


def fx(name: str) -> Any:
    return fixture_json("okx", name)


def ms(ts: datetime) -> str:
    return str(int(ts.timestamp() * 1000))


# parsing -----------------------------------------------------------------------------------------
def test_funding_rate_reads_the_interval_from_the_settlement_schedule() -> None:
    funding = parse_funding_rate(fx("funding_rate_btc.json"), "btc", NOW)
    assert (funding.ts, funding.rate, funding.hours) == (MINUTE, 0.0000412337641124, 8.0)


def test_a_four_hour_schedule_is_read_as_four_hours() -> None:
    payload = fx("funding_rate_btc.json")
    row = payload["data"][0]
    row["nextFundingTime"] = str(int(row["fundingTime"]) + 4 * 3600_000)
    assert parse_funding_rate(payload, "btc", NOW).hours == 4.0


def test_a_schedule_running_backwards_is_refused() -> None:
    payload = fx("funding_rate_btc.json")
    row = payload["data"][0]
    row["nextFundingTime"] = str(int(row["fundingTime"]) - 8 * 3600_000)
    with pytest.raises(ParseError, match="nextFundingTime - fundingTime"):
        parse_funding_rate(payload, "btc", NOW)


def test_open_interest_is_okx_own_usd_figure() -> None:
    assert parse_open_interest(fx("open_interest_btc.json"), "btc", NOW) == 3282107342.5716


def test_mark_price() -> None:
    assert parse_mark_price(fx("mark_price_eth.json"), "eth", NOW) == 3862.05


def test_funding_history_prefers_the_realized_rate() -> None:
    settlements = parse_funding_history(fx("funding_history_btc.json"), "btc", NOW)
    raw = fx("funding_history_btc.json")["data"]
    assert [s.rate for s in reversed(settlements)] == [float(r["realizedRate"]) for r in raw]
    assert settlements[-1].ts == datetime(2025, 10, 31, 16, tzinfo=UTC)


def test_funding_history_without_realized_rate_uses_the_funding_rate() -> None:
    payload = fx("funding_history_btc.json")
    del payload["data"][0]["realizedRate"]
    settlements = parse_funding_history(payload, "btc", NOW)
    assert settlements[-1].rate == float(payload["data"][0]["fundingRate"])


def test_rubik_oi_history_rows_are_arrays_of_strings() -> None:
    points = parse_oi_history(fx("oi_history_btc.json"), NOW)
    assert len(points) == 24
    assert points[-1][0] == datetime(2025, 11, 1, 11, tzinfo=UTC)
    assert all(2e9 < usd < 5e9 for _, usd in points)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("error_50011.json", "code '50011': 'Too Many Requests'"),
        ("error_51001.json", "code '51001': \"Instrument ID or Spread ID doesn't exist.\""),
        ("empty.json", "no data"),
    ],
)
def test_error_codes_and_empty_data_are_parse_errors(name: str, reason: str) -> None:
    for parse in (parse_funding_rate, parse_open_interest, parse_mark_price):
        with pytest.raises(ParseError, match=f"^okx: .*{reason}"):
            parse(fx(name), "btc", NOW)


def test_an_empty_history_is_no_points() -> None:
    assert parse_funding_history(fx("empty.json"), "btc", NOW) == []
    assert parse_oi_history(fx("empty.json"), NOW) == []


@pytest.mark.parametrize("code", [0, None, "1"])
def test_code_must_be_the_string_zero(code: Any) -> None:
    with pytest.raises(ParseError, match="code"):
        parse_mark_price(fx("mark_price_btc.json") | {"code": code}, "btc", NOW)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("fundingRate", "", "fundingRate: expected a number, found ''"),
        ("fundingRate", "1e-4x", "fundingRate: expected a number"),
        ("ts", "", "ts: expected an epoch timestamp"),
        ("fundingTime", ms(NOW + timedelta(days=3)), "fundingTime: timestamp in the future"),
        ("instId", "BTC-USD-SWAP", "instId: expected 'BTC-USDT-SWAP'"),
    ],
)
def test_bad_fields_are_named(field: str, value: Any, reason: str) -> None:
    payload = fx("funding_rate_btc.json")
    payload["data"][0][field] = value
    with pytest.raises(ParseError, match=f"^okx: funding-rate BTC-USDT-SWAP.{reason}"):
        parse_funding_rate(payload, "btc", NOW)


# over HTTP ----------------------------------------------------------------------------------------
def route_good(src: FakeSource) -> None:
    for path, stem in (
        ("/api/v5/public/funding-rate", "funding_rate"),
        ("/api/v5/public/open-interest", "open_interest"),
        ("/api/v5/public/mark-price", "mark_price"),
    ):
        for asset in ("btc", "eth"):
            match = {"instId": f"{asset.upper()}-USDT-SWAP"}
            src.route("GET", path, body=fx(f"{stem}_{asset}.json"), match=match)


async def test_poll_writes_funding_usd_oi_and_mark_per_asset() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        points = await OkxSource(venue_settings(src), app_settings()).poll(http, NOW)
    assert latest(points) == {
        "funding.btc.okx": 0.0000412337641124,
        "oi.btc.okx": 3282107342.5716,
        "price.btc.okx": 109866.3,
        "funding.eth.okx": -0.0000301773225431,
        "oi.eth.okx": 2128834012.4465,
        "price.eth.okx": 3862.05,
    }
    assert {p.ts for p in points} == {MINUTE}
    assert src.requests_to("/api/v5/public/funding-rate")[0].query == {"instId": "BTC-USDT-SWAP"}
    assert src.requests_to("/api/v5/public/open-interest")[1].query == {
        "instType": "SWAP",
        "instId": "ETH-USDT-SWAP",
    }


async def test_rate_limit_50011_with_http_429_is_retried() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        limited = Answer(fx("error_50011.json"), status=429)
        src.route_sequence(
            "/api/v5/public/funding-rate",
            [limited, fx("funding_rate_btc.json")],
            match={"instId": "BTC-USDT-SWAP"},
        )
        points = await OkxSource(venue_settings(src, retries=1), app_settings()).poll(http, NOW)
    assert len(src.requests_to("/api/v5/public/funding-rate")) == 3
    assert len(points) == 6


async def test_rate_limit_that_persists_fails_the_poll() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/api/v5/public/funding-rate", body=fx("error_50011.json"), status=429)
        with pytest.raises(SourceError, match="HTTP 429") as caught:
            await OkxSource(venue_settings(src, retries=1), app_settings()).poll(http, NOW)
    assert not caught.value.permanent


async def test_unknown_instrument_with_http_200_fails_the_poll() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/api/v5/public/funding-rate", body=fx("error_51001.json"))
        with pytest.raises(ParseError, match="51001"):
            await OkxSource(venue_settings(src), app_settings()).poll(http, NOW)


async def test_an_html_page_is_a_parse_error() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        page = fixture_text("okx", "maintenance.html")
        src.route("GET", "/api/v5/public/mark-price", body=page, content_type="text/html")
        with pytest.raises(ParseError, match="expected JSON"):
            await OkxSource(venue_settings(src), app_settings()).poll(http, NOW)


# backfill -----------------------------------------------------------------------------------------
async def test_backfill_reads_realized_funding_and_rubik_oi() -> None:
    since = datetime(2025, 10, 30, tzinfo=UTC)
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/api/v5/public/funding-rate-history", body=fx("funding_history_btc.json"))
        src.route(
            "GET",
            "/api/v5/rubik/stat/contracts/open-interest-history",
            body=fx("oi_history_btc.json"),
        )
        source = OkxSource(venue_settings(src), app_settings(["btc"]))
        points = by_series(await source.backfill(http, NOW, since))
    assert len(points["funding.btc.okx"]) == 7  # Oct 30 00:00 … Oct 31 16:00, and now
    assert len(points["oi.btc.okx"]) == 25
    (funding,) = src.requests_to("/api/v5/public/funding-rate-history")
    assert funding.query == {"instId": "BTC-USDT-SWAP", "after": ms(NOW), "limit": "400"}
    (oi,) = src.requests_to("/api/v5/rubik/stat/contracts/open-interest-history")
    assert oi.query == {
        "instId": "BTC-USDT-SWAP",
        "period": "1H",
        "begin": ms(since),
        "end": ms(NOW),
        "limit": "100",
    }


async def test_backfill_pages_oi_backwards_until_since() -> None:
    def page(newest: datetime) -> dict[str, Any]:
        rows = [
            [ms(newest - timedelta(hours=i)), "2990000.00", "29900.0000", "3260000000.0000"]
            for i in range(100)
        ]
        return {"code": "0", "data": rows, "msg": ""}

    first = datetime(2025, 11, 1, 11, tzinfo=UTC)
    second = first - timedelta(hours=100)
    since = second - timedelta(hours=50)
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/api/v5/public/funding-rate-history", body=fx("empty.json"))
        src.route_sequence(
            "/api/v5/rubik/stat/contracts/open-interest-history", [page(first), page(second)]
        )
        source = OkxSource(venue_settings(src), app_settings(["btc"]))
        points = by_series(await source.backfill(http, NOW, since))
    requests = src.requests_to("/api/v5/rubik/stat/contracts/open-interest-history")
    assert len(requests) == 2
    assert requests[1].query["end"] == str(int(ms(first - timedelta(hours=99))) - 60_000)
    assert points["oi.btc.okx"][0][0] == since
    assert len(points["oi.btc.okx"]) == 151 + 1


# properties ---------------------------------------------------------------------------------------
PARSERS: dict[str, Callable[[Any], list[float]]] = {
    "funding_rate_btc.json": lambda p: [parse_funding_rate(p, "btc", NOW).rate],
    "open_interest_btc.json": lambda p: [parse_open_interest(p, "btc", NOW)],
    "mark_price_btc.json": lambda p: [parse_mark_price(p, "btc", NOW)],
    "funding_history_btc.json": lambda p: [
        x.value for x in funding_history("btc", "okx", parse_funding_history(p, "btc", NOW), 8)
    ],
    "oi_history_btc.json": lambda p: [v for _, v in parse_oi_history(p, NOW)],
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
