"""The outbox worker: groups, splits, paces and delivers claimed rows.

Rows for one chat claimed together become one message; a resolved alert edits its original
message. Our own limiter sits in front of PTB's (overall, per private chat, per group or
channel), chats are served concurrently and each chat in order. Every row is marked sent as soon
as Telegram accepts its message, so a crash repeats at most the messages in flight (see
docs/architecture.md, "Delivery").
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from math import ceil
from typing import Protocol, TypeVar

from aiolimiter import AsyncLimiter

from bot.config import DeliverySettings
from bot.delivery.notifier import DeliveryError, Notifier
from bot.delivery.split import message_chunks
from bot.model import Clock, OutboxItem, TransitionKind
from bot.store import Audience, OutboxQueue

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
BATCH = 200
MAX_INLINE_WAIT = 60.0
"""A flood wait up to this long is slept through; a longer one goes back to the outbox."""
MAX_INLINE_RETRIES = 5
_PRUNE_AT = 4096
T = TypeVar("T")


def retry_delay(attempts: int, jitter: Callable[[], float] = random.random) -> timedelta:
    """Back off 5 s, 10 s, 20 s … up to 10 minutes, with jitter so chats don't retry in step."""
    base = min(600, 5 * 2**attempts)
    return timedelta(seconds=base * (0.5 + jitter() / 2))


def is_private(chat_id: str) -> bool:
    """Positive ids are people; negative ids and @usernames are groups and channels."""
    return chat_id.isdigit()


def numeric_chat(chat_id: str) -> int | None:
    """The store's chat id for a numeric Telegram target; None for `@channel` names."""
    return int(chat_id) if chat_id.lstrip("-").isdigit() else None


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


class Pacer:
    """Our own rate limits in front of PTB's, which has no per-private-chat limit."""

    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        self._overall = AsyncLimiter(settings.global_rate, 1.0)
        self._chats: dict[str, AsyncLimiter] = {}
        self._resume_at = 0.0
        self._in_flight = asyncio.Semaphore(max(1, ceil(settings.global_rate)))

    def _chat(self, chat: str) -> AsyncLimiter:
        """One message per period per chat, evenly spaced: no bursts for Telegram to punish."""
        limiter = self._chats.get(chat)
        if limiter is None:
            if len(self._chats) >= _PRUNE_AT:
                self._chats = {k: v for k, v in self._chats.items() if not v.has_capacity()}
            period = (
                1 / self.settings.private_rate
                if is_private(chat)
                else 60 / self.settings.group_per_minute
            )
            limiter = self._chats[chat] = AsyncLimiter(1, period)
        return limiter

    async def chat_turn(self, chat: str) -> None:
        """Wait until this chat may get its next message."""
        await self._chat(chat).acquire()

    async def overall_turn(self) -> None:
        """Wait for a slot under the overall rate, and out of any global flood pause."""
        loop = asyncio.get_running_loop()
        while True:
            left = self._resume_at - loop.time()
            if left > 0:
                await asyncio.sleep(left)
                continue  # the pause may have been extended meanwhile
            await self._overall.acquire()
            if self._resume_at <= loop.time():
                return

    async def run(self, chat: str, call: Callable[[], Awaitable[T]]) -> T:
        """Make one Telegram call within the chat's, the overall and the concurrency limits."""
        await self.chat_turn(chat)
        async with self._in_flight:
            await self.overall_turn()
            return await call()

    def pause_all(self, seconds: float) -> None:
        """Stop every send for a while: Telegram said we flood overall."""
        self._resume_at = max(self._resume_at, asyncio.get_running_loop().time() + seconds)


class DeliveryStore(OutboxQueue, Audience, Protocol):
    """What delivery touches: the outbox, and chats that left or moved."""


