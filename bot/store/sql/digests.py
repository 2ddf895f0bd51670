"""The `DigestSchedules` role in SQL: compare-and-set on `next_digest_at`, moments handed in.

When a digest is due is the digest's policy (bot.digest.schedule); this module only makes each
change atomic, so two workers never both win and a stale claim changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update

from bot.model import CHANNELS_ROW, OFF, ChatKind, DigestSchedule, to_epoch
from bot.store import schema as db
from bot.store.sql.base import SqlBase, epoch, when

_t = db.subscriptions
_WANTED = or_(_t.c.active.is_(True), _t.c.chat_id == CHANNELS_ROW)
"""Rows that get a digest: subscribed chats, and the channels' row (inactive: no alerts)."""
_UNSET = and_(
    _t.c.next_digest_at.is_(None), or_(_t.c.digest_time.is_(None), _t.c.digest_time != OFF)
)
"""Rows that want a digest but have no due moment yet."""


class SqlDigestSchedules(SqlBase):
    """Digest settings live on the subscription row; `next_digest_at` is both due time and lock."""

    async def digest_schedule(self, chat_id: int) -> DigestSchedule | None:
        """A chat's digest time, zone and next due moment; None if it never subscribed."""
        rows = await self._fetch(select(_t).where(_t.c.chat_id == chat_id))
        return _schedule(rows[0]) if rows else None

    async def set_digest(
        self, chat_id: int, time: str | None, timezone: str | None, next_at: datetime | None
    ) -> bool:
        """Store a chat's digest settings and next due moment; False if the chat has no row."""
        values = {"digest_time": time, "timezone": timezone, "next_digest_at": epoch(next_at)}
        return await self._write(update(_t).where(_t.c.chat_id == chat_id).values(**values)) == 1

    async def unscheduled_digests(self) -> list[DigestSchedule]:
        """Active chats, and the channels' row, that want a digest but have no due moment yet."""
        query = select(_t).where(_WANTED, _UNSET).order_by(_t.c.chat_id)
        return [_schedule(r) for r in await self._fetch(query)]

    async def schedule_digests(self, schedules: Sequence[DigestSchedule]) -> int:
        """Set each chat's time, zone and `next_at` in one transaction, only where still unset.

        The condition is the one `unscheduled_digests` read with, so a chat another worker
        scheduled, or one turned off or unsubscribed meanwhile, is left as it is.
        """
        if not schedules:
            return 0
        done = 0
        async with self._writer.begin() as conn:
            for s in schedules:
                values = {
                    "digest_time": s.digest_time,
                    "timezone": s.timezone,
                    "next_digest_at": epoch(s.next_at),
                }
                stmt = update(_t).where(_t.c.chat_id == s.chat_id, _WANTED, _UNSET)
                done += (await conn.execute(stmt.values(**values))).rowcount
        return done

    async def keep_channels_row(
        self, time: str, timezone: str, next_at: datetime, now: datetime
    ) -> None:
        """Create the channels' schedule row, or move it to `next_at` when time or zone changed."""
        at = to_epoch(now)
        row = {
            "chat_id": CHANNELS_ROW,
            "kind": str(ChatKind.CHANNEL),
            "title": "telegram.channels",
            "active": False,
            "created_at": at,
            "updated_at": at,
        }
        moved = or_(
            _t.c.digest_time.is_(None),
            _t.c.digest_time != time,
            _t.c.timezone.is_(None),
            _t.c.timezone != timezone,
        )
        values = {"digest_time": time, "timezone": timezone, "next_digest_at": to_epoch(next_at)}
        async with self._writer.begin() as conn:
            await conn.execute(self._upsert(_t).values(**row).on_conflict_do_nothing())
            await conn.execute(
                update(_t).where(_t.c.chat_id == CHANNELS_ROW, moved).values(**values)
            )

    async def claim_due_digests(
        self, now: datetime, until: datetime, limit: int = 200
    ) -> list[DigestSchedule]:
        """Take digests due at `now` by moving `next_at` to `until`, compare-and-set on the old.

        The returned schedules carry `until` as `next_at` and the zone as stored. A sender killed
        before finishing leaves its digests due again at `until`; one missed for days is
        returned once; two workers never both win.
        """
        if until <= now:
            raise ValueError(f"a digest claim must last past now, not until {until.isoformat()}")
        at = to_epoch(now)
        due = select(_t).where(_WANTED, _t.c.next_digest_at <= at, _t.c.digest_time != OFF)
        claimed: list[DigestSchedule] = []
        async with self._writer.begin() as conn:
            rows = (await conn.execute(due.order_by(_t.c.next_digest_at).limit(limit))).all()
            for r in rows:
                stmt = update(_t).where(
                    _t.c.chat_id == r.chat_id, _t.c.next_digest_at == r.next_digest_at
                )
                if (await conn.execute(stmt.values(next_digest_at=to_epoch(until)))).rowcount == 1:
                    claimed.append(DigestSchedule(r.chat_id, r.digest_time, r.timezone, until))
        return claimed

    async def finish_digest(self, claimed: DigestSchedule, next_at: datetime) -> bool:
        """A claimed digest went out: due next at `next_at`, unless the row changed since."""
        return await self._move_claim(claimed, next_at)

    async def release_digest(self, claimed: DigestSchedule, retry_at: datetime) -> bool:
        """Make a claimed digest due again at `retry_at` (delivery failed), unless it changed."""
        return await self._move_claim(claimed, retry_at)

    async def _move_claim(self, claimed: DigestSchedule, to: datetime) -> bool:
        """Compare-and-set from the claim's `next_at`, so a stale claim changes nothing."""
        stmt = update(_t).where(
            _t.c.chat_id == claimed.chat_id, _t.c.next_digest_at == epoch(claimed.next_at)
        )
        return await self._write(stmt.values(next_digest_at=to_epoch(to))) == 1


def _schedule(r: Any) -> DigestSchedule:
    return DigestSchedule(
        r.chat_id, r.digest_time, r.timezone, when(r.next_digest_at), bool(r.active)
    )
