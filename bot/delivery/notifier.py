"""What a notifier is asked to send, the verdict it answers with, and the protocol itself.

Every outgoing message — alerts, resolves, reminders, digests, command replies, keyboard edits,
admin notices, error reports — is one `Notifier.deliver(chat, message, lane)` call, and every
answer is one of five verdicts (docs/architecture.md, "Delivery").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias

from bot.delivery.pacer import Lane

Button: TypeAlias = tuple[str, str]
"""An inline button: its label and the callback data Telegram sends back when it is pressed."""
Keyboard: TypeAlias = tuple[tuple[Button, ...], ...]
"""Rows of inline buttons, as plain data so nothing below `telegram/` needs PTB's types."""


@dataclass(frozen=True, slots=True)
class Text:
    """An HTML message; `thread_id` keeps a reply in the forum topic it answers."""

    body: str
    keyboard: Keyboard | None = None
    thread_id: int | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    """New HTML text (and keyboard) for a message the bot sent earlier."""

    message_id: int
    body: str
    keyboard: Keyboard | None = None


@dataclass(frozen=True, slots=True)
class Photo:
    """A PNG chart with a short HTML caption (at most 1,024 characters on Telegram)."""

    png: bytes
    caption: str
    thread_id: int | None = None


Message: TypeAlias = Text | Edit | Photo


@dataclass(frozen=True, slots=True)
class Sent:
    """Telegram took it; the id of the (first) message, None where there is none."""

    message_id: int | None


@dataclass(frozen=True, slots=True)
class Retry:
    """Not now: flood control said how long (`after`), or the network or a 5xx did not (None)."""

    reason: str
    after: float | None = None


@dataclass(frozen=True, slots=True)
class Gone:
    """The chat is closed to the bot for good (blocked, kicked, deleted): unsubscribe it."""

    reason: str


@dataclass(frozen=True, slots=True)
class Moved:
    """The group became a supergroup with a new id: follow it and send there."""

    chat_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Telegram refused this message itself (a bad request): never retried as it is."""

    reason: str


Verdict: TypeAlias = Sent | Retry | Gone | Moved | Refused


def outcome(verdict: Verdict) -> str:
    """The verdict as a metric label: `sent`, `retry`, `gone`, `moved` or `refused`."""
    return type(verdict).__name__.lower()


class Notifier(Protocol):
    """Delivers messages to chats: Telegram, or the console when there is no token."""

    name: str

    async def deliver(self, chat_id: str, message: Message, lane: Lane = Lane.BROADCAST) -> Verdict:
        """Send or edit one message; never raises for what Telegram answers, only says it."""
        ...
