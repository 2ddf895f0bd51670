"""The `Store`: everything the bot remembers, as the sum of small roles (see `roles`).

See docs/architecture.md, "Store roles".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from bot.store.roles import (
    AlertLog,
    Audience,
    Deposed,
    DigestSchedules,
    Leases,
    LeaseView,
    Observations,
    OutboxQueue,
    SeriesSpan,
    SourceHealthLog,
    UpdateLog,
)

__all__ = [
    "AlertLog",
    "Audience",
    "Deposed",
    "DigestSchedules",
    "LeaseView",
    "Leases",
    "Observations",
    "OutboxQueue",
    "SeriesSpan",
    "SourceHealthLog",
    "Store",
    "UpdateLog",
    "open_store",
]


class Store(
    Observations,
    AlertLog,
    OutboxQueue,
    Audience,
    DigestSchedules,
    SourceHealthLog,
    Leases,
    UpdateLog,
    Protocol,
):
    """Every role at once, plus the schema and the connections, for code that wires them."""

    async def migrate(self) -> int:
        """Bring the schema to the newest version; return that version."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[Store]:
    """Open the SQL store for a SQLAlchemy URL, migrate it, and always close it afterwards."""
    from bot.store.sql import SqlStore

    store: Store = SqlStore(url)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
