"""Binance USD-M futures: strict parsing of real-shaped payloads, the HTTP path, and backfill."""

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
from bot.sources._futures import Settlement, funding_history
from bot.sources._paging import MAX_PAGES, collect_pages
from bot.sources.binance import (
    BinanceSource,
    parse_funding_history,
    parse_funding_info,
    parse_oi_history,
    parse_open_interest,
    parse_premium_index,
)
from tests.harness.exchanges import (
    NOW,
    app_settings,
    assert_sane,
    by_series,
    client,
    json_values,
    latest,
    paths,
    venue_settings,
)
from tests.harness.fake_source import Answer, FakeSource
from tests.harness.files import SHARED_DATA, fixture_json, fixture_text
from tests.harness.payloads import mutate

MINUTE = datetime(2025, 11, 1, 11, 59, tzinfo=UTC)
BTC_MARK = 109874.12345678
ETH_MARK = 3862.41


def fx(name: str) -> Any:
    return fixture_json("binance", name)


def shared_funding() -> list[tuple[datetime, float]]:
    lines = (SHARED_DATA / "funding_btc_binance_2025-10.csv").read_text().splitlines()[1:]
    return [
        (datetime.fromisoformat(ts.replace("Z", "+00:00")), float(value))
        for _, ts, value in (line.split(",") for line in lines)
    ]


# parsing -----------------------------------------------------------------------------------------
def test_premium_index_gives_rate_mark_and_the_minute_of_binance_time() -> None:
    mark = parse_premium_index(fx("premium_index_btc.json"), "btc", NOW)
    assert (mark.ts, mark.rate, mark.mark) == (MINUTE, 0.0000642, BTC_MARK)


def test_premium_index_accepts_a_time_in_seconds() -> None:
    payload = fx("premium_index_btc.json")
    payload["time"] = payload["time"] // 1000
    assert parse_premium_index(payload, "btc", NOW).ts == MINUTE


def test_open_interest_is_in_coins() -> None:
    assert parse_open_interest(fx("open_interest_eth.json"), "eth", NOW) == 2051337.118


def test_funding_info_lists_only_adjusted_symbols() -> None:
    payload = fx("funding_info.json")
    assert parse_funding_info(payload, ["btc", "eth"]) == {}
    assert parse_funding_info(payload, ["btc", "blz", "zk"]) == {"blz": 4.0, "zk": 1.0}


def test_funding_history_snaps_jittered_times_and_matches_the_shared_csv() -> None:
    settlements = parse_funding_history(fx("funding_history_btc.json"), "btc", NOW)
    points = funding_history("btc", "binance", settlements, 8.0)
    assert [(p.ts, p.value) for p in points] == shared_funding()
    assert {p.series for p in points} == {"funding.btc.binance"}


def test_negative_streak_of_october_16_to_19_survives_parsing() -> None:
    settlements = parse_funding_history(fx("funding_history_btc.json"), "btc", NOW)
    window = [
        s.rate
        for s in settlements
        if datetime(2025, 10, 16, tzinfo=UTC) <= s.ts <= datetime(2025, 10, 19, tzinfo=UTC)
    ]
    assert len(window) == 10
    assert all(rate < 0 for rate in window)


def test_four_hour_settlements_are_doubled_to_eight_hours() -> None:
    start = datetime(2025, 10, 1, tzinfo=UTC)
    rows = [Settlement(start + timedelta(hours=4 * i), 0.0001) for i in range(4)]
    points = funding_history("blz", "binance", rows, 8.0)
    assert [p.value for p in points] == pytest.approx([0.0002] * 4)


def test_a_missing_settlement_falls_back_to_the_stated_interval() -> None:
    start = datetime(2025, 10, 1, tzinfo=UTC)
    times = [start, start + timedelta(hours=8), start + timedelta(hours=24)]
    points = funding_history("btc", "binance", [Settlement(t, 0.0001) for t in times], 8.0)
    assert [p.value for p in points] == pytest.approx([0.0001] * 3)


