"""The `SourceHealthLog` role in SQL: one row per source, replaced after every poll."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from bot.model import SourceHealth, to_epoch
from bot.store import schema as db
from bot.store.sql.base import SqlBase, epoch, when

_POLLED = ("up", "last_success", "last_error", "last_error_at", "failures")
"""What a poll writes; `down_notified_at` changes only by compare-and-set."""


class SqlSourceHealthLog(SqlBase):
    """The last known health of each source, and whether the admins were told it is down."""

    async def source_health(self) -> dict[str, SourceHealth]:
        """Return the last known health of every source."""
        rows = await self._fetch(db.source_health.select())
        return {
            r.name: SourceHealth(
                r.name,
                bool(r.up),
                when(r.last_success),
                r.last_error,
                when(r.last_error_at),
                r.failures,
                when(r.down_notified_at),
            )
            for r in rows
        }

    async def save_source_health(self, health: SourceHealth) -> None:
        """Persist a source's health after each poll; the down notice marker stays as stored."""
        stmt = self._upsert(db.source_health).values(
            name=health.name,
            up=health.up,
            last_success=epoch(health.last_success),
            last_error=health.last_error,
            last_error_at=epoch(health.last_error_at),
            failures=health.failures,
        )
        new = {column: stmt.excluded[column] for column in _POLLED}
        await self._write(stmt.on_conflict_do_update(index_elements=["name"], set_=new))

    async def mark_down_notified(self, name: str, at: datetime) -> bool:
        """Compare-and-set the marker from NULL, so one replica (or run) tells the admins."""
        h = db.source_health
        stmt = update(h).where(h.c.name == name, h.c.down_notified_at.is_(None))
        return await self._write(stmt.values(down_notified_at=to_epoch(at))) == 1

    async def clear_down_notified(self, name: str) -> bool:
        """Compare-and-set the marker back to NULL: whoever clears it tells of the recovery."""
        h = db.source_health
        stmt = update(h).where(h.c.name == name, h.c.down_notified_at.is_not(None))
        return await self._write(stmt.values(down_notified_at=None)) == 1
