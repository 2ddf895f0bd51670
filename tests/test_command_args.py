"""Command arguments: any text gives a usage line or a checked value, never an exception."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.engine.rules import load_rules
from bot.telegram.args import (
    MAX_MUTE,
    MuteArgs,
    Usage,
    known_targets,
    parse_history,
    parse_mute,
    parse_targets,
    parse_unmute,
)
from tests.conftest import ROOT

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
