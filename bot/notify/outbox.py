"""The outbox worker: delivers claimed rows and applies each delivery error's retry semantics."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.model import Clock
from bot.notify import DeliveryError, Notifier
from bot.store import Store

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


def retry_delay(attempts: int) -> timedelta:
    """Back off 5 s, 10 s, 20 s … up to 10 minutes between attempts."""
    return timedelta(seconds=min(600, 5 * 2**attempts))


class OutboxWorker:
    """Drains the outbox through one notifier; safe to run beside other workers (claims are CAS)."""

    def __init__(self, store: Store, notifier: Notifier, clock: Clock, worker_id: str) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.worker_id = worker_id

    async def drain(self) -> int:
        """Deliver every due row; return how many were sent."""
        sent = 0
        while batch := await self.store.claim_outbox(self.worker_id, self.clock(), limit=50):
            for item in batch:
                try:
                    message_id = await self.notifier.send(item.chat_id, item.text)
                except DeliveryError as exc:
                    await self._failed(item.id, item.chat_id, item.attempts, exc)
                    continue
                await self.store.mark_sent(item.id, message_id, self.clock())
                sent += 1
        return sent

    async def _failed(self, item_id: int, chat_id: str, attempts: int, exc: DeliveryError) -> None:
        """Give up on permanent errors (deactivating gone chats), else schedule a retry."""
        now = self.clock()
        if exc.permanent or attempts + 1 >= MAX_ATTEMPTS:
            log.warning("delivery to %s given up: %s", chat_id, exc)
            await self.store.mark_failed(item_id, str(exc), now, None)
            if exc.deactivate and chat_id.lstrip("-").isdigit():
                await self.store.unsubscribe(int(chat_id))
            return
        wait = (
            timedelta(seconds=exc.retry_after)
            if exc.retry_after is not None
            else retry_delay(attempts)
        )
        log.info("delivery to %s deferred %ss: %s", chat_id, int(wait.total_seconds()), exc)
        await self.store.mark_failed(item_id, str(exc), now, now + wait)
