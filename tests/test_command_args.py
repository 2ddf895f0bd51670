"""Command arguments: any text gives a usage line or a checked value, never an exception."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from bot.engine.loader import load_rules
from bot.keys import SERIES_KEY
from bot.model import OFF
from bot.telegram.args import (
    MAX_MUTE,
    MAX_SPAN,
    ChartArgs,
    MuteArgs,
    Usage,
    known_targets,
    parse_chart,
    parse_digest,
    parse_history,
    parse_mute,
    parse_span,
    parse_targets,
    parse_timezone,
    parse_unmute,
)
from bot.timezones import parse_hhmm
from tests.harness.files import ROOT

RULES = load_rules(ROOT / "rules")
KNOWN = {"all", *known_targets(RULES)}
words = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["all", "etf", "tag:etf", "extreme-fear", "8h", "1d2h", "99999999999w"]),
        st.from_regex(r"[0-9]{1,30}(ms|s|m|h|d|w|y)?", fullmatch=True),
    ),
    max_size=4,
)


@given(words)
def test_mute_parses_or_explains(args: list[str]) -> None:
    parsed = parse_mute(args, RULES)
    if isinstance(parsed, MuteArgs):
        assert parsed.target in KNOWN
        assert timedelta(0) < parsed.duration <= MAX_MUTE
    else:
        assert isinstance(parsed, Usage) and "Usage: /mute" in parsed.text


@given(words, st.sets(st.text(max_size=10), max_size=3))
def test_unmute_parses_or_explains(args: list[str], muted: set[str]) -> None:
    parsed = parse_unmute(args, RULES, muted)
    assert parsed is None or isinstance(parsed, Usage) or parsed in KNOWN | muted


@given(words)
def test_history_parses_or_explains(args: list[str]) -> None:
    parsed = parse_history(args)
    assert isinstance(parsed, Usage) or 1 <= parsed <= 50


@given(words)
def test_targets_parse_or_explain(args: list[str]) -> None:
    parsed = parse_targets(args, RULES, "subscribe")
    assert isinstance(parsed, Usage) or set(parsed) <= KNOWN


def test_examples() -> None:
    assert parse_mute(["ETF", "1d2h"], RULES) == MuteArgs("tag:etf", timedelta(hours=26))
    assert parse_history([]) == 10 and parse_history(["50"]) == 50
    assert isinstance(parse_history(["٣"]), Usage)  # a non-ASCII digit
    assert parse_unmute(["old-rule"], RULES, {"old-rule"}) == "old-rule"


digest_words = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["off", "OFF", "7:30", "23:59", "24:00", "Europe/Berlin", "utc", "../x"]),
        st.from_regex(r"[0-9]{1,3}[hdwy]", fullmatch=True),
        st.from_regex(r"[a-z_]{1,10}(\.[a-z0-9_]{1,10}){0,4}", fullmatch=True),
    ),
    max_size=3,
)


@given(digest_words)
def test_chart_parses_or_explains(args: list[str]) -> None:
    parsed = parse_chart(args)
    if isinstance(parsed, ChartArgs):
        assert SERIES_KEY.fullmatch(parsed.series) and len(parsed.series) <= 64
        assert timedelta(hours=1) <= parsed.span <= MAX_SPAN
    else:
        assert isinstance(parsed, Usage) and "\n" not in parsed.text


def test_chart_takes_every_key_the_bot_writes() -> None:
    assert parse_chart(["ETF.btc.net_flow.IBIT", "7d"]) == ChartArgs(
        "etf.btc.net_flow.ibit", timedelta(days=7), "7d"
    )
    five = parse_chart(["etf.btc.net_flow.farside.ibit"])  # a secondary provider's fund series
    assert isinstance(five, ChartArgs) and five.series == "etf.btc.net_flow.farside.ibit"
    for refused in ("etf..btc", "etf.btc.", "funding-btc", "x" * 65):
        assert isinstance(parse_chart([refused]), Usage), refused


@given(digest_words)
def test_digest_time_parses_or_explains(args: list[str]) -> None:
    parsed = parse_digest(args)
    if parsed is None:
        assert not args
    elif isinstance(parsed, str):
        assert parsed == OFF or parse_hhmm(parsed) == parsed
    else:
        assert isinstance(parsed, Usage) and "\n" not in parsed.text


@given(digest_words)
def test_timezone_is_a_loadable_iana_name_or_explained(args: list[str]) -> None:
    parsed = parse_timezone(args)
    if isinstance(parsed, str):
        assert ZoneInfo(parsed).key == parsed
    elif parsed is not None:
        assert isinstance(parsed, Usage) and "\n" not in parsed.text


def test_spans_and_zone_names_read_like_people_type_them() -> None:
    assert parse_span("12h") == timedelta(hours=12) and parse_span("1y") == timedelta(days=365)
    assert parse_span("30m") is None and parse_span("2y") is None
    assert parse_timezone(["europe/BERLIN"]) == "Europe/Berlin"
    assert parse_timezone(["utc"]) == "UTC"
