"""The `UpdateLog` role in SQL: Telegram update ids already handled, so a new leader skips them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from bot.model import to_epoch
from bot.store import schema as db
from bot.store.sql.base import SqlBase


class SqlUpdateLog(SqlBase):
    """One row per handled update; the insert is the check (its primary key refuses a repeat)."""

    async def first_sight(self, update_id: int, now: datetime) -> bool:
        """Record an update as handled; False when some replica already handled it."""
        stmt = self._upsert(db.telegram_updates).values(update_id=update_id, seen_at=to_epoch(now))
        return await self._write(stmt.on_conflict_do_nothing(index_elements=["update_id"])) == 1

    async def forget_updates(self, before: datetime) -> int:
        """Drop ids older than Telegram keeps unconfirmed updates (24 h): the table stays small."""
        u = db.telegram_updates
        return await self._write(delete(u).where(u.c.seen_at < to_epoch(before)))
