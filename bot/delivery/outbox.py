"""The outbox worker: groups, splits and delivers claimed rows through the delivery stage.

Rows for one chat claimed together become one message; a resolved alert edits its original
message. Chats are served concurrently and each chat in order; the pacer inside the bot spaces
the sends. Every row is marked sent as soon as Telegram accepts its message, so a crash repeats
at most the messages in flight (docs/architecture.md, "Delivery").
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.config import DeliverySettings
from bot.delivery.notifier import (
    Edit,
    Gone,
    Notifier,
    Refused,
    Retry,
    Sent,
    Text,
    Verdict,
    outcome,
)
from bot.delivery.pacer import Lane
from bot.delivery.split import message_chunks
from bot.delivery.stage import Stage
from bot.metrics import Metrics
from bot.model import Clock, OutboxItem, TransitionKind
from bot.store import Audience, OutboxQueue

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
"""Every this many failed tries of one message, a warning says it is still not out."""
BATCH = 200
MAX_INLINE_RETRIES = 5


def retry_delay(attempts: int, jitter: Callable[[], float] = random.random) -> timedelta:
    """Back off 5 s, 10 s, 20 s … up to 10 minutes, with jitter so chats don't retry in step."""
    base = min(600, 5 * 2**attempts)
    return timedelta(seconds=base * (0.5 + jitter() / 2))


@dataclass
class _Unit:
    """One message (maybe in several chunks) or one edit owed to a chat, and the rows it settles."""

    chat: str
    rows: list[OutboxItem]
    text: str
    edit_of: int | None = None
    chunks: list[str] = field(default_factory=list)
    message_id: int | None = None
    delivered: int = 0
    """Chunks Telegram accepted; a retry resumes after them instead of repeating them."""
    retry_at: datetime | None = None

    @property
    def attempts(self) -> int:
        return max(row.attempts for row in self.rows)


def plan(chat: str, items: list[OutboxItem]) -> list[_Unit]:
    """Edits stay one per row; every other row is merged into one message, in id order."""
    units: list[_Unit] = []
    merged: _Unit | None = None
    for item in sorted(items, key=lambda row: row.id):
        if item.kind is TransitionKind.RESOLVED and item.reply_to is not None:
            units.append(_Unit(chat, [item], item.text, edit_of=item.reply_to))
        elif merged is None:
            merged = _Unit(chat, [item], item.text)
            units.append(merged)
        else:
            merged.rows.append(item)
            merged.text += "\n\n" + item.text
    return units


class DeliveryStore(OutboxQueue, Audience, Protocol):
    """What delivery touches: the outbox, and chats that left or moved."""


