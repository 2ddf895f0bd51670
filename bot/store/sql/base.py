"""The engine every SQL role shares: SQLite by default, PostgreSQL when replicas share one.

Dialect differences (upserts, SQLite's write lock and pragmas) stay in this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Row,
    Table,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.model import Clock, from_epoch, system_clock, to_epoch
from bot.store import migrations
from bot.store.roles import Deposed

PENDING, SENT, FAILED = "pending", "sent", "failed"
"""An outbox row's status."""
CHUNK = 500
"""Rows per executemany call, so a huge import never builds one giant batch of parameters."""
ARRAY_CHUNK = 10_000
"""Rows per multi-row INSERT over column arrays (PostgreSQL): few round trips, bounded size."""
SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "stablewatch_begin"

Upsert = sqlite.Insert | postgresql.Insert


def epoch(ts: datetime | None) -> int | None:
    """A nullable moment as stored: epoch seconds or NULL."""
    return None if ts is None else to_epoch(ts)


def when(seconds: int | None) -> datetime | None:
    """A nullable stored moment back as an aware UTC datetime."""
    return None if seconds is None else from_epoch(seconds)


def chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split rows into CHUNK-sized batches for executemany."""
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def _prepare_sqlite(url: URL, engine: AsyncEngine) -> None:
    """Create the database's folder; make SQLite wait for locks and emit our own BEGIN."""
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's implicit transactions skip DDL and SELECTs; we BEGIN ourselves instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


def _unnest_insert(table: Table, names: list[str], dialect: Any) -> str:
    """`INSERT … SELECT` over one array parameter per column, rows kept in array order."""
    quoted = ", ".join(f'"{n}"' for n in names)
    arrays = ", ".join(f"CAST(:{n} AS {table.c[n].type.compile(dialect=dialect)}[])" for n in names)
    return (
        f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} '
        f"FROM unnest({arrays}) WITH ORDINALITY AS r({quoted}, n) ORDER BY n"
    )


class _FencedWriter:
    """Begins write transactions; once fenced, each first checks the lease is still our epoch.

    On PostgreSQL the check reads the lease row `FOR SHARE`, so a takeover (which updates that
    row) waits for our transaction to end: a write either commits inside our term or is refused.
    """

    def __init__(self, engine: AsyncEngine, dialect: str) -> None:
        self._engine = engine
        self._lock = " FOR SHARE" if dialect == "postgresql" else ""
        self.fence: tuple[str, int] | None = None

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.begin() as conn:
            if self.fence is not None:
                await self._check(conn, *self.fence)
            yield conn

    async def _check(self, conn: AsyncConnection, name: str, epoch: int) -> None:
        query = text(f"SELECT epoch FROM leader_lease WHERE name = :name{self._lock}")
        held = (await conn.execute(query, {"name": name})).scalar()
        if held != epoch:
            raise Deposed(
                f"the {name} lease is at epoch {held}, this replica's write carries {epoch}"
            )


class SqlBase:
    """Owns the engine and the statement helpers the role mixins build on."""

    def __init__(self, url: str, *, clock: Clock = system_clock) -> None:
        parsed = make_url(url)
        self._dialect = parsed.get_backend_name()
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self._dialect!r}: use sqlite or postgresql")
        self._clock = clock
        self._engine = create_async_engine(parsed)
        # Writers take SQLite's write lock up front: a deferred transaction that reads and then
        # writes fails with "database is locked" instead of waiting when another writer got there.
        writer = self._engine
        if self._dialect == "sqlite":
            _prepare_sqlite(parsed, self._engine)
            writer = self._engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        self._writer = _FencedWriter(writer, self._dialect)

    def fence(self, lease: str, epoch: int | None) -> None:
        """Refuse every later write unless `lease` is still at `epoch` (None: stop checking)."""
        self._writer.fence = None if epoch is None else (lease, epoch)

    @property
    def engine(self) -> AsyncEngine:
        """The engine itself, for tests and tools that read the tables directly."""
        return self._engine

    def _upsert(self, table: Table) -> Upsert:
        """INSERT in the dialect that has ON CONFLICT."""
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _replace(self, table: Table, keys: Sequence[str]) -> Upsert:
        """INSERT … ON CONFLICT (keys) DO UPDATE every other column from the new row."""
        stmt = self._upsert(table)
        new = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=new)

    async def _insert_columns(
        self, conn: AsyncConnection, table: Table, columns: dict[str, list[Any]]
    ) -> None:
        """Insert rows given column by column, in order, inside the caller's transaction.

        PostgreSQL gets one `INSERT … SELECT FROM unnest(arrays)` per ARRAY_CHUNK rows (a
        fan-out's 100k rows cost a few statements, not 100k bound parameter sets); SQLite,
        executemany in CHUNKs.
        """
        names = list(columns)
        count = len(columns[names[0]]) if names else 0
        if count == 0:
            return
        if self._dialect != "postgresql":
            rows = [
                dict(zip(names, values, strict=True))
                for values in zip(*columns.values(), strict=True)
            ]
            for chunk in chunks(rows):
                await conn.execute(insert(table), chunk)
            return
        stmt = text(_unnest_insert(table, names, conn.dialect))
        for lo in range(0, count, ARRAY_CHUNK):
            await conn.execute(stmt, {n: columns[n][lo : lo + ARRAY_CHUNK] for n in names})

    async def _column_lists(
        self, columns: Sequence[ColumnElement[Any]], order: ColumnElement[Any], *where: Any
    ) -> list[list[Any]]:
        """One read's rows column by column, in `order`.

        PostgreSQL answers one row of arrays (`array_agg … ORDER BY`), so a series' thousands
        of points skip the per-row result machinery; SQLite reads the rows.
        """
        if self._dialect == "postgresql":
            arrays = [func.array_agg(aggregate_order_by(c, order)) for c in columns]
            (row,) = await self._fetch(select(*arrays).where(*where))
            return [list(values or ()) for values in row]
        rows = await self._fetch(select(*columns).where(*where).order_by(order))
        return [[r[i] for r in rows] for i in range(len(columns))]

    async def _fetch(self, query: Executable) -> Sequence[Row[Any]]:
        """Every row of one read, on a connection of its own."""
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).all()

    async def _write(self, stmt: Executable) -> int:
        """One statement in its own write transaction; return the rows it changed."""
        async with self._writer.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    async def migrate(self) -> int:
        """Bring the schema to the newest version; return that version."""
        async with self._writer.begin() as conn:
            return await migrations.migrate(conn)

    async def close(self) -> None:
        """Release connections."""
        await self._engine.dispose()
