"""When a chat's next daily digest is due: local wall-clock time in its IANA zone, DST-correct.

This is the digest's scheduling policy; the store only applies the moments computed here, each
change by compare-and-set (see docs/architecture.md, "Digest").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.model import OFF, DigestSchedule
from bot.store.roles import DigestSchedules
from bot.timezones import zone

DIGEST_LEASE = timedelta(minutes=15)
"""How long a claimed digest is held by its sender; one killed mid-send is due again after it."""
CLAIM_LIMIT = 200
"""Digests claimed at most per call."""


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


def zone_or(name: str | None, fallback: str) -> str:
    """A stored zone that no longer exists (tzdata changed) falls back rather than failing."""
    return name if name and zone(name) is not None else fallback


def first_schedule(
    unscheduled: DigestSchedule, time: str, timezone: str, now: datetime
) -> DigestSchedule:
    """A chat's first schedule: its own time and zone where it chose them, else the defaults."""
    hhmm = unscheduled.digest_time or time
    tz = zone_or(unscheduled.timezone, timezone)
    return replace(
        unscheduled, digest_time=hhmm, timezone=tz, next_at=next_digest_at(hhmm, tz, now)
    )


async def schedule_new_digests(
    store: DigestSchedules, time: str, timezone: str, now: datetime, *, with_channels: bool = False
) -> int:
    """Give active chats without a schedule the default one (once, by compare-and-set).

    `with_channels` keeps the channels' row (chat id 0, inactive so no alert goes to it) at
    the default time, moving it when that time or zone changed. Returns the chats scheduled.
    """
    if with_channels:
        await store.keep_channels_row(time, timezone, next_digest_at(time, timezone, now), now)
    unscheduled = await store.unscheduled_digests()
    return await store.schedule_digests(
        [first_schedule(u, time, timezone, now) for u in unscheduled]
    )


async def claim_due(
    store: DigestSchedules, now: datetime, limit: int = CLAIM_LIMIT
) -> list[DigestSchedule]:
    """Take due digests for one lease; their zone is a usable one (UTC if the stored one is gone).

    A sender killed meanwhile leaves them due again when the lease ends; `schedule_next_day`
    moves them on once sent. Two workers never both win one; one missed for days comes once.
    """
    claimed = await store.claim_due_digests(now, now + DIGEST_LEASE, limit)
    return [replace(c, timezone=zone_or(c.timezone, "UTC")) for c in claimed]


async def schedule_next_day(store: DigestSchedules, claimed: DigestSchedule, now: datetime) -> bool:
    """A claimed digest went out: schedule the next local day, unless the chat changed it."""
    if claimed.digest_time is None or claimed.digest_time == OFF:
        return False
    later = next_digest_at(claimed.digest_time, zone_or(claimed.timezone, "UTC"), now)
    return await store.finish_digest(claimed, later)
