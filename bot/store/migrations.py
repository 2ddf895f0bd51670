"""Versioned schema migrations, so a database created by an older release upgrades in place.

`schema.py` always describes the newest schema. A fresh database gets it whole from version 1
(`create_all`) and is stamped with the newest version; an existing database at version n runs
migrations n+1 … newest, each of which turns the schema of its predecessor into its own. Everything
runs in one transaction (DDL is transactional on PostgreSQL and, with the store's explicit BEGIN,
on SQLite), so a failed upgrade leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import metadata, schema_version

# Any constant bigint: replicas starting together take turns instead of racing the DDL.
_PG_MIGRATION_LOCK = 0x5354_4142_4C45  # "STABLE"


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer release; running older code on it could corrupt it."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema history; `apply` runs inside the migration transaction."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_all(conn: Connection) -> None:
    """Version 1: create every table (at the newest schema, see the module docstring)."""
    metadata.create_all(conn, checkfirst=True)


def _alert_state_detail(conn: Connection) -> None:
    """Version 2: lifecycle details (pending count, clear time, last firing) as a JSON column."""
    from sqlalchemy import inspect, text

    columns = {c["name"] for c in inspect(conn).get_columns("alert_states")}
    if "detail" not in columns:
        conn.execute(text("ALTER TABLE alert_states ADD COLUMN detail TEXT NOT NULL DEFAULT '{}'"))


def _mutes(conn: Connection) -> None:
    """Version 3: per-chat mutes of a rule, a tag or everything, with an expiry."""
    from bot.store.schema import mutes

    mutes.create(conn, checkfirst=True)


def _chat_filters(conn: Connection) -> None:
    """Version 4: per-chat subscription filters (rule ids and tags chosen with /subscribe)."""
    from bot.store.schema import chat_filters

    chat_filters.create(conn, checkfirst=True)


def _outbox_not_before_index(conn: Connection) -> None:
    """Version 5: an index on outbox.not_before, so each chat's newest message is found cheaply."""
    from bot.store.schema import outbox

    (index,) = (i for i in outbox.indexes if i.name == "ix_outbox_not_before")
    index.create(conn, checkfirst=True)


def _leadership(conn: Connection) -> None:
    """Version 6: the leader lease, Telegram updates already handled, source-down notices."""
    from sqlalchemy import inspect

    from bot.store.schema import leader_lease, telegram_updates

    leader_lease.create(conn, checkfirst=True)
    telegram_updates.create(conn, checkfirst=True)
    columns = {c["name"] for c in inspect(conn).get_columns("source_health")}
    if "down_notified_at" not in columns:
        conn.execute(text("ALTER TABLE source_health ADD COLUMN down_notified_at BIGINT"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create all tables", _create_all),
    Migration(2, "alert_states.detail", _alert_state_detail),
    Migration(3, "mutes", _mutes),
    Migration(4, "chat_filters", _chat_filters),
    Migration(5, "ix_outbox_not_before", _outbox_not_before_index),
    Migration(6, "leader_lease, telegram_updates, source_health.down_notified_at", _leadership),
)


def newest_version(migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Return the version this code brings a database to."""
    return migrations[-1].version


def current_version(conn: Connection) -> int:
    """Read the stored version; 0 for a database that has never been migrated."""
    if not conn.dialect.has_table(conn, schema_version.name):
        return 0
    version = conn.execute(select(func.max(schema_version.c.version))).scalar()
    return int(version or 0)


def upgrade(conn: Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply the missing migrations on a connection inside a transaction; return the version."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or versions[0] != 1:
        raise ValueError(f"migrations must be numbered 1, 2, … in order, got {versions}")
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    newest = versions[-1]
    current = current_version(conn)
    if current > newest:
        raise SchemaTooNewError(
            f"database schema is at version {current} but this release knows only up to "
            f"version {newest}; upgrade Stablewatch or point it at another database"
        )
    if current == newest:
        return newest
    schema_version.create(conn, checkfirst=True)
    if current == 0:
        migrations[0].apply(conn)  # the newest schema, whole
        conn.execute(insert(schema_version).values(version=newest))
        return newest
    for migration in migrations:
        if migration.version > current:
            migration.apply(conn)
    conn.execute(update(schema_version).values(version=newest))
    return newest


async def migrate(conn: AsyncConnection) -> int:
    """Bring the schema up to date on an async connection that is already in a transaction."""
    return await conn.run_sync(upgrade)
