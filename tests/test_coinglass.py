"""CoinGlass: string codes, ms timestamps and per-fund flows parse exactly; anything else fails."""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Settings, SourceSettings
from bot.model import Observation
from bot.sources import ParseError, SourceError, registry
from bot.sources.coinglass import PATHS, CoinGlassSource, parse
from bot.sources.http import HttpClient
from tests.harness.fake_source import FakeSource
from tests.harness.files import SHARED_DATA, fixture_json
from tests.harness.payloads import mutate

NOW = datetime(2025, 12, 1, 12, tzinfo=UTC)
KEY = "cg-test-key"


def payload(name: str) -> Any:
    return fixture_json("coinglass", name)


def shared_totals(asset: str) -> dict[date, float]:
    with (SHARED_DATA / "etf_flows_2025-10_2025-11.csv").open() as handle:
        return {
            date.fromisoformat(row["ts"]): float(row["value"])
            for row in csv.DictReader(handle)
            if row["series"] == f"etf.{asset}.net_flow"
        }


def by_series(points: list[Observation], series: str) -> dict[date, float]:
    return {p.ts.date(): p.value for p in points if p.series == series}


@pytest.mark.parametrize("asset", ["btc", "eth"])
def test_history_parses_totals_at_midnight_utc_from_milliseconds(asset: str) -> None:
    points = parse(payload(f"flow_history_{asset}.json"), asset, NOW)
    assert by_series(points, f"etf.{asset}.net_flow") == shared_totals(asset)
    assert all(p.ts.hour == 0 and p.ts.tzinfo is UTC for p in points)
    assert [p.ts for p in points] == sorted(p.ts for p in points)


def test_per_fund_flows_become_per_fund_series_that_sum_to_the_total() -> None:
    points = parse(payload("flow_history_btc.json"), "btc", NOW)
    assert by_series(points, "etf.btc.net_flow.ibit")[date(2025, 10, 1)] == 405_500_000
    assert by_series(points, "etf.btc.net_flow.gbtc")[date(2025, 10, 13)] == -145_400_000
    day = date(2025, 11, 20)
    funds = [p.value for p in points if p.ts.date() == day and p.series.count(".") == 3]
    assert len(funds) == 11
    assert sum(funds) == by_series(points, "etf.btc.net_flow")[day] == -903_200_000


def test_the_documented_example_reads_like_farside() -> None:
    body = {
        "code": "0",
        "msg": "success",
        "data": [
            {
                "timestamp": 1704931200000,
                "flow_usd": 655300000,
                "price_usd": 46663,
                "etf_flows": [
                    {"etf_ticker": "GBTC", "flow_usd": -95100000},
                    {"etf_ticker": "IBIT", "flow_usd": 111700000},
                ],
            }
        ],
    }
    points = parse(body, "btc", NOW)
    assert [(p.series, p.ts.date(), p.value) for p in points] == [
        ("etf.btc.net_flow.gbtc", date(2024, 1, 11), -95_100_000),
        ("etf.btc.net_flow.ibit", date(2024, 1, 11), 111_700_000),
        ("etf.btc.net_flow", date(2024, 1, 11), 655_300_000),
    ]


