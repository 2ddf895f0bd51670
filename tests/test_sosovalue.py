"""SoSoValue: both documented shapes parse; error envelopes, nulls and HTML fail; keys are sent."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Settings, SourceSettings
from bot.sources import ParseError, SourceError, registry
from bot.sources.http import HttpClient
from bot.sources.sosovalue import PATH, SoSoValueSource, parse
from tests.harness.fake_source import Answer, FakeSource
from tests.harness.files import fixture_json, fixture_text
from tests.harness.payloads import mutate

NOW = datetime(2025, 12, 1, 12, tzinfo=UTC)
KEY = "soso-test-key"


def payload(name: str) -> Any:
    return fixture_json("sosovalue", name)


def test_data_list_shape_parses_oldest_first_in_usd() -> None:
    points = parse(payload("history_btc.json"), "btc", NOW)
    assert len(points) == 42
    assert [p.ts for p in points] == sorted(p.ts for p in points)
    assert points[0].ts == datetime(2025, 10, 1, tzinfo=UTC)
    assert points[0].value == 674_800_000.0
    assert points[-1].ts == datetime(2025, 11, 28, tzinfo=UTC)
    assert points[-1].value == 70_693_887.0
    assert {p.series for p in points} == {"etf.btc.net_flow"}


def test_data_as_a_bare_list_parses_too() -> None:
    points = parse(payload("history_eth_data_list.json"), "eth", NOW)
    assert len(points) == 42
    assert {p.series for p in points} == {"etf.eth.net_flow"}
    assert all(math.isfinite(p.value) for p in points)


@pytest.mark.parametrize("key", ["result", "data"])
def test_result_wrappers_are_tolerated(key: str) -> None:
    rows = payload("history_btc.json")["data"]["list"][:3]
    assert len(parse({"code": 0, key: {"list": rows}}, "btc", NOW)) == 3
    assert len(parse({"code": "0", key: rows}, "btc", NOW)) == 3


def test_values_track_farside_but_are_sosovalues_own() -> None:
    from tests.harness.files import SHARED_DATA

    farside = {
        line.split(",")[1]: float(line.split(",")[2])
        for line in (SHARED_DATA / "etf_flows_2025-10_2025-11.csv").read_text().splitlines()[1:]
        if line.startswith("etf.btc.")
    }
    points = parse(payload("history_btc.json"), "btc", NOW)
    assert {p.ts.date().isoformat() for p in points} == set(farside)
    assert all(abs(p.value - farside[p.ts.date().isoformat()]) <= 1e6 for p in points)


def test_not_primary_writes_its_own_series() -> None:
    points = parse(payload("history_btc.json"), "btc", NOW, primary=False)
    assert {p.series for p in points} == {"etf.btc.net_flow.sosovalue"}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("error_envelope.json", "provider error code 40001: Parameter error: type"),
        ("rate_limit.json", "provider error code 42901: Rate limit exceeded"),
        ("auth_required.json", "provider error code 40100: AUTH_REQUIRED"),
        ("null_value.json", r"data\.list\[2\]\.totalNetInflow: expected USD, found None"),
    ],
)
def test_bad_payload_is_a_parse_error_naming_the_reason(name: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(payload(name), "btc", NOW)


def _one(**row: Any) -> dict[str, Any]:
    base = {"date": "2025-11-28", "totalNetInflow": 1.5}
    return {"code": 0, "msg": None, "data": {"list": [{**base, **row}]}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_one(totalNetInflow=True), "totalNetInflow"),
        (_one(totalNetInflow="n/a"), "totalNetInflow"),
        (_one(totalNetInflow=float("nan")), "totalNetInflow"),
        (_one(totalNetInflow=10**400), "totalNetInflow"),
        ({"code": 0, "data": {"list": [{"date": "2025-11-28"}]}}, "totalNetInflow"),
        (_one(date="28 Nov 2025"), r"data\.list\[0\]\.date"),
        (_one(date="2025-02-30"), "no such date"),
        (_one(date=20251128), "expected YYYY-MM-DD"),
        (_one(date="2025-12-03"), "date in the future"),
        ({"code": 0, "data": {"list": []}}, "empty"),
        ({"code": 0, "data": None}, r"`data\.list`"),
        ({"data": {"list": []}}, "code None"),
        ({"code": False, "data": {"list": []}}, "code False"),
        ({"code": 0, "data": {"list": ["x"]}}, "expected an object"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_every_field_is_type_checked(body: Any, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(body, "btc", NOW)


def test_a_numeric_string_is_accepted_and_duplicates_fail() -> None:
    assert parse(_one(totalNetInflow="-12.5"), "btc", NOW)[0].value == -12.5
    twice = _one()
    twice["data"]["list"] *= 2
    with pytest.raises(ParseError, match="appears twice"):
        parse(twice, "btc", NOW)


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
_SMALL = {"code": 0, "msg": None, "data": {"list": payload("history_btc.json")["data"]["list"][:4]}}


@settings(max_examples=200, deadline=None)
@given(path=st.lists(st.integers(0, 40), min_size=1, max_size=4), value=_json)
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


def source(src: FakeSource, *, key: str = KEY, **app: Any) -> SoSoValueSource:
    app.setdefault("markets", {"assets": ["btc", "eth"]})
    cfg = SourceSettings(base_url=src.base_url, api_key=key, retries=2)
    return SoSoValueSource(cfg, Settings(_env_file=None, **app))  # type: ignore[call-arg]


async def test_poll_posts_the_type_with_the_key_header(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("POST", PATH, body=payload("history_btc.json"), match={"type": "us-btc-spot"})
        eth = payload("history_eth_data_list.json")
        src.route("POST", PATH, body=eth, match={"type": "us-eth-spot"})
        points = await source(src).poll(http, NOW)
    bodies = [json.loads(r.body) for r in src.requests_to(PATH)]
    assert sorted(b["type"] for b in bodies) == ["us-btc-spot", "us-eth-spot"]
    assert all(r.method == "POST" for r in src.requests)
    assert {r.headers["x-soso-api-key"] for r in src.requests} == {KEY}
    assert src.requests[0].headers["Content-Type"] == "application/json"
    assert min(p.ts for p in points) >= datetime(2025, 10, 31, 12, tzinfo=UTC)  # a month
    assert {p.series for p in points} == {
        "etf.btc.net_flow.sosovalue",
        "etf.eth.net_flow.sosovalue",
    }


async def test_backfill_returns_the_whole_chart_since_a_date(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("POST", PATH, body=payload("history_btc.json"))
        everything = await source(src, markets={"assets": ["btc"]}).backfill(http, NOW, None)
        since = datetime(2025, 11, 1, tzinfo=UTC)
        recent = await source(src, markets={"assets": ["btc"]}).backfill(http, NOW, since)
    assert len(everything) == 42
    assert len(recent) == 19


async def test_missing_key_fails_permanently_without_a_request(http: HttpClient) -> None:
    async with FakeSource() as src:
        with pytest.raises(SourceError, match="sosovalue: no api_key set") as caught:
            await source(src, key="").poll(http, NOW)
    assert caught.value.permanent
    assert src.requests == []


async def test_provider_setting_decides_the_series(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("POST", PATH, body=payload("history_btc.json"))
        own = await source(src, markets={"assets": ["btc"]}).poll(http, NOW)
        main = await source(src, markets={"assets": ["btc"]}, etf={"provider": "sosovalue"}).poll(
            http, NOW
        )
    assert {p.series for p in own} == {"etf.btc.net_flow.sosovalue"}
    assert {p.series for p in main} == {"etf.btc.net_flow"}


async def test_rate_limit_429_is_retried_then_reported(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("POST", PATH, body=payload("rate_limit.json"), status=429)
        with pytest.raises(SourceError, match=r"sosovalue (btc|eth): HTTP 429") as caught:
            await source(src).poll(http, NOW)
    assert len(src.requests) == 6  # each asset tried, then retried twice
    assert not caught.value.permanent


async def test_rate_limit_then_success_recovers(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route_sequence(
            PATH,
            [Answer(payload("rate_limit.json"), status=429), payload("history_btc.json")],
            method="POST",
        )
        points = await source(src, markets={"assets": ["btc"]}).poll(http, NOW)
    assert points and len(src.requests) == 2


async def test_unauthorised_is_permanent_and_not_retried(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("POST", PATH, body=payload("auth_required.json"), status=401)
        with pytest.raises(SourceError, match="HTTP 401") as caught:
            await source(src).poll(http, NOW)
    assert caught.value.permanent
    assert len(src.requests) == 2  # one per asset, never retried


async def test_html_where_json_was_expected_is_a_parse_error(http: HttpClient) -> None:
    async with FakeSource() as src:
        page = fixture_text("sosovalue", "maintenance.html")
        src.route("POST", PATH, body=page, content_type="text/html")
        with pytest.raises(ParseError, match="sosovalue btc: expected JSON, got '<!DOCTYPE html>"):
            await source(src).poll(http, NOW)


async def test_error_envelope_with_http_200_is_a_parse_error(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("POST", PATH, body=payload("error_envelope.json"))
        with pytest.raises(ParseError, match="40001"):
            await source(src).poll(http, NOW)


def test_registry_finds_the_source() -> None:
    assert registry()["sosovalue"] is SoSoValueSource
