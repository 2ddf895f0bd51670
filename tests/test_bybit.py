"""Bybit v5 linear perpetuals: envelopes, string numbers, intervals, the HTTP path and backfill."""

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
from bot.sources.bybit import (
    BybitSource,
    parse_funding_history,
    parse_instrument_hours,
    parse_mark_klines,
    parse_oi_history,
    parse_ticker,
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
    return fixture_json("bybit", name)


# parsing -----------------------------------------------------------------------------------------
def test_ticker_gives_rate_interval_mark_and_usd_open_interest() -> None:
    ticker = parse_ticker(fx("tickers_btc.json"), "btc", NOW)
    assert (ticker.ts, ticker.rate, ticker.hours, ticker.mark) == (
        MINUTE,
        0.00005187,
        8.0,
        109861.5,
    )
    assert ticker.oi_usd == pytest.approx(54012.337 * 109861.5, rel=1e-9)
    assert 5e9 < ticker.oi_usd < 7e9


def test_a_four_hour_symbol_doubles_when_normalised() -> None:
    ticker = parse_ticker(fx("tickers_4h.json"), "ena", NOW)
    assert (ticker.rate, ticker.hours) == (0.0001, 4.0)


def test_an_older_ticker_without_interval_or_usd_value_is_still_read() -> None:
    ticker = parse_ticker(fx("tickers_old_shape.json"), "btc", NOW)
    assert ticker.hours is None
    assert ticker.oi_usd == pytest.approx(54012.337 * 109861.5)


def test_instruments_give_the_interval_in_minutes() -> None:
    assert parse_instrument_hours(fx("instruments_btc.json"), "btc") == 8.0


def test_funding_history_is_newest_first_on_the_wire_and_oldest_first_parsed() -> None:
    settlements = parse_funding_history(fx("funding_history_btc.json"), "btc", NOW)
    assert len(settlements) == 9
    assert settlements[0].ts == datetime(2025, 10, 29, tzinfo=UTC)
    assert settlements[-1] == Settlement(datetime(2025, 10, 31, 16, tzinfo=UTC), 0.000094)


def test_oi_history_and_klines_align_on_the_hour() -> None:
    coins, cursor = parse_oi_history(fx("oi_history_btc.json"), "btc", NOW)
    opens = parse_mark_klines(fx("mark_kline_btc.json"), "btc", NOW)
    assert (len(coins), cursor) == (24, "")
    assert {ts for ts, _ in coins} == set(opens)
    assert coins[-1][0] == datetime(2025, 11, 1, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("error_rate_limit.json", "retCode 10006: 'Too many visits!'"),
        ("error_unknown_symbol.json", "retCode 10001: 'Not supported symbols'"),
        ("empty.json", "BTCUSDT: symbol not in the answer"),
    ],
)
def test_error_envelopes_and_unknown_symbols_are_parse_errors(name: str, reason: str) -> None:
    with pytest.raises(ParseError, match=f"^bybit: tickers.*{reason}"):
        parse_ticker(fx(name), "btc", NOW)


def test_an_empty_history_is_no_points() -> None:
    assert parse_funding_history(fx("empty.json"), "btc", NOW) == []


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("fundingRate", "", "fundingRate: expected a number, found ''"),
        ("fundingRate", "0.0001%", "fundingRate: expected a number"),
        ("markPrice", "-1", "markPrice: expected a positive number"),
        ("openInterestValue", "NaN", "openInterestValue: expected a number"),
        ("fundingIntervalHour", "0", "fundingIntervalHour: expected a funding interval"),
        ("fundingIntervalHour", "eight", "fundingIntervalHour: expected a number"),
    ],
)
def test_bad_ticker_fields_are_named(field: str, value: Any, reason: str) -> None:
    payload = fx("tickers_btc.json")
    payload["result"]["list"][0][field] = value
    with pytest.raises(ParseError, match=f"^bybit: tickers BTCUSDT.{reason}"):
        parse_ticker(payload, "btc", NOW)


@pytest.mark.parametrize("code", ["0", False, None])
def test_ret_code_must_be_the_number_zero(code: Any) -> None:
    payload = fx("tickers_btc.json") | {"retCode": code}
    with pytest.raises(ParseError, match="retCode"):
        parse_ticker(payload, "btc", NOW)


def test_envelope_time_in_the_future_is_refused() -> None:
    payload = fx("tickers_btc.json") | {"time": int((NOW + timedelta(hours=3)).timestamp() * 1000)}
    with pytest.raises(ParseError, match=r"tickers\.time: timestamp in the future"):
        parse_ticker(payload, "btc", NOW)


