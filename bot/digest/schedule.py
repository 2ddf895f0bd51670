"""When a chat's next daily digest is due: local wall-clock time in its IANA zone, DST-correct."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

OFF = "off"
"""Stored as `digest_time` when a chat turned its digest off (NULL means "the default")."""
CHANNELS_ROW = 0
"""Telegram never uses chat id 0: an inactive row with it holds the channels' digest schedule."""
DIGEST_LEASE = timedelta(minutes=15)
"""How long a claimed digest is held by its sender; one killed mid-send is due again after it."""
_HH_MM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    """One chat's digest settings as stored; `next_at` None means not scheduled yet (or off)."""

    chat_id: int
    digest_time: str | None
    timezone: str | None
    next_at: datetime | None
    active: bool = True


def parse_hhmm(text: str) -> str | None:
    """Normalise "7:30" to "07:30"; None for anything that is not a 24-hour time."""
    match = _HH_MM.fullmatch(text.strip())
    return f"{int(match[1]):02d}:{match[2]}" if match else None


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, or None, so user input never raises (or touches odd paths)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}", name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@cache
def _zones_by_lower_name() -> dict[str, str]:
    """Every IANA name the system knows, keyed by lower case (read once)."""
    from zoneinfo import available_timezones

    return {name.lower(): name for name in available_timezones()}


def zone_name(text: str) -> str | None:
    """The canonical IANA name for what a user typed ("europe/berlin" too), or None."""
    text = text.strip()
    if zone(text) is not None:
        return text
    found = _zones_by_lower_name().get(text.lower())
    return found if found is not None and zone(found) is not None else None


def next_digest_at(hhmm: str, tz: str, after: datetime) -> datetime:
    """The first moment strictly after `after` when the clock in `tz` shows `hhmm`, in UTC.

    A time skipped by a spring-forward gap falls an hour later; a repeated one is taken once.
    """
    hour, minute = (int(p) for p in hhmm.split(":"))
    where = ZoneInfo(tz)
    local_day = after.astimezone(where).date()
    for days in range(3):
        wall = datetime.combine(local_day + timedelta(days=days), time(hour, minute), where)
        moment = wall.astimezone(UTC)
        if moment > after:
            return moment
    raise AssertionError("unreachable: a wall-clock time recurs within three days")