class OutboxWorker:
    """Drains the outbox through the delivery stage; safe beside other workers (claims are CAS)."""

    def __init__(
        self,
        store: DeliveryStore,
        notifier: Notifier,
        clock: Clock,
        worker_id: str,
        settings: DeliverySettings | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        """Where sends, delivery times and the queue's length are counted (None: nowhere)."""
        self.clock = clock
        self.worker_id = worker_id
        self.settings = settings or DeliverySettings()
        self.stage = Stage(
            notifier, store, max_retry_wait=self.settings.max_retry_wait.total_seconds()
        )
        self._writes = asyncio.Lock()  # one store write at a time: SQLite has a single writer
        self._gone: set[str] = set()
        self._release_owed = False

    async def drain(self) -> int:
        """Deliver every due row; return how many rows were sent."""
        sent = 0
        self._gone = set()
        if self._release_owed:  # the last drain failed and could not hand its rows back
            await self.store.release_claims(self.worker_id)
            self._release_owed = False
        try:
            while batch := await self.store.claim_outbox(self.worker_id, self.clock(), BATCH):
                sent += await self._deliver_batch(batch)
        except Exception:
            try:
                await self.store.release_claims(self.worker_id)
            except Exception:  # the store is down: hand them back on the next drain instead
                self._release_owed = True
            raise
        if self.metrics is not None:
            self.metrics.outbox_pending(await self.store.pending_count())
        return sent

    async def _deliver_batch(self, batch: list[OutboxItem]) -> int:
        """Serve every chat of the batch concurrently; each chat's messages in order."""
        by_chat: dict[str, list[OutboxItem]] = {}
        for item in batch:
            by_chat.setdefault(item.chat_id, []).append(item)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._deliver_chat(plan(c, i))) for c, i in by_chat.items()]
        return sum(task.result() for task in tasks)

    async def _deliver_chat(self, units: list[_Unit]) -> int:
        """Deliver one chat's units in order; after a deferral the rest wait behind it."""
        sent = 0
        for index, unit in enumerate(units):
            if index:
                unit.chat = units[index - 1].chat  # follows a migration
            if unit.chat in self._gone:
                await self._mark_failed(unit, "the chat was deactivated", None, "gone")
                continue
            sent += await self._deliver(unit)
            if unit.retry_at is not None:
                for later in units[index + 1 :]:
                    later.chat = unit.chat
                    await self._mark_failed(
                        later, "waiting behind an earlier message", unit.retry_at, "retry"
                    )
                break
        return sent

    async def _deliver(self, unit: _Unit) -> int:
        """Deliver one unit; return the rows sent (0 if given up or deferred to `retry_at`)."""
        verdict = await self._attempt(unit)
        tries = 0
        # half a split message is out: finish it rather than repeat it later
        while isinstance(verdict, Retry) and unit.delivered and tries < MAX_INLINE_RETRIES:
            tries += 1
            await asyncio.sleep(retry_delay(tries).total_seconds() / 5)
            verdict = await self._attempt(unit)
        if isinstance(verdict, Sent):
            await self._mark_sent(unit)
            return len(unit.rows)
        return await self._failed(unit, verdict)

    async def _attempt(self, unit: _Unit) -> Verdict:
        """Edit the original message, or send the unit's remaining chunks."""
        if unit.edit_of is not None:
            done = await self._through(unit, Edit(unit.edit_of, unit.text))
            if isinstance(done, Sent):
                unit.message_id = unit.edit_of
                return done
            if not isinstance(done, Refused):
                return done
            log.info("could not edit %s in %s (%s); sending anew", unit.edit_of, unit.chat, done)
            unit.edit_of = None
        if not unit.chunks:
            unit.chunks = message_chunks(unit.text)
        verdict: Verdict = Sent(unit.message_id)
        while unit.delivered < len(unit.chunks):
            verdict = await self._through(unit, Text(unit.chunks[unit.delivered]))
            if not isinstance(verdict, Sent):
                return verdict
            unit.message_id = verdict.message_id if unit.delivered == 0 else unit.message_id
            unit.delivered += 1
        return verdict

    async def _through(self, unit: _Unit, message: Edit | Text) -> Verdict:
        """One message through the stage; a moved chat is followed for the rest of the unit."""
        done = await self.stage.deliver(unit.chat, message, Lane.BROADCAST)
        unit.chat = done.chat
        if isinstance(done.verdict, Gone):
            self._gone.add(unit.chat)
        return done.verdict

    async def _failed(self, unit: _Unit, verdict: Verdict) -> int:
        """Settle a unit that did not go out: partly out counts as sent, else drop or defer."""
        if unit.delivered:
            log.warning("delivery to %s: part of a split message was lost: %s", unit.chat, verdict)
            await self._mark_sent(unit)
            return len(unit.rows)
        reason = getattr(verdict, "reason", str(verdict))
        if not isinstance(verdict, Retry):
            log.warning("delivery to %s given up: %s", unit.chat, reason)
            await self._mark_failed(unit, reason, None, outcome(verdict))
            return 0
        # Telegram may take it later: the row stays, backing off up to 10 minutes between tries
        wait = timedelta(seconds=verdict.after) if verdict.after else retry_delay(unit.attempts)
        tries = unit.attempts + 1
        level = logging.WARNING if tries % MAX_ATTEMPTS == 0 else logging.INFO
        log.log(
            level,
            "delivery to %s failed %d time(s), next try in %ss: %s",
            unit.chat,
            tries,
            int(wait.total_seconds()),
            reason,
        )
        unit.retry_at = self.clock() + wait
        await self._mark_failed(unit, reason, unit.retry_at, "retry")
        return 0

    async def _mark_sent(self, unit: _Unit) -> None:
        async with self._writes:
            for row in unit.rows:
                await self.store.mark_sent(row.id, unit.message_id, self.clock())
        self._count(unit, "sent")

    async def _mark_failed(
        self, unit: _Unit, error: str, retry_at: datetime | None, result: str
    ) -> None:
        async with self._writes:
            for row in unit.rows:
                await self.store.mark_failed(row.id, error, self.clock(), retry_at)
        self._count(unit, result)

    def _count(self, unit: _Unit, result: str) -> None:
        """Each row's outcome by its kind; a sent row's time from enqueued to accepted."""
        if self.metrics is None:
            return
        now = self.clock()
        for row in unit.rows:
            self.metrics.sent(row.kind.value, result)
            if result == "sent" and row.created_at is not None:
                self.metrics.delivered_after((now - row.created_at).total_seconds())
