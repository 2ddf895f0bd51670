"""The `Store`: everything the bot remembers, as the sum of small roles (see `roles`).

See docs/architecture.md, "Store roles".
"""

from __future__ import annotations

from typing import Protocol

from bot.store.roles import (
    AlertLog,
    Audience,
    DigestSchedules,
    Observations,
    OutboxQueue,
    SourceHealthLog,
)

__all__ = [
    "AlertLog",
    "Audience",
    "DigestSchedules",
    "Observations",
    "OutboxQueue",
    "SourceHealthLog",
    "Store",
    "open_store",
]


class Store(
    Observations, AlertLog, OutboxQueue, Audience, DigestSchedules, SourceHealthLog, Protocol
):
    """Every role at once, plus the schema and the connections, for code that wires them."""

    async def migrate(self) -> int:
        """Bring the schema to the newest version; return that version."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


async def open_store(url: str) -> Store:
    """Open the SQL store for a SQLAlchemy URL and migrate it."""
    from bot.store.sql import SqlStore

    store = SqlStore(url)
    await store.migrate()
    return store