# over HTTP ----------------------------------------------------------------------------------------
async def test_poll_normalises_funding_and_writes_usd_oi_per_asset() -> None:
    async with FakeSource() as src, client() as http:
        src.route_sequence("/v5/market/tickers", [fx("tickers_btc.json"), fx("tickers_eth.json")])
        points = await BybitSource(venue_settings(src), app_settings()).poll(http, NOW)
    assert latest(points) == pytest.approx(
        {
            "funding.btc.bybit": 0.00005187,
            "oi.btc.bybit": 54012.337 * 109861.5,
            "price.btc.bybit": 109861.5,
            "funding.eth.bybit": -0.00002963,
            "oi.eth.bybit": 1321774.52 * 3861.77,
            "price.eth.bybit": 3861.77,
        },
        rel=1e-9,
    )
    assert [r.query for r in src.requests_to("/v5/market/tickers")] == [
        {"category": "linear", "symbol": "BTCUSDT"},
        {"category": "linear", "symbol": "ETHUSDT"},
    ]


async def test_a_four_hour_symbol_is_stored_per_eight_hours() -> None:
    async with FakeSource() as src, client() as http:
        src.route("GET", "/v5/market/tickers", body=fx("tickers_4h.json"))
        points = await BybitSource(venue_settings(src), app_settings(["ena"])).poll(http, NOW)
    assert latest(points)["funding.ena.bybit"] == pytest.approx(0.0002)


async def test_missing_interval_is_read_from_instruments_info() -> None:
    async with FakeSource() as src, client() as http:
        src.route("GET", "/v5/market/tickers", body=fx("tickers_old_shape.json"))
        src.route("GET", "/v5/market/instruments-info", body=fx("instruments_btc.json"))
        points = await BybitSource(venue_settings(src), app_settings(["btc"])).poll(http, NOW)
    assert latest(points)["funding.btc.bybit"] == pytest.approx(0.00005187)
    (request,) = src.requests_to("/v5/market/instruments-info")
    assert request.query == {"category": "linear", "symbol": "BTCUSDT"}


async def test_cloudfront_geo_block_is_a_plain_permanent_error() -> None:
    async with FakeSource() as src, client() as http:
        page = fixture_text("bybit", "cloudfront_403.html")
        src.route("GET", "/v5/market/tickers", body=page, status=403, content_type="text/html")
        with pytest.raises(SourceError, match="CloudFront refused this location") as caught:
            await BybitSource(venue_settings(src, retries=2), app_settings()).poll(http, NOW)
    assert caught.value.permanent
    assert not isinstance(caught.value, ParseError)
    assert len(src.requests) == 2  # one per asset, asked together, neither retried


async def test_rate_limit_envelope_with_http_200_fails_the_poll() -> None:
    async with FakeSource() as src, client() as http:
        src.route("GET", "/v5/market/tickers", body=fx("error_rate_limit.json"))
        with pytest.raises(ParseError, match="Too many visits"):
            await BybitSource(venue_settings(src), app_settings()).poll(http, NOW)


async def test_http_429_is_retried() -> None:
    async with FakeSource() as src, client() as http:
        limited = Answer("Too Many Requests", status=429)
        tickers = "/v5/market/tickers"
        src.route_sequence(tickers, [limited, fx("tickers_btc.json")], match={"symbol": "BTCUSDT"})
        src.route("GET", tickers, body=fx("tickers_eth.json"), match={"symbol": "ETHUSDT"})
        points = await BybitSource(venue_settings(src, retries=1), app_settings()).poll(http, NOW)
    assert len(src.requests_to("/v5/market/tickers")) == 3
    assert len(points) == 6


async def test_an_html_page_with_status_200_is_a_parse_error() -> None:
    async with FakeSource() as src, client() as http:
        page = fixture_text("bybit", "maintenance.html")
        src.route("GET", "/v5/market/tickers", body=page, content_type="text/html")
        with pytest.raises(ParseError, match="expected JSON"):
            await BybitSource(venue_settings(src), app_settings()).poll(http, NOW)


async def test_one_unknown_asset_fails_the_whole_poll() -> None:
    async with FakeSource() as src, client() as http:
        src.route_sequence(
            "/v5/market/tickers", [fx("tickers_btc.json"), fx("error_unknown_symbol.json")]
        )
        with pytest.raises(ParseError, match="Not supported symbols"):
            await BybitSource(venue_settings(src), app_settings(["btc", "xyz"])).poll(http, NOW)


