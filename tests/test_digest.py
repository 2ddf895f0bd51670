"""The digest scorecard on real market data, its DST-correct schedule and restart-safe claims."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import SourcesSettings
from bot.digest.chart import render_chart, render_series_chart
from bot.digest.schedule import first_schedule, next_digest_at, zone_or
from bot.digest.scorecard import AssetData, DigestData, build_digest, render_digest
from bot.digest.staleness import Staleness
from bot.model import DigestSchedule
from bot.timezones import parse_hhmm, zone

MARKET = Path(__file__).parent / "fixtures" / "market"
NOV21 = datetime(2025, 11, 21, 23, 0, tzinfo=UTC)


def points(name: str, series: str, until: datetime) -> tuple[tuple[datetime, float], ...]:
    out = []
    with (MARKET / name).open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            ts = datetime.fromisoformat(row["ts"].replace("Z", "+00:00"))
            ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
            if row["series"] == series and ts <= until:
                out.append((ts, float(row["value"])))
    return tuple(out)


def etf(asset: str, until: datetime = NOV21) -> tuple[tuple[datetime, float], ...]:
    return points("etf_flows_2025-10_2025-11.csv", f"etf.{asset}.net_flow", until)[-30:]


def test_btc_etf_scorecard_on_2025_11_21() -> None:
    d = build_digest(DigestData((AssetData("btc", etf("btc")),)), NOV21, "Europe/Berlin")
    line = d.etf[0]
    assert round(line.five_days / 1e6, 1) == -1216.8
    assert line.sign_changes == 4 and line.streak == 1
    text = render_digest(d)
    assert "−$1.22B" in text and "two-way, 4 sign changes" in text
    assert "Futures</b>\nno data yet" in text and "Fear &amp; Greed: no data yet" in text


def test_outflow_streak_is_one_way_and_counted() -> None:
    nov18 = datetime(2025, 11, 18, 23, 0, tzinfo=UTC)
    funding = points("funding_btc_binance_2025-10.csv", "funding.btc.binance", NOV21)
    fg = points("fear_greed_2025-10.csv", "fear_greed", NOV21)
    data = DigestData((AssetData("btc", etf("btc", nov18)[-5:], funding),), fg)
    text = render_digest(build_digest(data, nov18, "UTC"))
    assert "outflows, 5th day in a row" in text and "last 5 sessions one-way" in text
    assert "Fear &amp; Greed <b>29</b> (fear)" in text


def test_everything_missing_renders_no_data() -> None:
    text = render_digest(build_digest(DigestData(()), NOV21, "UTC"))
    assert text.count("no data yet") == 3 and "none" in text


MON_NOV3 = datetime(2025, 11, 3, 8, 0, tzinfo=UTC)


def sentiment_line(now: datetime) -> str:
    fg = points("fear_greed_2025-10.csv", "fear_greed", NOV21)
    text = render_digest(build_digest(DigestData((), fg), now, "UTC"))
    return next(line for line in text.splitlines() if line.startswith("Fear"))


def test_four_week_old_fear_greed_says_as_of_its_date() -> None:
    assert sentiment_line(datetime(2025, 11, 28, 8, 0, tzinfo=UTC)).endswith(" · as of 31 Oct")


def test_fresh_fear_greed_reads_as_before() -> None:
    assert sentiment_line(datetime(2025, 11, 1, 5, 0, tzinfo=UTC)) == (
        "Fear &amp; Greed <b>29</b> (fear) on Fri 31 Oct: −5 vs a day before, −1 vs a week before"
    )


def etf_head(until: datetime) -> str:
    data = DigestData((AssetData("btc", etf("btc", until)),))
    return render_digest(build_digest(data, MON_NOV3, "UTC")).split("\n")[3]


def test_etf_flow_of_the_last_session_is_fresh_over_the_weekend() -> None:
    assert (
        etf_head(datetime(2025, 11, 1, tzinfo=UTC))
        == "<b>BTC</b> Fri 31 Oct: −$191.6M (outflows, 3rd day in a row)"
    )


def test_etf_flow_five_sessions_old_says_as_of() -> None:
    head = etf_head(datetime(2025, 10, 27, tzinfo=UTC))
    assert head.startswith("<b>BTC</b> Mon 27 Oct: +$149.3M") and head.endswith(" · as of 27 Oct")


def test_stale_after_two_polls_of_the_series_source() -> None:
    sources = SourcesSettings.model_validate(
        {"okx": {"interval": "2h"}, "bybit": {"enabled": False}}
    )
    staleness = Staleness(sources)
    assert staleness.interval("oi.btc.total") == timedelta(hours=2)
    assert staleness.interval("oi.btc.binance") == timedelta(minutes=5)
    assert staleness.interval("foo.bar") is None and staleness.interval("fear_greed") == timedelta(
        hours=1
    )
    at = datetime(2025, 11, 1, tzinfo=UTC)
    assert not staleness.stale("oi.btc.binance", at, at + timedelta(minutes=10))
    assert staleness.stale("oi.btc.binance", at, at + timedelta(minutes=11))
    assert not staleness.stale("oi.btc.total", at, at + timedelta(hours=4))
    assert staleness.stale("oi.btc.total", at, at + timedelta(hours=4, seconds=1))
    assert not staleness.stale("foo.bar", at, at + timedelta(days=400))


def test_charts_are_png() -> None:
    data = DigestData((AssetData("btc", etf("btc")),))
    assert render_chart(data, NOV21).startswith(b"\x89PNG")
    assert render_series_chart("etf.btc.net_flow", etf("btc"), "30d").startswith(b"\x89PNG")


def test_next_digest_across_berlin_dst_end() -> None:
    before = datetime(2025, 10, 25, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert next_digest_at("08:00", "Europe/Berlin", before) == datetime(
        2025, 10, 26, 7, 0, tzinfo=UTC
    )  # 08:00 CET
    assert next_digest_at("08:00", "UTC", before) == datetime(2025, 10, 25, 8, 0, tzinfo=UTC)


def test_first_schedule_keeps_a_chats_choice_else_takes_the_defaults() -> None:
    now = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
    tokyo = first_schedule(DigestSchedule(1, "09:30", "Asia/Tokyo", None), "08:00", "UTC", now)
    assert tokyo == DigestSchedule(
        1, "09:30", "Asia/Tokyo", datetime(2025, 11, 2, 0, 30, tzinfo=UTC)
    )
    default = first_schedule(DigestSchedule(2, None, None, None, False), "08:00", "UTC", now)
    assert default == DigestSchedule(2, "08:00", "UTC", datetime(2025, 11, 2, 8, tzinfo=UTC), False)
    gone = first_schedule(DigestSchedule(3, None, "Mars/Olympus", None), "08:00", "UTC", now)
    assert gone.timezone == "UTC"  # a zone tzdata no longer has falls back to the default
    assert zone_or("Asia/Tokyo", "UTC") == "Asia/Tokyo"
    assert (
        zone_or(None, "Europe/Berlin")
        == zone_or("Mars/Olympus", "Europe/Berlin")
        == "Europe/Berlin"
    )


def test_user_input_is_checked() -> None:
    assert parse_hhmm("7:30") == "07:30" and parse_hhmm("24:00") is None
    assert zone("Europe/Berlin") is not None
    assert zone("bad/zone") is None and zone("../../etc/passwd") is None
