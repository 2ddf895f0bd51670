"""Farside: real-shaped pages parse exactly; `-` is never zero; partial days wait; doubt fails."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Settings, SourceSettings
from bot.model import Observation
from bot.sources import ParseError, SourceError, registry
from bot.sources.farside import FarsideSource, parse, parse_page
from bot.sources.http import HttpClient
from tests.harness.fake_source import Answer, FakeSource
from tests.harness.files import SHARED_DATA, fixture_text

NOW = datetime(2025, 12, 1, 12, tzinfo=UTC)
NOV28 = datetime(2025, 11, 28, tzinfo=UTC)


def page(name: str) -> str:
    return fixture_text("farside", name)


def shared_totals(asset: str) -> dict[date, float]:
    """The real daily totals (USD) of the shared interchange CSV."""
    with (SHARED_DATA / "etf_flows_2025-10_2025-11.csv").open() as handle:
        return {
            date.fromisoformat(row["ts"]): float(row["value"])
            for row in csv.DictReader(handle)
            if row["series"] == f"etf.{asset}.net_flow"
        }


def by_series(points: list[Observation], series: str) -> dict[date, float]:
    return {p.ts.date(): p.value for p in points if p.series == series}


def table(*rows: str, header: str = "Date|IBIT|FBTC|GBTC|Total", cls: str = "etf") -> str:
    """A minimal page in Farside's shape: `|`-separated cells, one string per row."""
    head = "".join(f"<th>{c}</th>" for c in header.split("|"))
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r.split("|")) + "</tr>" for r in rows)
    return f'<html><body><table class="{cls}"><tr>{head}</tr>{body}</table></body></html>'


# the real-shaped pages ----------------------------------------------------------------------------
def test_btc_page_reproduces_the_real_daily_totals_exactly() -> None:
    points = parse(page("btc.html"), "btc", NOW)
    assert by_series(points, "etf.btc.net_flow") == shared_totals("btc")
    assert all(p.ts.hour == 0 and p.ts.tzinfo is UTC for p in points)


def test_eth_page_with_an_unlabelled_total_column_reproduces_the_real_totals() -> None:
    result = parse_page(page("eth.html"), "eth", NOW)
    assert by_series(result.observations, "etf.eth.net_flow") == shared_totals("eth")
    assert result.warnings == []
    assert not any(p.series.endswith(".total") for p in result.observations)


def test_per_fund_series_in_usd_with_parenthesised_negatives() -> None:
    points = parse(page("btc.html"), "btc", NOW)
    assert by_series(points, "etf.btc.net_flow.gbtc")[date(2025, 10, 13)] == -145_400_000
    assert by_series(points, "etf.btc.net_flow.ibit")[date(2025, 10, 1)] == 405_500_000
    funds = {p.series.rsplit(".", 1)[1] for p in points if p.series.count(".") == 3}
    assert funds == {"ibit", "fbtc", "bitb", "arkb", "btco", "ezbc", "brrr", "hodl", "btcw"} | {
        "gbtc",
        "btc",
    }


def test_zero_is_a_reading_but_a_holiday_row_of_dashes_yields_nothing() -> None:
    points = parse(page("btc.html"), "btc", NOW)
    assert by_series(points, "etf.btc.net_flow.btco")[date(2025, 10, 1)] == 0.0
    assert not [p for p in points if p.ts.date() == date(2025, 11, 27)]
    assert max(p.ts for p in points) == NOV28  # the footer rows are not days


def test_partial_last_day_withholds_the_total_until_a_later_page_completes_it() -> None:
    early = parse_page(page("btc_partial.html"), "btc", NOW)
    assert early.withheld == [(date(2025, 11, 28), ("arkb", "ibit"))]
    assert NOV28.date() not in by_series(early.observations, "etf.btc.net_flow")
    assert NOV28.date() not in by_series(early.observations, "etf.btc.net_flow.ibit")
    assert by_series(early.observations, "etf.btc.net_flow.fbtc")[NOV28.date()] == 77_500_000
    later = parse(page("btc.html"), "btc", NOW)
    assert by_series(later, "etf.btc.net_flow")[NOV28.date()] == 71_400_000


