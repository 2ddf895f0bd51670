"""The `Observations` role in SQL: one row per (series, ts), a revision replaces the value."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from sqlalchemy import func, select

from bot.model import Observation, from_epoch, to_epoch
from bot.store import schema as db
from bot.store.roles import SeriesSpan
from bot.store.sql.base import CHUNK, SqlBase, chunks


class SqlObservations(SqlBase):
    """Points of every series, written in batches and read in time order."""

    async def upsert_observations(self, observations: Sequence[Observation]) -> int:
        """Insert points in one transaction; a later point at the same (series, ts) wins."""
        rows = [{"series": o.series, "ts": to_epoch(o.ts), "value": o.value} for o in observations]
        if not rows:
            return 0
        stmt = self._replace(db.observations, ("series", "ts"))
        async with self._writer.begin() as conn:
            for chunk in chunks(rows):
                await conn.execute(stmt, chunk)
        return len(rows)

    async def observations(
        self, series: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Observation]:
        """Return one series' points in time order, optionally within [since, until]."""
        t = db.observations
        query = select(t.c.ts, t.c.value).where(t.c.series == series).order_by(t.c.ts)
        if since is not None:
            query = query.where(t.c.ts >= to_epoch(since))
        if until is not None:
            query = query.where(t.c.ts <= to_epoch(until))
        rows = await self._fetch(query)
        return [Observation(series, from_epoch(r.ts), r.value) for r in rows]

    async def series_arrays(
        self, series: str, since: datetime | None = None
    ) -> tuple[list[int], list[float]]:
        """Epoch seconds and values as plain lists: the evaluation hot path skips datetimes."""
        t = db.observations
        where = [t.c.series == series]
        if since is not None:
            where.append(t.c.ts >= to_epoch(since))
        ts, values = await self._column_lists((t.c.ts, t.c.value), t.c.ts, *where)
        return ts, values

    async def latest(self, series: str) -> Observation | None:
        """Return the newest point of a series."""
        t = db.observations
        query = (
            select(t.c.ts, t.c.value).where(t.c.series == series).order_by(t.c.ts.desc()).limit(1)
        )
        rows = await self._fetch(query)
        return Observation(series, from_epoch(rows[0].ts), rows[0].value) if rows else None

    async def series_names(self) -> list[str]:
        """Every series with at least one point, sorted (to suggest names in `/chart`)."""
        t = db.observations
        return [
            r.series for r in await self._fetch(select(t.c.series).distinct().order_by(t.c.series))
        ]

    async def series_spans(self) -> list[SeriesSpan]:
        """Per series first ts, last ts and point count, in one GROUP BY, sorted by series."""
        t = db.observations
        query = (
            select(t.c.series, func.min(t.c.ts), func.max(t.c.ts), func.count())
            .group_by(t.c.series)
            .order_by(t.c.series)
        )
        return [
            SeriesSpan(series, from_epoch(first), from_epoch(last), points)
            for series, first, last, points in await self._fetch(query)
        ]

    async def iter_observations(self) -> AsyncIterator[Observation]:
        """Stream every point ordered by series then time, without loading them all."""
        t = db.observations
        query = select(t.c.series, t.c.ts, t.c.value).order_by(t.c.series, t.c.ts)
        async with self._engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=CHUNK))
            async for row in result:
                yield Observation(row.series, from_epoch(row.ts), row.value)