class OutboxWorker:
    """Drains the outbox through one notifier; safe to run beside other workers (claims are CAS)."""

    def __init__(
        self,
        store: DeliveryStore,
        notifier: Notifier,
        clock: Clock,
        worker_id: str,
        settings: DeliverySettings | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.worker_id = worker_id
        self.settings = settings or DeliverySettings()
        self.pacer = Pacer(self.settings)
        self._writes = asyncio.Lock()  # one store write at a time: SQLite has a single writer
        self._gone: set[str] = set()

    async def drain(self) -> int:
        """Deliver every due row; return how many rows were sent."""
        sent = 0
        self._gone = set()
        try:
            while batch := await self.store.claim_outbox(self.worker_id, self.clock(), BATCH):
                sent += await self._deliver_batch(batch)
        except Exception:
            await self.store.release_claims(self.worker_id)
            raise
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
                await self._mark_failed(unit, "the chat was deactivated", None)
                continue
            sent += await self._deliver(unit)
            if unit.retry_at is not None:
                for later in units[index + 1 :]:
                    later.chat = unit.chat
                    await self._mark_failed(
                        later, "waiting behind an earlier message", unit.retry_at
                    )
                break
        return sent

    async def _deliver(self, unit: _Unit) -> int:
        """Deliver one unit; return the rows sent (0 if given up or deferred to `retry_at`)."""
        migrated, tries = False, 0
        while True:
            try:
                await self._attempt(unit)
            except DeliveryError as exc:
                if exc.migrate_to is not None and not migrated:
                    await self._migrate(unit, exc.migrate_to)
                    migrated = True
                    continue
                wait = self._inline_wait(unit, exc, tries)
                if wait is None:
                    return await self._failed(unit, exc)
                tries += 1
                await self._pause(unit.chat, wait, exc)
                continue
            await self._mark_sent(unit)
            return len(unit.rows)

    def _inline_wait(self, unit: _Unit, exc: DeliveryError, tries: int) -> float | None:
        """Seconds to wait before retrying right here, or None to settle the rows now."""
        if exc.permanent or tries >= MAX_INLINE_RETRIES:
            return None
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= MAX_INLINE_WAIT else None
        if unit.delivered:  # half a split message is out: finish it rather than repeat it
            return retry_delay(tries).total_seconds() / 5
        return None

    async def _pause(self, chat: str, seconds: float, exc: DeliveryError) -> None:
        """Sleep through a wait; a flood on a private chat means we flood overall, so pause all."""
        log.info("delivery to %s paused %.1fs: %s", chat, seconds, exc)
        if exc.retry_after is not None and is_private(chat):
            self.pacer.pause_all(seconds)
        await asyncio.sleep(seconds)

    async def _attempt(self, unit: _Unit) -> None:
        """Edit the original message, or send the unit's remaining chunks."""
        if unit.edit_of is not None:
            message_id = unit.edit_of
            try:
                await self.pacer.run(
                    unit.chat, partial(self._edit, unit.chat, message_id, unit.text)
                )
            except DeliveryError as exc:
                if not exc.permanent or exc.deactivate:
                    raise
                log.info("could not edit %s in %s (%s); sending anew", message_id, unit.chat, exc)
                unit.edit_of = None
            else:
                unit.message_id = message_id
                return
        if not unit.chunks:
            unit.chunks = message_chunks(unit.text)
        while unit.delivered < len(unit.chunks):
            send = partial(self.notifier.send, unit.chat, unit.chunks[unit.delivered])
            accepted = await self.pacer.run(unit.chat, send)
            unit.message_id = accepted if unit.delivered == 0 else unit.message_id
            unit.delivered += 1

    async def _edit(self, chat: str, message_id: int, text: str) -> int | None:
        await self.notifier.edit(chat, message_id, text)
        return message_id

    async def _migrate(self, unit: _Unit, new_chat: int) -> None:
        """Follow a group that became a supergroup: move its subscription, resend there."""
        old = numeric_chat(unit.chat)
        if old is not None:
            async with self._writes:
                await self.store.move_subscription(old, new_chat)
        log.info("chat %s migrated to %s; delivering there", unit.chat, new_chat)
        unit.chat = str(new_chat)

    async def _failed(self, unit: _Unit, exc: DeliveryError) -> int:
        """Settle a failed unit: partial deliveries count as sent, else give up or defer."""
        if unit.delivered:
            log.warning("delivery to %s: part of a split message was lost: %s", unit.chat, exc)
            await self._mark_sent(unit)
            return len(unit.rows)
        if exc.deactivate:
            await self._deactivate(unit.chat)
        if exc.permanent or unit.attempts + 1 >= MAX_ATTEMPTS:
            log.warning("delivery to %s given up: %s", unit.chat, exc)
            await self._mark_failed(unit, str(exc), None)
            return 0
        wait = timedelta(seconds=exc.retry_after) if exc.retry_after else retry_delay(unit.attempts)
        if exc.retry_after is not None and is_private(unit.chat):
            self.pacer.pause_all(min(exc.retry_after, MAX_INLINE_WAIT))
        log.info("delivery to %s deferred %ss: %s", unit.chat, int(wait.total_seconds()), exc)
        unit.retry_at = self.clock() + wait
        await self._mark_failed(unit, str(exc), unit.retry_at)
        return 0

    async def _deactivate(self, chat: str) -> None:
        """The chat blocked or removed the bot: unsubscribe it and skip its other rows."""
        self._gone.add(chat)
        number = numeric_chat(chat)
        if number is not None:
            async with self._writes:
                await self.store.unsubscribe(number)
        log.info("chat %s is closed to the bot; unsubscribed it", chat)

    async def _mark_sent(self, unit: _Unit) -> None:
        async with self._writes:
            for row in unit.rows:
                await self.store.mark_sent(row.id, unit.message_id, self.clock())

    async def _mark_failed(self, unit: _Unit, error: str, retry_at: datetime | None) -> None:
        async with self._writes:
            for row in unit.rows:
                await self.store.mark_failed(row.id, error, self.clock(), retry_at)
