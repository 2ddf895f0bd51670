"""The one delivery stage: a chat and a message in, a verdict out, for every outgoing message.

A moved group is followed (its subscription too) and the message sent there; a closed chat is
unsubscribed; a flood wait up to `max_retry_wait` is slept through for this chat alone, a longer
one goes back to the caller, which requeues (docs/architecture.md, "Delivery").
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Protocol

from bot.delivery.notifier import Gone, Message, Moved, Notifier, Refused, Retry, Verdict
from bot.delivery.pacer import Lane

log = logging.getLogger(__name__)
MAX_RETRY_WAIT = 60.0
"""The default longest flood wait slept through in place (`delivery.max_retry_wait`)."""
INLINE_TRIES = 5
"""Waits slept through for one message before the caller gets the `Retry`."""
REPLY_BACKOFF = 2.0
"""First pause before re-sending a reply that met a network error or a 5xx."""


class Chats(Protocol):
    """What the stage changes in the store: chats that closed or moved."""

    async def unsubscribe(self, chat_id: int) -> bool:
        """Deactivate a chat's subscription."""
        ...

    async def move_subscription(self, old_chat_id: int, new_chat_id: int) -> bool:
        """Follow a group that became a supergroup."""
        ...


def numeric_chat(chat_id: str) -> int | None:
    """The store's chat id for a numeric Telegram target; None for `@channel` names."""
    return int(chat_id) if chat_id.lstrip("-").isdigit() else None


def is_private(chat_id: str) -> bool:
    """Positive ids are people; negative ids and @usernames are groups and channels."""
    return chat_id.isdigit()


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where the message ended up (a moved group's new id) and Telegram's verdict."""

    chat: str
    verdict: Verdict


class Stage:
    """Every message goes through `deliver`; what a verdict means for the chat is decided here."""

    def __init__(
        self, notifier: Notifier, chats: Chats, *, max_retry_wait: float = MAX_RETRY_WAIT
    ) -> None:
        self.notifier = notifier
        self.chats = chats
        self.max_retry_wait = max_retry_wait

    async def deliver(self, chat: str, message: Message, lane: Lane = Lane.BROADCAST) -> Delivered:
        """Deliver one message: follow a move once, unsubscribe a closed chat, wait short floods.

        A reply (someone is waiting for it) is also re-sent after network errors, a few times.
        """
        moved, tries = False, 0
        while True:
            verdict = await self.notifier.deliver(chat, message, lane)
            match verdict:
                case Moved(chat_id=new_chat) if not moved:
                    await self._move(chat, new_chat)
                    chat, moved = str(new_chat), True
                    continue
                case Moved(reason=reason):
                    return Delivered(chat, Refused(f"moved twice: {reason}"))
                case Gone(reason=reason):
                    await self._close(chat, reason)
                case Retry(after=after) if tries < INLINE_TRIES and self._waits(after, lane):
                    tries += 1
                    wait = after if after is not None else REPLY_BACKOFF * 2 ** (tries - 1)
                    log.info("delivery to %s waits %.1fs: %s", chat, wait, verdict.reason)
                    await asyncio.sleep(wait * (1 if after is not None else 0.5 + random.random()))
                    continue
            return Delivered(chat, verdict)

    def _waits(self, after: float | None, lane: Lane) -> bool:
        """A flood wait we sleep through here, or a network error a waiting person retries."""
        if after is not None:
            return after <= self.max_retry_wait
        return lane is Lane.REPLY

    async def _move(self, chat: str, new_chat: int) -> None:
        """Follow a group that became a supergroup: its subscription, mutes and queue move."""
        old = numeric_chat(chat)
        if old is not None:
            await self.chats.move_subscription(old, new_chat)
        log.info("chat %s migrated to %s; delivering there", chat, new_chat)

    async def _close(self, chat: str, reason: str) -> None:
        """The chat blocked or removed the bot: unsubscribe it for good."""
        number = numeric_chat(chat)
        if number is not None and await self.chats.unsubscribe(number):
            log.info("chat %s is closed to the bot (%s); unsubscribed it", chat, reason)
