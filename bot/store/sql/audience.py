"""The `Audience` role in SQL: subscriptions, mutes, chat filters, and counts of what was sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update

from bot.model import ChatKind, Subscription, from_epoch, to_epoch
from bot.store import schema as db
from bot.store.sql.base import PENDING, SqlBase


class SqlAudience(SqlBase):
    """Chat rows are kept when a chat leaves, so a re-/start restores its settings."""

    async def subscriptions(self, active_only: bool = True) -> list[Subscription]:
        """Return subscriptions, ordered by chat id."""
        t = db.subscriptions
        query = select(t).order_by(t.c.chat_id)
        if active_only:
            query = query.where(t.c.active.is_(True))
        rows = await self._fetch(query)
        return [
            Subscription(
                r.chat_id, ChatKind(r.kind), r.title, bool(r.active), from_epoch(r.created_at)
            )
            for r in rows
        ]

    async def subscriber_ids(self) -> list[int]:
        """Active chats' ids, ordered: a fan-out needs only these, not a `Subscription` each."""
        t = db.subscriptions
        query = select(t.c.chat_id).where(t.c.active.is_(True)).order_by(t.c.chat_id)
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def subscribe(self, chat_id: int, kind: ChatKind, title: str, now: datetime) -> bool:
        """Activate a chat's subscription, keeping its settings; True if it was not active."""
        t, at = db.subscriptions, to_epoch(now)
        fresh = self._upsert(t).values(
            chat_id=chat_id, kind=str(kind), title=title, active=True, created_at=at, updated_at=at
        )
        async with self._writer.begin() as conn:
            if (await conn.execute(fresh.on_conflict_do_nothing())).rowcount == 1:
                return True
            changes = {"kind": str(kind), "title": title, "active": True, "updated_at": at}
            where = t.c.chat_id == chat_id
            revive = update(t).where(where, t.c.active.is_(False)).values(**changes)
            if (await conn.execute(revive)).rowcount == 1:
                return True
            await conn.execute(update(t).where(where).values(**changes))
            return False

    async def unsubscribe(self, chat_id: int) -> bool:
        """Deactivate a chat's subscription, keeping the row; True if it was active."""
        t = db.subscriptions
        stmt = (
            update(t)
            .where(t.c.chat_id == chat_id, t.c.active.is_(True))
            .values(active=False, updated_at=to_epoch(self._clock()), next_digest_at=None)
        )
        return await self._write(stmt) == 1

    async def move_subscription(self, old_chat_id: int, new_chat_id: int) -> bool:
        """A group became a supergroup: its subscription (and mutes) follow the new id."""
        t, m = db.subscriptions, db.mutes
        async with self._writer.begin() as conn:
            taken = (
                await conn.execute(select(t.c.chat_id).where(t.c.chat_id == new_chat_id))
            ).first()
            if taken is not None:
                await conn.execute(update(t).where(t.c.chat_id == old_chat_id).values(active=False))
            else:
                await conn.execute(
                    update(t).where(t.c.chat_id == old_chat_id).values(chat_id=new_chat_id)
                )
            for table in (m, db.chat_filters):
                await conn.execute(
                    update(table)
                    .where(table.c.chat_id == str(old_chat_id))
                    .values(chat_id=str(new_chat_id))
                )
            moved = await conn.execute(
                update(db.outbox)
                .where(db.outbox.c.chat_id == str(old_chat_id), db.outbox.c.status == PENDING)
                .values(chat_id=str(new_chat_id))
            )
        return bool(moved.rowcount) or taken is None

    async def mute(self, chat_id: str, target: str, until: datetime, reason: str = "") -> None:
        """Mute a rule id, `tag:<tag>` or `all` for a chat until a moment (replacing any mute)."""
        m = db.mutes
        row = {"chat_id": chat_id, "target": target, "until": to_epoch(until), "reason": reason}
        await self._write(self._replace(m, ("chat_id", "target")).values(**row))

    async def unmute(self, chat_id: str, target: str | None = None) -> int:
        """Lift one mute, or all of a chat's mutes; return how many were lifted."""
        m = db.mutes
        stmt = delete(m).where(m.c.chat_id == chat_id)
        if target is not None:
            stmt = stmt.where(m.c.target == target)
        return await self._write(stmt)

    async def mutes(self, now: datetime) -> dict[str, dict[str, datetime]]:
        """Active mutes: chat id → target → until."""
        m = db.mutes
        rows = await self._fetch(select(m).where(m.c.until > to_epoch(now)))
        out: dict[str, dict[str, datetime]] = {}
        for r in rows:
            out.setdefault(r.chat_id, {})[r.target] = from_epoch(r.until)
        return out

    async def set_filter(self, chat_id: str, targets: Sequence[str]) -> None:
        """Replace a chat's filter in one transaction; no targets means every alert."""
        f = db.chat_filters
        rows = [{"chat_id": chat_id, "target": t} for t in dict.fromkeys(targets)]
        async with self._writer.begin() as conn:
            await conn.execute(delete(f).where(f.c.chat_id == chat_id))
            if rows:
                await conn.execute(insert(f), rows)

    async def filters(self) -> dict[str, set[str]]:
        """Chats with a filter: chat id → the rule ids and `tag:<tag>` it receives."""
        out: dict[str, set[str]] = {}
        for r in await self._fetch(select(db.chat_filters)):
            out.setdefault(r.chat_id, set()).add(r.target)
        return out

    async def sent_counts(self, rule_id: str, since: datetime) -> dict[str, int]:
        """Messages enqueued per chat for a rule since a moment, in one query (fan-outs)."""
        o = db.outbox
        query = (
            select(o.c.chat_id, func.count())
            .where(o.c.rule_id == rule_id, o.c.created_at >= to_epoch(since))
            .group_by(o.c.chat_id)
        )
        return {r[0]: int(r[1]) for r in await self._fetch(query)}

    async def notified(self, rule_id: str) -> dict[str, datetime]:
        """When each chat was last told about a rule (the notification log), in one query."""
        n = db.notification_log
        rows = await self._fetch(select(n.c.chat_id, n.c.sent_at).where(n.c.rule_id == rule_id))
        return {r[0]: from_epoch(r[1]) for r in rows}