def test_new_fund_column_in_the_middle_is_mapped_by_header_name() -> None:
    points = parse(page("btc_moved_columns.html"), "btc", NOW)
    real = parse(page("btc.html"), "btc", NOW)
    for fund in ("ibit", "btcw", "gbtc", "btc"):
        series = f"etf.btc.net_flow.{fund}"
        moved = by_series(points, series)
        assert moved == {d: v for d, v in by_series(real, series).items() if d.month == 11}
    msbt = by_series(points, "etf.btc.net_flow.msbt")
    assert min(msbt) == date(2025, 11, 20)  # `-` before its launch: no points, no zeros
    totals, real_totals = by_series(points, "etf.btc.net_flow"), shared_totals("btc")
    for day, value in totals.items():
        assert value == real_totals[day] + msbt.get(day, 0.0)
    assert totals[date(2025, 11, 24)] == -151_000_000 + 12_300_000


def test_the_research_example_parses_with_separators_and_negatives() -> None:
    html = table(
        "11 Jan 2024|111.7|227.0|(95.1)|243.6",
        "12 Jan 2024|-|1,234.5|(17.6)|1,216.9",
        "Total|100|200|300|600",
    )
    points = parse(html, "btc", NOW)
    assert by_series(points, "etf.btc.net_flow.gbtc")[date(2024, 1, 11)] == -95_100_000
    assert by_series(points, "etf.btc.net_flow.fbtc")[date(2024, 1, 12)] == 1_234_500_000
    assert date(2024, 1, 12) not in by_series(points, "etf.btc.net_flow.ibit")
    # IBIT reported the day before and shows `-`: 1,216.9 is a partial sum, so no total yet
    assert by_series(points, "etf.btc.net_flow") == {date(2024, 1, 11): 243_600_000}


def test_provider_naming_keeps_farside_in_its_own_series_when_not_primary() -> None:
    points = parse(page("btc.html"), "btc", NOW, primary=False)
    series = {p.series for p in points}
    assert "etf.btc.net_flow.farside" in series
    assert "etf.btc.net_flow.farside.ibit" in series
    assert not any(s in ("etf.btc.net_flow", "etf.btc.net_flow.ibit") for s in series)


def test_rows_newest_first_are_sorted_oldest_first() -> None:
    html = table("12 Jan 2024|1.0|2.0|3.0|6.0", "11 Jan 2024|1.0|2.0|(3.0)|0.0")
    assert [p.ts.day for p in parse(html, "btc", NOW)] == [11] * 4 + [12] * 4


# partial days ---------------------------------------------------------------------------------
def test_a_fund_silent_for_more_than_ten_sessions_no_longer_holds_the_total_back() -> None:
    rows = ["02 Jan 2024|5.0|1.0|-|6.0"]
    rows += [f"{day:02d} Jan 2024|1.0|-|2.0|3.0" for day in range(3, 14)]  # 11 sessions
    rows += ["15 Jan 2024|-|-|-|0.0", "16 Jan 2024|4.0|-|1.0|5.0", "17 Jan 2024|4.0|1.0|-|5.0"]
    result = parse_page(table(*rows), "btc", NOW)
    totals = by_series(result.observations, "etf.btc.net_flow")
    assert date(2024, 1, 3) not in totals  # FBTC reported the session before
    assert date(2024, 1, 13) in totals  # ...but that was 11 sessions ago
    assert date(2024, 1, 16) in totals  # the holiday row is not a session
    assert result.withheld[0] == (date(2024, 1, 3), ("fbtc",))
    assert result.withheld[-1] == (date(2024, 1, 17), ("gbtc",))