def test_oi_history_reads_usd_with_string_or_number_timestamps() -> None:
    points = parse_oi_history(fx("oi_history_btc.json"), "btc", NOW)
    assert len(points) == 24
    assert points[0] == (datetime(2025, 10, 31, 12, tzinfo=UTC), 9418798861.24999237)
    assert points[-1][0] == datetime(2025, 11, 1, 11, tzinfo=UTC)
    assert all(5e9 < usd < 2e10 for _, usd in points)


def test_empty_history_is_no_points_but_an_empty_snapshot_is_an_error() -> None:
    assert parse_funding_history(fx("empty.json"), "btc", NOW) == []
    with pytest.raises(ParseError, match="premiumIndex BTCUSDT: expected an object, found list"):
        parse_premium_index(fx("empty.json"), "btc", NOW)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("error_invalid_symbol.json", "error -1121: 'Invalid symbol.'"),
        ("geo_451.json", "error 0: .Service unavailable from a restricted location"),
        ("rate_limit_429.json", "error -1003: 'Too many requests"),
    ],
)
def test_error_objects_are_parse_errors_with_the_message(name: str, reason: str) -> None:
    for parse in (parse_funding_history, parse_premium_index, parse_open_interest):
        with pytest.raises(ParseError, match=reason.replace("(", r"\(")):
            parse(fx(name), "btc", NOW)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("lastFundingRate", "", "lastFundingRate: expected a number, found ''"),
        ("lastFundingRate", "NaN", "lastFundingRate: expected a number"),
        ("lastFundingRate", True, "lastFundingRate: expected a number, found True"),
        ("lastFundingRate", "0.75", "beyond"),
        ("markPrice", "0.00000000", "markPrice: expected a positive number"),
        ("markPrice", None, "markPrice: expected a number, found None"),
        ("symbol", "ETHUSDT", "symbol: expected 'BTCUSDT'"),
        ("time", NOW.timestamp() * 1000 + 2 * 3600_000, "future"),
        ("time", "1761998370000.5", "expected an epoch timestamp"),
        ("time", "9" * 400, "expected an epoch timestamp"),
        ("time", 10**400, "expected an epoch timestamp"),
        ("time", -1761998370000, "expected an epoch timestamp"),
        ("time", 1230000000, "timestamp before 2009"),
    ],
)
def test_bad_fields_are_parse_errors_naming_venue_and_field(
    field: str, value: Any, reason: str
) -> None:
    payload = fx("premium_index_btc.json")
    payload[field] = value
    with pytest.raises(ParseError, match=f"^binance: .*{reason}"):
        parse_premium_index(payload, "btc", NOW)


def test_a_missing_field_is_named() -> None:
    payload = fx("open_interest_btc.json")
    del payload["openInterest"]
    with pytest.raises(ParseError, match=r"openInterest BTCUSDT\.openInterest: .*None"):
        parse_open_interest(payload, "btc", NOW)


# over HTTP ----------------------------------------------------------------------------------------
def route_good(src: FakeSource) -> None:
    src.route("GET", "/fapi/v1/fundingInfo", body=fx("funding_info.json"))
    for asset in ("btc", "eth"):
        match = {"symbol": f"{asset.upper()}USDT"}
        src.route(
            "GET", "/fapi/v1/premiumIndex", body=fx(f"premium_index_{asset}.json"), match=match
        )
        src.route(
            "GET", "/fapi/v1/openInterest", body=fx(f"open_interest_{asset}.json"), match=match
        )


async def test_poll_writes_funding_oi_in_usd_and_mark_per_asset() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        points = await BinanceSource(venue_settings(src), app_settings()).poll(http, NOW)
    assert latest(points) == pytest.approx(
        {
            "funding.btc.binance": 0.0000642,
            "oi.btc.binance": 85213.452 * BTC_MARK,
            "price.btc.binance": BTC_MARK,
            "funding.eth.binance": -0.0000312,
            "oi.eth.binance": 2051337.118 * ETH_MARK,
            "price.eth.binance": ETH_MARK,
        }
    )
    assert 9e9 < latest(points)["oi.btc.binance"] < 1e10
    assert {p.ts for p in points} == {MINUTE}
    assert [r.query for r in src.requests_to("/fapi/v1/premiumIndex")] == [
        {"symbol": "BTCUSDT"},
        {"symbol": "ETHUSDT"},
    ]
    assert len(src.requests_to("/fapi/v1/fundingInfo")) == 1


