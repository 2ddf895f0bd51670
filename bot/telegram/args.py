"""Command arguments checked against what exists, before anything reaches the store."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.durations import format_duration, parse_duration
from bot.engine.ruleset import RuleSet
from bot.keys import SERIES_KEY
from bot.model import OFF
from bot.timezones import parse_hhmm, zone_name

MAX_MUTE = timedelta(days=365)
MAX_HISTORY = 50
DEFAULT_HISTORY = 10
DEFAULT_SPAN = "30d"
MAX_SPAN = timedelta(days=366)
_SPAN = re.compile(r"(\d{1,3})([hdwy])")
_SPAN_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


@dataclass(frozen=True, slots=True)
class Usage:
    """A bad argument: the one line that tells the user what was expected."""

    text: str


@dataclass(frozen=True, slots=True)
class MuteArgs:
    """A checked `/mute`: a known target and a bounded duration."""

    target: str
    duration: timedelta


def known_targets(rules: RuleSet) -> list[str]:
    """Every rule id and `tag:<tag>`, in a stable order (tags first), for validation and buttons."""
    tags = sorted({f"tag:{t}" for r in rules.rules for t in r.tags})
    return [*tags, *sorted(r.id for r in rules.rules)]


def target_of(word: str, rules: RuleSet, *, allow_all: bool = True) -> str | None:
    """Resolve `all`, a rule id, `tag:x` or a bare tag `x` (rule ids win); None if unknown."""
    word = word.strip().lower()
    if allow_all and word == "all":
        return "all"
    known = set(known_targets(rules))
    if word in known:
        return word
    return f"tag:{word}" if f"tag:{word}" in known else None


def parse_mute(args: Sequence[str], rules: RuleSet) -> MuteArgs | Usage:
    """`/mute RULE|TAG|all DURATION`, the duration between 1s and a year."""
    usage = Usage("Usage: /mute RULE|TAG|all DURATION, e.g. /mute etf 8h (see /rules)")
    if len(args) != 2:
        return usage
    target = target_of(args[0], rules)
    if target is None:
        return Usage(f"Unknown rule or tag; {usage.text}")
    try:
        duration = parse_duration(args[1])
    except (ValueError, OverflowError):
        return Usage(f"Bad duration; {usage.text}")
    if duration > MAX_MUTE:
        return Usage(f"At most {format_duration(MAX_MUTE)}; {usage.text}")
    return MuteArgs(target, duration)


def parse_unmute(args: Sequence[str], rules: RuleSet, muted: set[str]) -> str | Usage | None:
    """`/unmute [RULE|TAG|all]`: None lifts every mute; a target must be known or muted now."""
    usage = Usage("Usage: /unmute [RULE|TAG|all]; without an argument every mute is lifted")
    if not args:
        return None
    if len(args) != 1:
        return usage
    word = args[0].strip().lower()
    if word in muted:
        return word
    target = target_of(word, rules)
    return usage if target is None else target


def parse_history(args: Sequence[str]) -> int | Usage:
    """`/history [N]`, N from 1 to 50."""
    usage = Usage(f"Usage: /history [N], N from 1 to {MAX_HISTORY}")
    if not args:
        return DEFAULT_HISTORY
    if len(args) != 1 or len(args[0]) > 3 or not args[0].isascii() or not args[0].isdigit():
        return usage
    count = int(args[0])
    return count if 1 <= count <= MAX_HISTORY else usage


def parse_targets(args: Sequence[str], rules: RuleSet, command: str) -> list[str] | Usage:
    """`/subscribe TARGET…` typed out: every word a known rule id or tag (or `all`)."""
    usage = Usage(f"Usage: /{command} [RULE|TAG|all …]; without arguments, pick from buttons")
    out = []
    for word in args:
        target = target_of(word, rules)
        if target is None:
            return usage
        out.append(target)
    return out


@dataclass(frozen=True, slots=True)
class ChartArgs:
    """A checked `/chart`: a well-formed series key and a bounded time span."""

    series: str
    span: timedelta
    label: str


def parse_span(text: str) -> timedelta | None:
    """`12h`, `7d`, `4w`, `1y`: from one hour to a year; None for anything else."""
    match = _SPAN.fullmatch(text.strip().lower())
    if not match:
        return None
    count, unit = int(match[1]), match[2]
    span = timedelta(days=365 * count) if unit == "y" else count * _SPAN_UNITS[unit]
    return span if timedelta(hours=1) <= span <= MAX_SPAN else None


def _chartable(series: str) -> bool:
    """Any well-formed key: the bot writes five-part ones (`etf.btc.net_flow.farside.ibit`)."""
    return bool(SERIES_KEY.fullmatch(series))


def parse_chart(args: Sequence[str]) -> ChartArgs | Usage:
    """`/chart SERIES [RANGE]`: the key's shape is checked here, its existence by the caller."""
    usage = Usage(
        "Usage: /chart SERIES [RANGE], e.g. /chart etf.btc.net_flow 30d (RANGE 12h to 1y)"
    )
    if not 1 <= len(args) <= 2:
        return usage
    series = args[0].strip().lower()
    if len(series) > 64 or not _chartable(series):
        return usage
    label = args[1].strip().lower() if len(args) == 2 else DEFAULT_SPAN
    span = parse_span(label)
    return usage if span is None else ChartArgs(series, span, label)


def parse_digest(args: Sequence[str]) -> str | Usage | None:
    """`/digest HH:MM|off`: a normalised time or `off`; None (no argument) shows the setting."""
    usage = Usage("Usage: /digest HH:MM|off, e.g. /digest 07:30 (in this chat's /timezone)")
    if not args:
        return None
    if len(args) != 1:
        return usage
    word = args[0].strip().lower()
    if word == OFF:
        return OFF
    hhmm = parse_hhmm(word) if len(word) <= 5 else None
    return usage if hhmm is None else hhmm


def parse_timezone(args: Sequence[str]) -> str | Usage | None:
    """`/timezone ZONE`: a known IANA name (any case); None (no argument) shows the setting."""
    usage = Usage("Usage: /timezone ZONE with an IANA name, e.g. /timezone Europe/Berlin")
    if not args:
        return None
    if len(args) != 1 or len(args[0]) > 64:
        return usage
    found = zone_name(args[0])
    if found is None:
        return Usage(f"Unknown time zone; {usage.text}")
    return found
