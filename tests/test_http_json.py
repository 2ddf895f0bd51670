"""The generic JSON source: JMESPath series from configuration, validated up front, parsed strictly."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import HttpJsonEndpoint, HttpJsonSettings
from bot.sources import ParseError, SourceError
from bot.sources.http_json import (
    HttpJsonSource,
    compile_endpoint,
    parse,
    validate,
    validate_all,
)
from tests.harness.exchanges import NOW, app_settings, by_series, client, json_values
from tests.harness.fake_source import Answer, FakeSource
from tests.harness.files import fixture_json, fixture_text

USDT = "peggedAssets[?symbol=='USDT'] | [0].circulating.peggedUSD"


def fx(name: str) -> Any:
    return fixture_json("http_json", name)


def endpoint(**fields: Any) -> HttpJsonEndpoint:
    base: dict[str, Any] = {
        "name": "llama",
        "url": "https://stablecoins.llama.fi/stablecoins",
        "series": {"stablecoin.usdt.supply": USDT},
    }
    return HttpJsonEndpoint.model_validate(base | fields)


def chart(**fields: Any) -> HttpJsonEndpoint:
    return endpoint(
        name="chart",
        series={"stablecoin.total.supply": "[*].totalCirculating.peggedUSD"},
        timestamp="[*].date",
        **fields,
    )


def run(
    ep: HttpJsonEndpoint, payload: Any, now: datetime = NOW
) -> list[tuple[str, datetime, float]]:
    return [(p.series, p.ts, p.value) for p in parse(payload, compile_endpoint(ep), now)]


# parsing -----------------------------------------------------------------------------------------
def test_a_scalar_without_timestamp_path_is_stamped_at_the_poll_minute() -> None:
    now = NOW + timedelta(seconds=47)
    assert run(endpoint(), fx("stablecoins.json"), now) == [
        ("stablecoin.usdt.supply", NOW, 183120736531.37)
    ]


def test_several_series_from_one_answer() -> None:
    ep = endpoint(
        series={
            "stablecoin.usdt.supply": USDT,
            "stablecoin.usdc.supply": "peggedAssets[?symbol=='USDC'] | [0].circulating.peggedUSD",
        }
    )
    assert [value for _, _, value in run(ep, fx("stablecoins.json"))] == [
        183120736531.37,
        75871664202.12,
    ]


def test_a_list_of_values_pairs_with_a_list_of_string_epoch_seconds() -> None:
    points = run(chart(), fx("stablecoin_chart.json"))
    assert len(points) == 4
    assert points[-1] == (
        "stablecoin.total.supply",
        datetime(2025, 11, 1, tzinfo=UTC),
        307794320077.4,
    )


def test_scale_multiplies_every_value() -> None:
    points = run(chart(scale=1e-9), fx("stablecoin_chart.json"))
    assert points[0][2] == pytest.approx(306.9125477086)


@pytest.mark.parametrize(
    ("fmt", "stamps", "expected"),
    [
        ("epoch_s", [1761955200], datetime(2025, 11, 1, tzinfo=UTC)),
        ("epoch_ms", ["1761998370123"], datetime(2025, 11, 1, 11, 59, 30, 123000, tzinfo=UTC)),
        ("iso", ["2025-11-01T08:00:00Z"], datetime(2025, 11, 1, 8, tzinfo=UTC)),
        ("iso", ["2025-11-01T09:00:00+01:00"], datetime(2025, 11, 1, 8, tzinfo=UTC)),
        ("iso", ["2025-11-01T08:00:00"], datetime(2025, 11, 1, 8, tzinfo=UTC)),
        ("date", ["2025-10-31"], datetime(2025, 10, 31, tzinfo=UTC)),
        ("date", ["1999-12-31"], datetime(1999, 12, 31, tzinfo=UTC)),
    ],
)
def test_timestamp_formats(fmt: str, stamps: list[Any], expected: datetime) -> None:
    ep = endpoint(series={"m2.us": "values"}, timestamp="times", timestamp_format=fmt)
    assert run(ep, {"values": ["21.9"], "times": stamps}) == [("m2.us", expected, 21.9)]


@pytest.mark.parametrize(
    ("fmt", "stamp", "reason"),
    [
        ("epoch_s", 1761955200000, "expected epoch s, found what looks like milliseconds"),
        ("epoch_ms", 1761955200, "expected epoch ms, found what looks like seconds"),
        ("epoch_s", "1761955200.5", "expected an epoch timestamp"),
        ("epoch_s", True, "expected an epoch timestamp"),
        ("iso", "yesterday", "expected an ISO-8601 time, found 'yesterday'"),
        ("iso", 1761955200, "expected an ISO-8601 time, found 1761955200"),
        ("iso", "0001-01-01T00:00:00+14:00", "timestamp before 1900"),
        ("iso", "9999-12-31T23:59:59-14:00", "timestamp in the future"),
        ("date", "20251031", "expected a YYYY-MM-DD date"),
        ("date", "2025-02-30", "expected a YYYY-MM-DD date"),
        ("date", "2025-11-09", "timestamp in the future"),
    ],
)
def test_bad_timestamps_are_parse_errors(fmt: str, stamp: Any, reason: str) -> None:
    ep = endpoint(series={"x.y": "v"}, timestamp="t", timestamp_format=fmt)
    with pytest.raises(ParseError, match=f"endpoint 'llama': timestamp \\(t\\): {reason}"):
        run(ep, {"v": 1, "t": stamp})


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"v": "1,234"}, "expected a number, found '1,234'"),
        ({"v": None}, "the path matched nothing"),
        ({}, "the path matched nothing"),
        ({"v": True}, "expected a number, found True"),
        ({"v": "NaN"}, "expected a number"),
        ({"v": {"a": 1}}, "expected a number"),
        ({"v": [1, 2]}, "a list of values needs a `timestamp` path"),
    ],
)
def test_bad_values_name_endpoint_series_and_path(payload: Any, reason: str) -> None:
    ep = endpoint(series={"my.metric": "v"})
    with pytest.raises(
        ParseError, match=rf"^http_json: endpoint 'llama': series 'my.metric' \(v\): {reason}"
    ):
        run(ep, payload)


def test_misaligned_lists_are_refused() -> None:
    ep = endpoint(series={"x.y": "v"}, timestamp="t")
    with pytest.raises(ParseError, match="3 values but 2 timestamps"):
        run(ep, {"v": [1, 2, 3], "t": [1761955200, 1761868800]})
    with pytest.raises(ParseError, match="one value but a list of 2 timestamps"):
        run(ep, {"v": 1, "t": [1761955200, 1761868800]})


def test_a_list_element_that_is_not_a_number_is_named_by_index() -> None:
    ep = endpoint(series={"x.y": "v"}, timestamp="t")
    with pytest.raises(ParseError, match=r"series 'x.y' \(v\)\[1\]: expected a number"):
        run(ep, {"v": ["1", "-"], "t": [1761868800, 1761955200]})


def test_a_jmespath_runtime_type_error_is_a_parse_error() -> None:
    ep = endpoint(series={"x.count": "length(v)"})
    with pytest.raises(ParseError, match="invalid type for value"):
        run(ep, {"v": 3})


def test_an_empty_list_is_no_points() -> None:
    assert run(chart(), []) == []


def test_scaling_that_overflows_is_refused() -> None:
    with pytest.raises(ParseError, match="out of range"):
        run(endpoint(series={"x.y": "v"}, scale=1e300), {"v": 1e10})


# validation -------------------------------------------------------------------------------------
def test_a_sound_endpoint_has_no_problems() -> None:
    assert validate(endpoint()) == []
    assert validate(chart()) == []


def test_validation_reports_every_problem_on_one_line_each() -> None:
    ep = endpoint(
        series={"Stablecoin.USDT": "peggedAssets[", "ok.key": "a..b"},
        timestamp="foo | bar(",
        scale=0,
    )
    problems = validate(ep)
    assert len(problems) == 5
    assert all("\n" not in p for p in problems)
    assert problems[0].startswith(
        "sources.http_json endpoint 'llama': series key 'Stablecoin.USDT'"
    )
    assert "bad JMESPath 'peggedAssets['" in problems[1]
    assert "series 'ok.key': bad JMESPath 'a..b'" in problems[2]
    assert "timestamp: bad JMESPath" in problems[3]
    assert "scale: expected a finite non-zero number" in problems[4]


@pytest.mark.parametrize("key", ["", "a..b", ".a", "a.", "a-b", "fundingBTC", "a b"])
def test_series_keys_must_be_dotted_lower_case_words(key: str) -> None:
    assert validate(endpoint(series={key: "v"}))


def test_an_endpoint_without_series_is_a_problem() -> None:
    assert validate(endpoint(series={})) == [
        "sources.http_json endpoint 'llama': no series configured"
    ]


def test_two_endpoints_writing_one_series_are_refused() -> None:
    problems = validate_all([endpoint(), endpoint(name="other")])
    assert problems == [
        "sources.http_json: series 'stablecoin.usdt.supply' is written by both 'llama' and 'other'"
    ]
    assert "used twice" in validate_all([endpoint(), endpoint(series={"x.y": "v"})])[0]


# over HTTP ----------------------------------------------------------------------------------------
def settings_for(*endpoints: HttpJsonEndpoint, retries: int = 0) -> HttpJsonSettings:
    return HttpJsonSettings(endpoints=list(endpoints), retries=retries)


async def test_poll_gets_each_endpoint_and_parses_its_series() -> None:
    async with FakeSource() as src, client() as http:
        src.route("GET", "/stablecoins", body=fx("stablecoins.json"))
        src.route("GET", "/stablecoincharts/all", body=fx("stablecoin_chart.json"))
        cfg = settings_for(
            endpoint(url=src.url("/stablecoins?includePrices=true")),
            chart(url=src.url("/stablecoincharts/all")),
        )
        points = by_series(await HttpJsonSource(cfg, app_settings()).poll(http, NOW))
    assert points["stablecoin.usdt.supply"] == [(NOW, 183120736531.37)]
    assert len(points["stablecoin.total.supply"]) == 4
    assert src.requests_to("/stablecoins")[0].query == {"includePrices": "true"}


async def test_post_sends_the_configured_body_and_headers() -> None:
    async with FakeSource() as src, client() as http:
        src.route("POST", "/openapi/v2/etf/metrics", body={"data": {"value": "1.25"}})
        ep = endpoint(
            name="soso",
            url=src.url("/openapi/v2/etf/metrics"),
            method="POST",
            headers={"x-soso-api-key": "demo"},
            body={"type": "us-btc-spot"},
            series={"etf.btc.premium": "data.value"},
            scale=0.01,
        )
        points = await HttpJsonSource(settings_for(ep), app_settings()).poll(http, NOW)
    assert [(p.series, p.value) for p in points] == [("etf.btc.premium", 0.0125)]
    (request,) = src.requests
    assert json.loads(request.body) == {"type": "us-btc-spot"}
    assert request.headers["x-soso-api-key"] == "demo"


async def test_the_app_table_is_used_when_given_plain_source_settings() -> None:
    async with FakeSource() as src, client() as http:
        src.route("GET", "/stablecoins", body=fx("stablecoins.json"))
        app = app_settings(
            sources={
                "http_json": {"endpoints": [endpoint(url=src.url("/stablecoins")).model_dump()]}
            }
        )
        source = HttpJsonSource(app.sources.binance, app)
        assert len(await source.poll(http, NOW)) == 1


async def test_a_bad_configuration_fails_every_poll_without_a_request() -> None:
    async with FakeSource() as src, client() as http:
        ep = endpoint(url=src.url("/stablecoins"), series={"x.y": "foo["})
        source = HttpJsonSource(settings_for(ep), app_settings())
        with pytest.raises(SourceError, match="bad JMESPath 'foo\\['") as caught:
            await source.poll(http, NOW)
    assert caught.value.permanent
    assert src.requests == []


async def test_http_errors_name_the_endpoint() -> None:
    async with FakeSource() as src, client() as http:
        src.route("GET", "/stablecoins", body="not here", status=404)
        source = HttpJsonSource(settings_for(endpoint(url=src.url("/stablecoins"))), app_settings())
        with pytest.raises(SourceError, match=r"^endpoint 'llama': HTTP 404") as caught:
            await source.poll(http, NOW)
    assert caught.value.permanent


async def test_429_is_retried() -> None:
    async with FakeSource() as src, client() as http:
        src.route_sequence(
            "/stablecoins", [Answer(fx("rate_limit.json"), status=429), fx("stablecoins.json")]
        )
        cfg = settings_for(endpoint(url=src.url("/stablecoins")), retries=1)
        assert len(await HttpJsonSource(cfg, app_settings()).poll(http, NOW)) == 1
    assert len(src.requests) == 2


async def test_a_challenge_page_instead_of_json_is_a_parse_error_naming_the_endpoint() -> None:
    async with FakeSource() as src, client() as http:
        page = fixture_text("http_json", "cloudflare.html")
        src.route("GET", "/stablecoins", body=page, content_type="text/html")
        source = HttpJsonSource(settings_for(endpoint(url=src.url("/stablecoins"))), app_settings())
        with pytest.raises(ParseError, match=r"^endpoint 'llama': expected JSON"):
            await source.poll(http, NOW)


async def test_backfill_keeps_points_from_since() -> None:
    async with FakeSource() as src, client() as http:
        src.route("GET", "/chart", body=fx("stablecoin_chart.json"))
        source = HttpJsonSource(settings_for(chart(url=src.url("/chart"))), app_settings())
        points = await source.backfill(http, NOW, datetime(2025, 10, 31, tzinfo=UTC))
    assert [p.ts.day for p in points] == [31, 1]


# properties ---------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=150)
@given(payload=json_values)
def test_arbitrary_json_only_ever_raises_parse_error(payload: Any) -> None:
    for ep in (endpoint(), chart(), chart(timestamp_format="iso"), chart(timestamp_format="date")):
        with contextlib.suppress(ParseError):
            for _, _, value in run(ep, payload):
                assert math.isfinite(value)


@settings(deadline=None, max_examples=150)
@given(
    values=st.lists(json_values, min_size=1, max_size=4),
    stamps=st.lists(json_values, min_size=1, max_size=4),
)
def test_arbitrary_values_and_stamps_only_ever_raise_parse_error(
    values: list[Any], stamps: list[Any]
) -> None:
    payload = [
        {"date": t, "totalCirculating": {"peggedUSD": v}}
        for v, t in zip(values, stamps, strict=False)
    ]
    with contextlib.suppress(ParseError):
        for _, ts, value in run(chart(), payload):
            assert math.isfinite(value)
            assert ts <= NOW + timedelta(hours=1)