# backfill -----------------------------------------------------------------------------------------
def route_history(src: FakeSource) -> None:
    src.route("GET", "/v5/market/tickers", body=fx("tickers_btc.json"))
    src.route("GET", "/v5/market/funding/history", body=fx("funding_history_btc.json"))
    src.route("GET", "/v5/market/open-interest", body=fx("oi_history_btc.json"))
    src.route("GET", "/v5/market/mark-price-kline", body=fx("mark_kline_btc.json"))


async def test_backfill_reads_funding_and_prices_hourly_oi_at_each_hour() -> None:
    since = datetime(2025, 10, 20, tzinfo=UTC)
    async with FakeSource() as src, client() as http:
        route_history(src)
        source = BybitSource(venue_settings(src), app_settings(["btc"]))
        points = by_series(await source.backfill(http, NOW, since))
    assert len(points["funding.btc.bybit"]) == 10  # nine settlements and the current rate
    oi = points["oi.btc.bybit"]
    assert len(oi) == 25
    coins, _ = parse_oi_history(fx("oi_history_btc.json"), "btc", NOW)
    opens = parse_mark_klines(fx("mark_kline_btc.json"), "btc", NOW)
    assert oi[0][0] == coins[0][0]
    assert oi[0][1] == pytest.approx(coins[0][1] * opens[coins[0][0]])
    (funding,) = src.requests_to("/v5/market/funding/history")
    assert funding.query == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "endTime": str(int(NOW.timestamp() * 1000)),
        "limit": "200",
    }
    (interest,) = src.requests_to("/v5/market/open-interest")
    assert interest.query["intervalTime"] == "1h"
    assert interest.query["startTime"] == str(int(since.timestamp() * 1000))
    (kline,) = src.requests_to("/v5/market/mark-price-kline")
    assert (kline.query["interval"], kline.query["limit"]) == ("60", "200")


async def test_backfill_follows_the_oi_cursor_until_it_is_empty() -> None:
    page1 = fx("oi_history_btc.json")
    page1["result"]["nextPageCursor"] = "lastid%3D51200867%26lasttime%3D1761912000"
    page2 = fx("oi_history_btc.json")
    for row in page2["result"]["list"]:
        row["timestamp"] = str(int(row["timestamp"]) - 24 * 3600_000)
    async with FakeSource() as src, client() as http:
        route_history(src)
        src.route_sequence("/v5/market/open-interest", [page1, page2])
        source = BybitSource(venue_settings(src), app_settings(["btc"]))
        await source.backfill(http, NOW, datetime(2025, 10, 1, tzinfo=UTC))
    requests = src.requests_to("/v5/market/open-interest")
    assert "cursor" not in requests[0].query
    assert requests[1].query["cursor"] == "lastid%3D51200867%26lasttime%3D1761912000"
    assert len(requests) == 2


async def test_backfill_pages_funding_backwards_by_end_time() -> None:
    def page(end: datetime) -> dict[str, Any]:
        rows = [
            {
                "symbol": "BTCUSDT",
                "fundingRate": "0.0001",
                "fundingRateTimestamp": str(int((end - timedelta(hours=8 * i)).timestamp() * 1000)),
            }
            for i in range(200)
        ]
        envelope: dict[str, Any] = fx("empty.json")
        return envelope | {"result": {"category": "linear", "list": rows}}

    first_end = datetime(2025, 11, 1, 8, tzinfo=UTC)
    oldest = first_end - timedelta(hours=8 * 199)
    async with FakeSource() as src, client() as http:
        route_history(src)
        src.route_sequence(
            "/v5/market/funding/history", [page(first_end), fx("funding_history_btc.json")]
        )
        source = BybitSource(venue_settings(src), app_settings(["btc"]))
        await source.backfill(http, NOW, datetime(2025, 1, 1, tzinfo=UTC))
    requests = src.requests_to("/v5/market/funding/history")
    assert len(requests) == 2
    assert requests[1].query["endTime"] == str(int(oldest.timestamp() * 1000) - 60_000)


# properties ---------------------------------------------------------------------------------------
PARSERS: dict[str, Callable[[Any], list[float]]] = {
    "tickers_btc.json": lambda p: [parse_ticker(p, "btc", NOW).oi_usd],
    "tickers_old_shape.json": lambda p: [parse_ticker(p, "btc", NOW).rate],
    "instruments_btc.json": lambda p: [parse_instrument_hours(p, "btc")],
    "funding_history_btc.json": lambda p: [
        x.value for x in funding_history("btc", "bybit", parse_funding_history(p, "btc", NOW), 8)
    ],
    "oi_history_btc.json": lambda p: [v for _, v in parse_oi_history(p, "btc", NOW)[0]],
    "mark_kline_btc.json": lambda p: list(parse_mark_klines(p, "btc", NOW).values()),
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
