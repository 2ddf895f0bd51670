"""The `OutboxQueue` role in SQL: claims by compare-and-set, leases, the notification log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from bot.model import OutboxItem, TransitionKind, from_epoch, to_epoch
from bot.store import schema as db
from bot.store.sql.base import FAILED, PENDING, SENT, SqlBase

CLAIM_LEASE_SECONDS = 600
"""A claim older than this belongs to a sender that died: another may take the row over."""


class SqlOutboxQueue(SqlBase):
    """Rows go pending → claimed → sent or failed; a resolved one replies to the logged message."""

    async def claim_outbox(self, worker: str, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Claim due, unsent rows by compare-and-set so two senders never take the same row."""
        if limit <= 0:
            return []
        o, log, at = db.outbox, db.notification_log, to_epoch(now)
        # a claim older than the lease belongs to a sender that died: take the row over
        free = or_(o.c.claimed_by.is_(None), o.c.claimed_at < at - CLAIM_LEASE_SECONDS)
        due = (
            select(o.c.id)
            .where(o.c.status == PENDING, free, o.c.not_before <= at)
            .order_by(o.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite has one writer anyway
        )
        claim = update(o).values(claimed_by=worker, claimed_at=at)
        async with self._writer.begin() as conn:
            ids = list((await conn.execute(due)).scalars())
            if not ids:
                return []
            await conn.execute(claim.where(o.c.id.in_(ids), free, o.c.status == PENDING))
            joined = o.outerjoin(
                log, and_(log.c.rule_id == o.c.rule_id, log.c.chat_id == o.c.chat_id)
            )
            mine = (
                select(o, log.c.message_id.label("logged_message_id"))
                .select_from(joined)
                .where(o.c.id.in_(ids), o.c.claimed_by == worker)
                .order_by(o.c.id)
            )
            rows = (await conn.execute(mine)).all()
        return [_outbox_item(r) for r in rows]

    async def mark_sent(self, item_id: int, message_id: int | None, now: datetime) -> None:
        """Record a delivery and its Telegram message id in the notification log.

        Two statements (the update returns what the log needs): the worker marks every row the
        moment Telegram accepts it, so each round trip saved is broadcast throughput.
        """
        o, at = db.outbox, to_epoch(now)
        sent = {"status": SENT, "sent_at": at, "message_id": message_id}
        mark = (
            update(o)
            .where(o.c.id == item_id)
            .values(claimed_by=None, claimed_at=None, **sent)
            .returning(o.c.rule_id, o.c.chat_id, o.c.kind)
        )
        async with self._writer.begin() as conn:
            row = (await conn.execute(mark)).first()
            if row is None:
                raise KeyError(f"no outbox row {item_id}")
            logged = self._replace(db.notification_log, ("rule_id", "chat_id")).values(
                rule_id=row.rule_id,
                chat_id=row.chat_id,
                message_id=message_id,
                kind=row.kind,
                sent_at=at,
            )
            await conn.execute(logged)

    async def mark_failed(
        self, item_id: int, error: str, now: datetime, retry_at: datetime | None
    ) -> None:
        """Release a claimed row for a retry at `retry_at`, or give it up when that is None."""
        o = db.outbox
        changes: dict[str, Any] = {"attempts": o.c.attempts + 1, "error": error}
        changes |= {"claimed_by": None, "claimed_at": None}
        if retry_at is None:
            changes["status"] = FAILED
        else:
            changes["not_before"] = to_epoch(retry_at)
        if await self._write(update(o).where(o.c.id == item_id).values(**changes)) != 1:
            raise KeyError(f"no outbox row {item_id}")

    async def release_claims(self, worker: str) -> int:
        """Put rows a worker claimed but never finished back in the queue; "*" releases all."""
        o = db.outbox
        stmt = (
            update(o)
            .where(o.c.status == PENDING, o.c.claimed_by.is_not(None))
            .values(claimed_by=None, claimed_at=None)
        )
        if worker != "*":
            stmt = stmt.where(o.c.claimed_by == worker)
        return await self._write(stmt)

    async def pending_count(self) -> int:
        """Rows neither sent nor given up, due or not, claimed or not."""
        o = db.outbox
        rows = await self._fetch(select(func.count()).select_from(o).where(o.c.status == PENDING))
        return int(rows[0][0])


def _outbox_item(row: Any) -> OutboxItem:
    kind = TransitionKind(row.kind)
    return OutboxItem(
        id=row.id,
        key=row.key,
        chat_id=row.chat_id,
        text=row.text,
        rule_id=row.rule_id,
        kind=kind,
        attempts=row.attempts,
        created_at=from_epoch(row.created_at),
        reply_to=row.logged_message_id if kind is TransitionKind.RESOLVED else None,
    )
