"""The `DigestSchedules` role in SQL: schedules and claims, compare-and-set on `next_digest_at`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.digest.schedule import DIGEST_LEASE, next_digest_at
from bot.model import CHANNELS_ROW, OFF, ChatKind, DigestSchedule, to_epoch
from bot.store import schema as db
from bot.store.sql.base import SqlBase, epoch, when
from bot.timezones import zone


class SqlDigestSchedules(SqlBase):
    """Digest settings live on the subscription row; `next_digest_at` is both due time and lock."""

    async def digest_schedule(self, chat_id: int) -> DigestSchedule | None:
        """A chat's digest time, zone and next due moment; None if it never subscribed."""
        t = db.subscriptions
        rows = await self._fetch(select(t).where(t.c.chat_id == chat_id))
        return _schedule(rows[0]) if rows else None

    async def set_digest(
        self, chat_id: int, time: str | None, timezone: str | None, next_at: datetime | None
    ) -> bool:
        """Store a chat's digest settings and next due moment; False if the chat has no row."""
        t = db.subscriptions
        values = {"digest_time": time, "timezone": timezone, "next_digest_at": epoch(next_at)}
        return await self._write(update(t).where(t.c.chat_id == chat_id).values(**values)) == 1

    async def schedule_new_digests(
        self, time: str, timezone: str, now: datetime, *, with_channels: bool = False
    ) -> int:
        """Give active chats without a schedule the default one (once, by compare-and-set).

        `with_channels` keeps the channels' row (chat id 0, inactive so no alert goes to it)
        at the default time.
        """
        t = db.subscriptions
        async with self._writer.begin() as conn:
            if with_channels:
                await self._keep_channels_row(conn, time, timezone, now)
            wanted = or_(t.c.active.is_(True), t.c.chat_id == CHANNELS_ROW)
            unset = and_(
                t.c.next_digest_at.is_(None), or_(t.c.digest_time.is_(None), t.c.digest_time != OFF)
            )
            rows = (await conn.execute(select(t).where(wanted, unset))).all()
            done = 0
            for r in rows:
                hhmm, tz = r.digest_time or time, _zone_or(r.timezone, timezone)
                values = {
                    "digest_time": hhmm,
                    "timezone": tz,
                    "next_digest_at": to_epoch(next_digest_at(hhmm, tz, now)),
                }
                stmt = update(t).where(t.c.chat_id == r.chat_id, t.c.next_digest_at.is_(None))
                done += (await conn.execute(stmt.values(**values))).rowcount
        return done

    async def _keep_channels_row(
        self, conn: AsyncConnection, time: str, timezone: str, now: datetime
    ) -> None:
        """Create the channels' schedule row, or move it when the default time changed."""
        t, at = db.subscriptions, to_epoch(now)
        row = {
            "chat_id": CHANNELS_ROW,
            "kind": str(ChatKind.CHANNEL),
            "title": "telegram.channels",
            "active": False,
            "created_at": at,
            "updated_at": at,
        }
        await conn.execute(self._upsert(t).values(**row).on_conflict_do_nothing())
        moved = or_(
            t.c.digest_time.is_(None),
            t.c.digest_time != time,
            t.c.timezone.is_(None),
            t.c.timezone != timezone,
        )
        values = {
            "digest_time": time,
            "timezone": timezone,
            "next_digest_at": to_epoch(next_digest_at(time, timezone, now)),
        }
        await conn.execute(update(t).where(t.c.chat_id == CHANNELS_ROW, moved).values(**values))

    async def claim_due_digests(
        self, now: datetime, lease: timedelta = DIGEST_LEASE, limit: int = 200
    ) -> list[DigestSchedule]:
        """Take due digests by moving `next_at` to the end of a lease, compare-and-set on the old.

        The returned schedules carry the lease's end as `next_at`: `finish_digest` moves it to
        the next local day once sent; a sender killed meanwhile leaves it due again when the
        lease ends. A digest missed for days is returned once, and two workers never both win.
        """
        t, at = db.subscriptions, to_epoch(now)
        wanted = or_(t.c.active.is_(True), t.c.chat_id == CHANNELS_ROW)
        due = select(t).where(wanted, t.c.next_digest_at <= at, t.c.digest_time != OFF)
        until = now + lease
        claimed: list[DigestSchedule] = []
        async with self._writer.begin() as conn:
            rows = (await conn.execute(due.order_by(t.c.next_digest_at).limit(limit))).all()
            for r in rows:
                stmt = update(t).where(
                    t.c.chat_id == r.chat_id, t.c.next_digest_at == r.next_digest_at
                )
                if (await conn.execute(stmt.values(next_digest_at=to_epoch(until)))).rowcount == 1:
                    tz = _zone_or(r.timezone, "UTC")
                    claimed.append(DigestSchedule(r.chat_id, r.digest_time, tz, until))
        return claimed

    async def finish_digest(self, claimed: DigestSchedule, now: datetime) -> bool:
        """A claimed digest went out: schedule the next local day, unless the chat changed it."""
        t = db.subscriptions
        if claimed.digest_time is None or claimed.digest_time == OFF:
            return False
        later = next_digest_at(claimed.digest_time, _zone_or(claimed.timezone, "UTC"), now)
        stmt = update(t).where(
            t.c.chat_id == claimed.chat_id, t.c.next_digest_at == epoch(claimed.next_at)
        )
        return await self._write(stmt.values(next_digest_at=to_epoch(later))) == 1

    async def release_digest(self, claimed: DigestSchedule, retry_at: datetime) -> bool:
        """Make a claimed digest due again at `retry_at` (delivery failed), unless it changed."""
        t = db.subscriptions
        stmt = update(t).where(
            t.c.chat_id == claimed.chat_id, t.c.next_digest_at == epoch(claimed.next_at)
        )
        return await self._write(stmt.values(next_digest_at=to_epoch(retry_at))) == 1


def _schedule(r: Any) -> DigestSchedule:
    return DigestSchedule(
        r.chat_id, r.digest_time, r.timezone, when(r.next_digest_at), bool(r.active)
    )


def _zone_or(name: str | None, fallback: str) -> str:
    """A stored zone that no longer exists (tzdata changed) falls back rather than failing."""
    return name if name and zone(name) is not None else fallback