def test_an_all_zero_day_is_a_real_zero_total() -> None:
    points = parse(table("11 Jan 2024|1.0|2.0|3.0|6.0", "12 Jan 2024|0.0|0.0|0.0|0.0"), "btc", NOW)
    assert by_series(points, "etf.btc.net_flow")[date(2024, 1, 12)] == 0.0


def test_printed_total_that_disagrees_is_reported_and_the_sum_wins() -> None:
    ok = parse_page(table("11 Jan 2024|0.1|0.1|0.1|0.2"), "btc", NOW)
    assert ok.warnings == []  # one-decimal rounding is tolerated
    result = parse_page(table("11 Jan 2024|1.0|2.0|3.0|9.9"), "btc", NOW)
    assert by_series(result.observations, "etf.btc.net_flow") == {date(2024, 1, 11): 6_000_000}
    assert result.warnings == [
        "farside btc 2024-01-11: funds sum to 6.0, Total column says 9.9; using the sum"
    ]


def test_values_are_exact_cents_without_float_noise() -> None:
    html = table("11 Jan 2024|0.1|0.2|(0.3)|0.0", "12 Jan 2024|0.7|(0.0)|0.2|0.9")
    points = parse(html, "btc", NOW)
    totals = by_series(points, "etf.btc.net_flow")
    assert totals == {date(2024, 1, 11): 0.0, date(2024, 1, 12): 900_000.0}
    assert not any(math.copysign(1, p.value) < 0 and p.value == 0 for p in points)


