"""When a chat's next daily digest is due: local wall-clock time in its IANA zone, DST-correct."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DIGEST_LEASE = timedelta(minutes=15)
"""How long a claimed digest is held by its sender; one killed mid-send is due again after it."""


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
