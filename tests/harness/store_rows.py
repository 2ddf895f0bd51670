"""Plain-SQL reads of the store's tables: what tests check but the bot itself never asks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.model import from_epoch
from bot.store import Store
from bot.store import schema as db
from bot.store.sql import SqlStore


def engine_of(store: Store) -> AsyncEngine:
    """The SQL engine behind a store opened by `open_store` (always a `SqlStore`)."""
    assert isinstance(store, SqlStore), f"{type(store).__name__} has no SQL engine"
    return store.engine


async def pending_outbox(store: Store) -> int:
    """Outbox rows neither sent nor given up."""
    o = db.outbox
    query = select(func.count()).select_from(o).where(o.c.status == "pending")
    async with engine_of(store).connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def notification(
    store: Store, rule_id: str, chat_id: str
) -> tuple[int | None, datetime] | None:
    """The message id and time last logged as sent for (rule, chat), or None."""
    log = db.notification_log
    query = select(log.c.message_id, log.c.sent_at).where(
        log.c.rule_id == rule_id, log.c.chat_id == str(chat_id)
    )
    async with engine_of(store).connect() as conn:
        rows = (await conn.execute(query)).all()
    assert len(rows) <= 1, f"{len(rows)} log rows for ({rule_id}, {chat_id})"
    return (rows[0].message_id, from_epoch(rows[0].sent_at)) if rows else None