def test_not_primary_writes_its_own_series() -> None:
    points = parse(payload("flow_history_btc.json"), "btc", NOW, primary=False)
    series = {p.series for p in points}
    assert "etf.btc.net_flow.coinglass" in series
    assert "etf.btc.net_flow.coinglass.ibit" in series
    assert all(s.startswith("etf.btc.net_flow.coinglass") for s in series)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("api_key_missing.json", "provider error code '30001': API key missing"),
        ("error.json", "provider error code '40001': Upgrade plan"),
        ("rate_limit.json", "provider error code '429': Too Many Requests"),
    ],
)
def test_error_answers_are_parse_errors_with_the_message(name: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(payload(name), "btc", NOW)


def _one(**row: Any) -> dict[str, Any]:
    base = {"timestamp": 1764288000000, "flow_usd": 71400000, "etf_flows": []}
    return {"code": "0", "msg": "success", "data": [{**base, **row}]}


def _fund(**item: Any) -> dict[str, Any]:
    return _one(etf_flows=[{"etf_ticker": "IBIT", "flow_usd": 1, **item}])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_one(flow_usd=None), r"data\[0\]\.flow_usd"),
        (_one(flow_usd="71400000"), r"data\[0\]\.flow_usd"),
        (_one(flow_usd=True), r"data\[0\]\.flow_usd"),
        (_one(flow_usd=float("inf")), "finite"),
        (_one(flow_usd=10**400), "finite"),
        (_one(timestamp=1764288000), "expected epoch ms"),
        (_one(timestamp="1764288000000"), "expected epoch ms"),
        (_one(timestamp=None), r"data\[0\]\.timestamp"),
        (_one(timestamp=1764806400000), "date in the future: 2025-12-04"),
        (_one(etf_flows="IBIT"), "etf_flows: expected a list"),
        (_fund(flow_usd=None), r"etf_flows\[0\]\.flow_usd"),
        (_fund(etf_ticker=""), r"etf_flows\[0\]\.etf_ticker"),
        (_fund(etf_ticker=None), r"etf_flows\[0\]\.etf_ticker"),
        (_one(etf_flows=[{"etf_ticker": "IBIT", "flow_usd": 1}] * 2), "IBIT appears twice"),
        (_one(etf_flows=[7]), "expected an object"),
        ({"code": "0", "msg": "success", "data": []}, "non-empty `data`"),
        ({"code": "0", "data": {"list": []}}, "non-empty `data`"),
        ({"msg": "success", "data": []}, "code None"),
        ({"code": False, "data": []}, "code False"),
        ({"code": "0", "data": ["x"]}, "expected an object"),
        ("API key missing", "expected a JSON object"),
    ],
)
def test_every_field_is_type_checked(body: Any, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(body, "btc", NOW)


def test_duplicate_days_fail_and_missing_fund_split_is_fine() -> None:
    twice = _one()
    twice["data"] *= 2
    with pytest.raises(ParseError, match="2025-11-28 appears twice"):
        parse(twice, "btc", NOW)
    no_split = _one()
    del no_split["data"][0]["etf_flows"]
    assert [p.series for p in parse(no_split, "btc", NOW)] == ["etf.btc.net_flow"]


# property tests --------------------------------------------------------------------------------
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_SMALL = {"code": "0", "msg": "success", "data": payload("flow_history_btc.json")["data"][-3:]}


@settings(max_examples=200, deadline=None)
@given(path=st.lists(st.integers(0, 40), min_size=1, max_size=5), value=_json)
def test_mutated_payloads_only_ever_raise_parse_error(path: list[int], value: Any) -> None:
    try:
        points = parse(mutate(_SMALL, path, value), "btc", NOW)
    except ParseError:
        return
    assert points
    assert all(math.isfinite(p.value) and p.ts.date() <= date(2025, 12, 2) for p in points)


@settings(max_examples=200, deadline=None)
@given(body=_json)
def test_arbitrary_json_only_ever_raises_parse_error(body: Any) -> None:
    with contextlib.suppress(ParseError):
        parse(body, "btc", NOW)


# over HTTP ------------------------------------------------------------------------------------
async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with aiohttp.ClientSession() as session:
        yield HttpClient(session, sleep=_no_sleep)


def source(src: FakeSource, *, key: str = KEY, **app: Any) -> CoinGlassSource:
    app.setdefault("markets", {"assets": ["btc", "eth"]})
    cfg = SourceSettings(base_url=src.base_url, api_key=key, retries=2)
    return CoinGlassSource(cfg, Settings(_env_file=None, **app))  # type: ignore[call-arg]


async def test_poll_gets_both_histories_with_the_key_header(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", PATHS["btc"], body=payload("flow_history_btc.json"))
        src.route("GET", PATHS["eth"], body=payload("flow_history_eth.json"))
        points = await source(src, etf={"provider": "coinglass"}).poll(http, NOW)
    assert [r.path for r in src.requests] == [
        "/api/etf/bitcoin/flow-history",
        "/api/etf/ethereum/flow-history",
    ]
    assert {r.headers["CG-API-KEY"] for r in src.requests} == {KEY}
    assert min(p.ts for p in points) == datetime(2025, 11, 3, tzinfo=UTC)  # the last month
    assert len(by_series(points, "etf.eth.net_flow")) == 19
    assert "etf.eth.net_flow.etha" in {p.series for p in points}


async def test_backfill_returns_everything_since_a_date(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", PATHS["btc"], body=payload("flow_history_btc.json"))
        btc_only = source(src, markets={"assets": ["btc"]})
        everything = await btc_only.backfill(http, NOW, None)
        recent = await btc_only.backfill(http, NOW, datetime(2025, 10, 20, tzinfo=UTC))
    assert len(by_series(everything, "etf.btc.net_flow.coinglass")) == 42
    assert min(p.ts for p in recent) == datetime(2025, 10, 20, tzinfo=UTC)


async def test_missing_key_fails_permanently_without_a_request(http: HttpClient) -> None:
    async with FakeSource() as src:
        with pytest.raises(SourceError, match="coinglass: no api_key set") as caught:
            await source(src, key="").poll(http, NOW)
    assert caught.value.permanent
    assert src.requests == []


async def test_api_key_missing_answer_with_http_200_is_a_parse_error(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", PATHS["btc"], body=payload("api_key_missing.json"))
        with pytest.raises(ParseError, match="API key missing"):
            await source(src).poll(http, NOW)


async def test_rate_limit_429_is_retried_then_reported(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", PATHS["btc"], body=payload("rate_limit.json"), status=429)
        src.route("GET", PATHS["eth"], body=payload("rate_limit.json"), status=429)
        with pytest.raises(SourceError, match=r"coinglass (btc|eth): HTTP 429") as caught:
            await source(src).poll(http, NOW)
    assert len(src.requests_to(PATHS["btc"])) == 3  # tried, then retried twice
    assert not caught.value.permanent


async def test_html_where_json_was_expected_is_a_parse_error(http: HttpClient) -> None:
    async with FakeSource() as src:
        html = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>"
        src.route("GET", PATHS["btc"], body=html, content_type="text/html")
        with pytest.raises(ParseError, match="coinglass btc: expected JSON"):
            await source(src).poll(http, NOW)


def test_registry_finds_the_source() -> None:
    assert registry()["coinglass"] is CoinGlassSource
