"""Throwaway databases for the store contract suite: a SQLite file, or a PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

import asyncpg  # type: ignore[import-untyped]
import pytest

from bot.store.sql import SqlStore

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_ADMIN_DSN = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"


class PostgresUnavailableError(RuntimeError):
    """The PostgreSQL server for the store suite cannot be reached."""


def sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL in a folder that does not exist yet, so the store must create it."""
    return f"sqlite+aiosqlite:///{tmp_path / 'var' / 'stablewatch.db'}"


async def make_sqlite_store(tmp_path: Path) -> SqlStore:
    """Open and migrate a store on a fresh SQLite file under `tmp_path`."""
    store = SqlStore(sqlite_url(tmp_path))
    await store.migrate()
    return store


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise PostgresUnavailableError(f"PostgreSQL at {PG_ADMIN_DSN} unreachable: {exc}") from exc


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """Create a uniquely named empty database, yield its URL, and always drop it afterwards."""
    name = f"stablewatch_test_{uuid.uuid4().hex}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def postgres_store() -> AsyncIterator[SqlStore]:
    """Yield a migrated store on a fresh PostgreSQL database that is dropped afterwards."""
    async with postgres_database() as url:
        store = SqlStore(url)
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()


def postgres_missing(exc: PostgresUnavailableError) -> NoReturn:
    """Fail under CI, where PostgreSQL is part of the contract; skip on a laptop without it."""
    if os.environ.get("CI"):
        pytest.fail(f"{exc} (CI is set, so the PostgreSQL store suite must run)")
    pytest.skip(f"{exc}; start it with: pg_ctlcluster <version> main start")