# pages that must fail ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("html", "reason"),
    [
        (page("cloudflare.html"), "farside: Cloudflare challenge page"),
        (
            "<html><head><title>Attention Required! | Cloudflare</title></head><body></body></html>",
            "farside: Cloudflare challenge page",
        ),
        (page("empty_table.html"), "farside: flow table has no dated rows"),
        ("<html><body><p>We are updating this page.</p></body></html>", "no flow table found"),
        (table("11 Jan 2024|1.0|2.0|3.0|6.0", header="Date|IBIT|FBTC|GBTC"), "no flow table"),
        (table("11 Jan 2024|1.0|2.0|3.0", header="Day|IBIT|FBTC|Total"), "no flow table"),
        (table("03 Dec 2025|1.0|2.0|3.0|6.0"), "date in the future: 2025-12-03"),
        (table("11 Jan 2024|1|2|3|6", "11 Jan 2024|1|2|3|6"), "2024-01-11 appears twice"),
        (table("11 Jan 2024|1.0|n/a|3.0|4.0"), r"2024-01-11 FBTC: .* found 'n/a'"),
        (table("11 Jan 2024|1.0|(2.0|3.0|4.0"), "2024-01-11 FBTC"),
        (table("11 Jan 2024|1.0|-(2.0)|3.0|4.0"), "2024-01-11 FBTC"),
        (table("11 Jan 2024|1.0|1.2.3|3.0|4.0"), "2024-01-11 FBTC"),
        (table("11 Jan 2024|1.0|1e3|3.0|4.0"), "2024-01-11 FBTC"),
        (table("11 Jan 2024|1.0|2.0|3.0|abc"), "2024-01-11 Total"),
        (table("11 Jan 2024|1.0|2.0|3.0|6.0|7.0"), "more cells than the header"),
        (table("31 Feb 2024|1.0|2.0|3.0|6.0"), "no such date"),
        (table("2024-01-11|1.0|2.0|3.0|6.0"), "expected a date like 11 Jan 2024"),
        (table("11 Foo 2024|1.0|2.0|3.0|6.0"), "expected a date like 11 Jan 2024"),
        (table("11 Jan 2024|1|2|3|4", header="Date|IBIT||GBTC|Total"), "column 3 has a number"),
        (table("11 Jan 2024|1|2|3|4", header="Date|IBIT|IBIT|GBTC|Total"), "appears twice"),
        (table("11 Jan 2024|9999999.0|2|3|4"), "implausible"),
        ("<table class=etf><tr><th>Date<th>Total<tr><td>1 Jan 2024<![b!r0", "malformed HTML"),
    ],
)
def test_bad_page_is_a_parse_error_naming_the_reason(html: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(html, "btc", NOW)


def test_cloudflare_scripts_on_a_normal_page_do_not_make_it_a_challenge() -> None:
    html = page("btc.html")
    assert "/cdn-cgi/challenge-platform/" in html
    assert parse(html, "btc", NOW)


def test_unnamed_empty_spacer_columns_and_omitted_end_tags_are_fine() -> None:
    html = (
        "<table><tr><th>Date<th>IBIT<th><th>GBTC<th>Total"
        "<tr><td>11 Jan 2024<td>1.0<td>&nbsp;<td>(2.5)<td>(1.5)</table>"
    )
    assert by_series(parse(html, "btc", NOW), "etf.btc.net_flow") == {date(2024, 1, 11): -1_500_000}


def test_the_etf_class_table_wins_over_other_tables_with_the_same_header() -> None:
    decoy = table("11 Jan 2024|9.0|9.0|9.0|27.0", cls="news")
    real = table("11 Jan 2024|1.0|2.0|3.0|6.0")
    points = parse(decoy + real, "btc", NOW)
    assert by_series(points, "etf.btc.net_flow") == {date(2024, 1, 11): 6_000_000}


# property tests --------------------------------------------------------------------------------
_CELL = re.compile(r'(?<=">)([^<]*)(?=</span>)')
_SMALL = "\n".join(  # the last two weeks: MSBT's launch, the holiday, the footer; fast to parse
    line
    for line in page("btc_moved_columns.html").splitlines()
    if not re.search(r">(0[3-9]|1[0-4]) Nov 2025<", line)
)
_CELLS = [m.span() for m in _CELL.finditer(_SMALL)]
_cell_text = st.text(alphabet="0123456789(),.- –—abcJanNov<>&;/!#[]x\n\t", max_size=14)


def _check_only_parse_errors(html: str) -> None:
    try:
        points = parse(html, "btc", NOW)
    except ParseError:
        return
    for p in points:
        assert math.isfinite(p.value)
        assert p.ts <= NOW + timedelta(days=1)
        assert p.series.startswith("etf.btc.net_flow")


@settings(max_examples=200, deadline=None)
@given(picks=st.lists(st.tuples(st.integers(0, len(_CELLS) - 1), _cell_text), max_size=3))
def test_mutated_cells_only_ever_raise_parse_error(picks: list[tuple[int, str]]) -> None:
    html = _SMALL
    for index, text in sorted(picks, key=lambda pick: -_CELLS[pick[0]][0]):
        start, end = _CELLS[index]
        html = html[:start] + text + html[end:]
    _check_only_parse_errors(html)


@settings(max_examples=200, deadline=None)
@given(
    junk=st.text(alphabet="<>/!-[]&#;= \"'abdehlrtx0123456789()", max_size=60),
    at=st.integers(0, 100),
)
def test_markup_junk_spliced_into_a_page_only_ever_raises_parse_error(junk: str, at: int) -> None:
    small = table("11 Jan 2024|111.7|227.0|(95.1)|243.6", "12 Jan 2024|-|1.5|(17.6)|0.0")
    cut = len(small) * at // 100
    _check_only_parse_errors(small[:cut] + junk + small[cut:])


# over HTTP ------------------------------------------------------------------------------------
async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with aiohttp.ClientSession() as session:
        yield HttpClient(session, sleep=_no_sleep)


def source(src: FakeSource, *, assets: list[str] | None = None, **app: Any) -> FarsideSource:
    settings_ = Settings(
        _env_file=None,  # type: ignore[call-arg]
        markets={"assets": assets or ["btc", "eth"]},
        **app,
    )
    return FarsideSource(SourceSettings(base_url=src.base_url, retries=2), settings_)


async def test_poll_fetches_the_recent_pages_of_the_configured_assets(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", "/btc/", body=page("btc.html"), content_type="text/html")
        src.route("GET", "/eth/", body=page("eth.html"), content_type="text/html")
        points = await source(src).poll(http, NOW)
    assert [r.path for r in src.requests] == ["/btc/", "/eth/"]
    assert "text/html" in src.requests[0].headers["Accept"]
    assert by_series(points, "etf.btc.net_flow") == shared_totals("btc")
    assert by_series(points, "etf.eth.net_flow") == shared_totals("eth")


async def test_poll_skips_assets_farside_does_not_cover(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", "/btc/", body=page("btc.html"), content_type="text/html")
        points = await source(src, assets=["btc", "sol"]).poll(http, NOW)
        assert await source(src, assets=["sol"]).poll(http, NOW) == []
    assert [r.path for r in src.requests] == ["/btc/"]
    assert {p.series.split(".")[1] for p in points} == {"btc"}


async def test_backfill_reads_the_all_data_pages_and_honours_since(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", "/bitcoin-etf-flow-all-data/", body=page("btc.html"))
        src.route("GET", "/ethereum-etf-flow-all-data/", body=page("eth.html"))
        points = await source(src).backfill(http, NOW, datetime(2025, 11, 1, tzinfo=UTC))
    assert [r.path for r in src.requests] == [
        "/bitcoin-etf-flow-all-data/",
        "/ethereum-etf-flow-all-data/",
    ]
    assert min(p.ts for p in points) == datetime(2025, 11, 3, tzinfo=UTC)
    assert len(by_series(points, "etf.eth.net_flow")) == 19


async def test_a_later_poll_writes_the_total_a_partial_day_withheld(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route_sequence("/btc/", [page("btc_partial.html"), page("btc.html")])
        farside = source(src, assets=["btc"])
        first, second = await farside.poll(http, NOW), await farside.poll(http, NOW)
    assert NOV28.date() not in by_series(first, "etf.btc.net_flow")
    assert by_series(second, "etf.btc.net_flow")[NOV28.date()] == 71_400_000


async def test_provider_setting_renames_the_series(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", "/btc/", body=page("btc.html"))
        points = await source(src, assets=["btc"], etf={"provider": "sosovalue"}).poll(http, NOW)
    assert {p.series for p in points} >= {
        "etf.btc.net_flow.farside",
        "etf.btc.net_flow.farside.ibit",
    }


async def test_cloudflare_403_is_a_source_error_naming_cloudflare(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route(
            "GET", "/btc/", body=page("cloudflare.html"), status=403, content_type="text/html"
        )
        with pytest.raises(SourceError, match="Cloudflare") as caught:
            await source(src, assets=["btc"]).poll(http, NOW)
    assert caught.value.permanent
    assert len(src.requests) == 1  # a 403 is not retried
    assert "farside /btc/" in str(caught.value)


async def test_cloudflare_challenge_served_with_200_is_a_parse_error(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", "/btc/", body=page("cloudflare.html"), content_type="text/html")
        with pytest.raises(ParseError, match="Cloudflare challenge page"):
            await source(src, assets=["btc"]).poll(http, NOW)


async def test_server_errors_are_retried_then_succeed(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route_sequence("/btc/", [Answer("busy", status=503), Answer(page("btc.html"))])
        points = await source(src, assets=["btc"]).poll(http, NOW)
    assert len(src.requests) == 2
    assert len(by_series(points, "etf.btc.net_flow")) == 42


async def test_rate_limit_is_retried_then_reported(http: HttpClient) -> None:
    async with FakeSource() as src:
        src.route("GET", "/btc/", body="slow down", status=429)
        with pytest.raises(SourceError, match="429") as caught:
            await source(src, assets=["btc"]).poll(http, NOW)
    assert len(src.requests) == 3  # retries=2
    assert not caught.value.permanent


def test_registry_finds_the_source() -> None:
    assert registry()["farside"] is FarsideSource
