"""The `SourceHealthLog` role in SQL: one row per source, replaced after every poll."""

from __future__ import annotations

from sqlalchemy import select

from bot.model import SourceHealth
from bot.store import schema as db
from bot.store.sql.base import SqlBase, epoch, when


class SqlSourceHealthLog(SqlBase):
    """The last known health of each source; only what `status` shows."""

    async def source_health(self) -> dict[str, SourceHealth]:
        """Return the last known health of every source."""
        rows = await self._fetch(select(db.source_health))
        return {
            r.name: SourceHealth(
                r.name,
                bool(r.up),
                when(r.last_success),
                r.last_error,
                when(r.last_error_at),
                r.failures,
            )
            for r in rows
        }

    async def save_source_health(self, health: SourceHealth) -> None:
        """Persist a source's health after each poll (only what `status` shows)."""
        stmt = self._replace(db.source_health, ("name",)).values(
            name=health.name,
            up=health.up,
            last_success=epoch(health.last_success),
            last_error=health.last_error,
            last_error_at=epoch(health.last_error_at),
            failures=health.failures,
        )
        await self._write(stmt)