async def test_an_adjusted_interval_from_funding_info_is_applied() -> None:
    info = [{"symbol": "BTCUSDT", "fundingIntervalHours": 4, "disclaimer": False}]
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/fapi/v1/fundingInfo", body=info)
        points = await BinanceSource(venue_settings(src), app_settings(["btc"])).poll(http, NOW)
    assert latest(points)["funding.btc.binance"] == pytest.approx(0.0001284)


async def test_geo_block_451_is_a_permanent_source_error() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/fapi/v1/fundingInfo", body=fx("geo_451.json"), status=451)
        with pytest.raises(SourceError, match="geo-blocked") as caught:
            await BinanceSource(venue_settings(src, retries=3), app_settings()).poll(http, NOW)
    assert caught.value.permanent
    assert len(src.requests_to("/fapi/v1/fundingInfo")) == 1  # a geo block is never retried


async def test_rate_limit_429_is_retried() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        limited = Answer(fx("rate_limit_429.json"), status=429, headers={"Retry-After": "1"})
        src.route_sequence("/fapi/v1/fundingInfo", [limited, fx("funding_info.json")])
        points = await BinanceSource(venue_settings(src, retries=1), app_settings()).poll(http, NOW)
    assert len(src.requests_to("/fapi/v1/fundingInfo")) == 2
    assert len(points) == 6


async def test_an_html_page_instead_of_json_is_a_parse_error() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        page = fixture_text("binance", "maintenance.html")
        src.route("GET", "/fapi/v1/premiumIndex", body=page, content_type="text/html")
        with pytest.raises(ParseError, match="expected JSON"):
            await BinanceSource(venue_settings(src), app_settings()).poll(http, NOW)


async def test_one_bad_asset_fails_the_whole_poll() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        bad = fx("premium_index_eth.json") | {"markPrice": ""}
        src.route_sequence("/fapi/v1/premiumIndex", [fx("premium_index_btc.json"), bad])
        with pytest.raises(ParseError, match=r"premiumIndex ETHUSDT\.markPrice"):
            await BinanceSource(venue_settings(src), app_settings()).poll(http, NOW)


async def test_invalid_symbol_400_is_a_permanent_error() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/fapi/v1/premiumIndex", body=fx("error_invalid_symbol.json"), status=400)
        with pytest.raises(SourceError, match="HTTP 400") as caught:
            await BinanceSource(venue_settings(src), app_settings()).poll(http, NOW)
    assert caught.value.permanent


async def test_open_interest_that_overflows_in_usd_is_a_parse_error() -> None:
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route(
            "GET",
            "/fapi/v1/openInterest",
            body=fx("open_interest_btc.json") | {"openInterest": "1e306"},
        )
        with pytest.raises(ParseError, match="out of range"):
            await BinanceSource(venue_settings(src), app_settings()).poll(http, NOW)


# backfill -----------------------------------------------------------------------------------------
async def test_backfill_reads_settled_funding_and_oi_since_a_date() -> None:
    since = datetime(2025, 10, 1, tzinfo=UTC)
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/fapi/v1/fundingRate", body=fx("funding_history_btc.json"))
        src.route("GET", "/futures/data/openInterestHist", body=fx("oi_history_btc.json"))
        source = BinanceSource(venue_settings(src), app_settings(["btc"]))
        points = by_series(await source.backfill(http, NOW, since))
    assert points["funding.btc.binance"][:-1] == shared_funding()
    assert points["funding.btc.binance"][-1] == (MINUTE, 0.0000642)
    assert len(points["oi.btc.binance"]) == 25
    (funding,) = src.requests_to("/fapi/v1/fundingRate")
    assert funding.query == {
        "symbol": "BTCUSDT",
        "startTime": str(int(since.timestamp() * 1000)),
        "endTime": str(int(NOW.timestamp() * 1000)),
        "limit": "1000",
    }
    (oi,) = src.requests_to("/futures/data/openInterestHist")
    assert oi.query["period"] == "1h"
    assert oi.query["startTime"] == str(int((NOW - timedelta(days=29)).timestamp() * 1000))


