"""The pacer as PTB's rate limiter: every message the bot sends waits for its turn.

Handler replies (`message.reply_text(...)`) need no code change to be paced as replies: updates
are handled under `ReplyingUpdateProcessor`, which marks its context as the reply lane. Anything
sent outside an update (outbox, digests) is a broadcast unless it passes
`rate_limit_args={"lane": Lane.REPLY}`; a broadcast can say so explicitly too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, TypedDict

from telegram.error import NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter, SimpleUpdateProcessor

from bot.delivery.pacer import Lane, Pacer, is_private

log = logging.getLogger(__name__)

# fmt: off
PACED_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendAudio", "sendDocument", "sendVideo", "sendAnimation",
    "sendVoice", "sendVideoNote", "sendPaidMedia", "sendMediaGroup", "sendLocation", "sendVenue",
    "sendContact", "sendPoll", "sendChecklist", "sendDice", "sendSticker", "sendInvoice",
    "sendGame", "copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
    "editMessageText", "editMessageCaption", "editMessageMedia", "editMessageReplyMarkup",
    "editMessageLiveLocation", "stopMessageLiveLocation", "editMessageChecklist", "stopPoll",
})
"""Requests that put or change a message in a chat: the ones Telegram's flood limits count."""
# fmt: on

_LANE: ContextVar[Lane] = ContextVar("stablewatch_lane", default=Lane.BROADCAST)


class RateLimitArgs(TypedDict, total=False):
    """What a send may pass as `rate_limit_args`."""

    lane: Lane


def seconds(value: int | float | timedelta) -> float:
    """`RetryAfter.retry_after` is an int, or a timedelta with `PTB_TIMEDELTA=true`."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class ReplyingUpdateProcessor(SimpleUpdateProcessor):
    """One update at a time, as PTB does by default; whatever its handlers send is a reply."""

    def __init__(self) -> None:
        super().__init__(1)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        token = _LANE.set(Lane.REPLY)
        try:
            await coroutine
        finally:
            _LANE.reset(token)


class NotSending(NetworkError):
    """A send refused before it left, e.g. by a leader past its renew deadline; kept for later."""


class PacedRateLimiter(BaseRateLimiter[RateLimitArgs]):
    """Sends wait for the pacer; a 429 holds the chat or everything, then a reply tries again."""

    def __init__(self, pacer: Pacer, gate: Callable[[], str | None] | None = None) -> None:
        self.pacer = pacer
        self.gate = gate
        """Asked right before each send: a reason not to send now (a replica that may no longer
        lead), or None. A refused send fails as a network error, so the message is kept."""

    async def initialize(self) -> None:
        """Nothing to set up: the pacer needs no resources."""

    async def shutdown(self) -> None:
        """Nothing to release: waiting senders are cancelled with their tasks."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: RateLimitArgs | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Take a turn for a counted request, make it, and answer Telegram's 429s."""
        if endpoint not in PACED_METHODS:
            return await callback(*args, **kwargs)
        chat: int | str | None = data.get("chat_id")
        lane = Lane((rate_limit_args or {}).get("lane", _LANE.get()))
        paid = bool(data.get("allow_paid_broadcast"))
        while True:
            await self.pacer.turn(chat, lane, paid=paid)
            if self.gate is not None and (reason := self.gate()) is not None:
                raise NotSending(f"not sent: {reason}")
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = seconds(exc.retry_after)
                # A private chat cannot be over its own limit: a 429 there means we flood overall.
                self.pacer.hold(wait, None if chat is None or is_private(chat) else chat)
                then = "retrying" if lane is Lane.REPLY else "handing it back"
                log.info(
                    "telegram: %s to %s: flood control, retry in %gs (%s %s)",
                    endpoint,
                    chat,
                    wait,
                    lane.name.lower(),
                    then,
                )
                if lane is not Lane.REPLY:
                    raise