async def test_backfill_drops_points_before_since() -> None:
    since = datetime(2025, 10, 20, tzinfo=UTC)
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/fapi/v1/fundingRate", body=fx("funding_history_btc.json"))
        src.route("GET", "/futures/data/openInterestHist", body=fx("empty.json"))
        source = BinanceSource(venue_settings(src), app_settings(["btc"]))
        points = await source.backfill(http, NOW, since)
    assert min(p.ts for p in points) == since
    assert len(by_series(points)["funding.btc.binance"]) == 37


async def test_backfill_pages_forward_until_a_short_page() -> None:
    first = datetime(2024, 1, 1, tzinfo=UTC)
    full: list[dict[str, Any]] = [
        {
            "symbol": "BTCUSDT",
            "fundingTime": int((first + timedelta(hours=8 * i)).timestamp() * 1000) + 3,
            "fundingRate": "0.00010000",
            "markPrice": "42000.1",
        }
        for i in range(1000)
    ]
    after = full[-1]["fundingTime"]
    tail = [dict(full[0], fundingTime=after + 8 * 3600_000 - 3)]
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route_sequence("/fapi/v1/fundingRate", [full, tail])
        src.route("GET", "/futures/data/openInterestHist", body=[])
        source = BinanceSource(venue_settings(src), app_settings(["btc"]))
        points = by_series(await source.backfill(http, NOW, first))
    requests = src.requests_to("/fapi/v1/fundingRate")
    assert len(requests) == 2
    assert int(requests[1].query["startTime"]) == after - 3 + 60_000
    assert len(points["funding.btc.binance"]) == 1002


async def test_backfill_stops_when_a_page_makes_no_progress() -> None:
    full = [
        {
            "symbol": "BTCUSDT",
            "fundingTime": 1700000000000 + 8 * 3600_000 * i,
            "fundingRate": "0.0001",
        }
        for i in range(1000)
    ]
    async with FakeSource() as src, client() as http:
        route_good(src)
        src.route("GET", "/fapi/v1/fundingRate", body=full)
        src.route("GET", "/futures/data/openInterestHist", body=[])
        source = BinanceSource(venue_settings(src), app_settings(["btc"]))
        await source.backfill(http, NOW, datetime(2020, 1, 1, tzinfo=UTC))
    assert len(src.requests_to("/fapi/v1/fundingRate")) == 2  # the same rows again: stop


async def test_paging_stops_at_the_page_budget() -> None:
    calls: list[int] = []

    async def endless(cursor: int) -> tuple[list[int], int | None]:
        calls.append(cursor)
        return [cursor], cursor + 1

    assert await collect_pages(endless, 0, "test") == list(range(MAX_PAGES))
    assert len(calls) == MAX_PAGES


# properties ---------------------------------------------------------------------------------------
PARSERS: dict[str, Callable[[Any], list[float]]] = {
    "premium_index_btc.json": lambda p: [parse_premium_index(p, "btc", NOW).rate],
    "open_interest_btc.json": lambda p: [parse_open_interest(p, "btc", NOW)],
    "funding_info.json": lambda p: list(parse_funding_info(p, ["blz", "zk"]).values()),
    "funding_history_btc.json": lambda p: [
        x.value for x in funding_history("btc", "binance", parse_funding_history(p, "btc", NOW), 8)
    ],
    "oi_history_btc.json": lambda p: [v for _, v in parse_oi_history(p, "btc", NOW)],
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


def test_parsed_points_are_sane() -> None:
    settlements = parse_funding_history(fx("funding_history_btc.json"), "btc", NOW)
    assert_sane(funding_history("btc", "binance", settlements, 8.0))
