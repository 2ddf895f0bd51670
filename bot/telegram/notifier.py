"""The Telegram notifier: one `deliver` for every message, PTB's errors turned into verdicts."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram import Message as TgMessage
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from bot.delivery.notifier import (
    Edit,
    Gone,
    Keyboard,
    Message,
    Moved,
    Photo,
    Refused,
    Retry,
    Sent,
    Text,
    Verdict,
)
from bot.delivery.pacer import Lane
from bot.delivery.split import to_plain
from bot.telegram.limiter import PacedRateLimiter, seconds

log = logging.getLogger(__name__)
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_NUMERIC_ID = re.compile(r"-?\d+")
_Call: TypeAlias = Callable[[str, str | None], Awaitable[int]]
_GONE = ("chat not found", "bot was kicked", "user is deactivated", "chat was deleted")


def _target(chat_id: str) -> int | str:
    """Numeric ids go out as numbers; `@channelname` stays a string."""
    return int(chat_id) if _NUMERIC_ID.fullmatch(chat_id) else chat_id


def is_parse_error(exc: BadRequest) -> bool:
    """Telegram rejected our HTML itself, so the same text as plain text can still go out."""
    return "can't parse entities" in exc.message.lower()


def markup(keyboard: Keyboard | None) -> InlineKeyboardMarkup | None:
    """Our plain keyboard rows as PTB's inline keyboard."""
    if keyboard is None:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=data) for label, data in row]
            for row in keyboard
        ]
    )


def verdict_of(exc: TelegramError) -> Verdict:
    """What Telegram's error means for this message; the one place that reads PTB's errors."""
    if isinstance(exc, BadRequest):  # first: BadRequest subclasses NetworkError, never retry it
        if any(sign in exc.message.lower() for sign in _GONE):
            return Gone(f"the chat is gone: {exc.message}")
        return Refused(f"Telegram refused the message: {exc.message}")
    if isinstance(exc, Forbidden):
        return Gone(f"the chat is closed to the bot: {exc.message}")
    if isinstance(exc, ChatMigrated):
        return Moved(exc.new_chat_id, f"the group became supergroup {exc.new_chat_id}")
    if isinstance(exc, RetryAfter):
        wait = seconds(exc.retry_after)
        return Retry(f"Telegram flood control: retry in {wait:g}s", wait)
    if isinstance(exc, InvalidToken):
        # Every chat fails alike; keep the messages queued until the token is fixed.
        return Retry(f"the bot token was refused: {exc.message}")
    return Retry(f"Telegram did not answer: {exc.message}")  # TimedOut, NetworkError, 5xx


class TelegramNotifier:
    """Delivers rendered HTML to Telegram chats through the bot (and its pacer)."""

    name = "telegram"

    def __init__(self, bot: Bot, *, paid_broadcast: bool = False) -> None:
        self._bot = bot
        self._paid = paid_broadcast
        # the lane rides along to our limiter; PTB's own limiters take other arguments
        self._paced = isinstance(getattr(bot, "rate_limiter", None), PacedRateLimiter)

    async def deliver(self, chat_id: str, message: Message, lane: Lane = Lane.BROADCAST) -> Verdict:
        """Send, edit or send a photo; HTML Telegram cannot parse goes once more as plain text."""
        target, extra = _target(chat_id), self._extra(lane)
        match message:
            case Text(body=body, keyboard=keyboard, thread_id=thread):

                async def call(text: str, mode: str | None) -> int:
                    sent: TgMessage = await self._bot.send_message(
                        target,
                        text,
                        parse_mode=mode,
                        link_preview_options=_NO_PREVIEW,
                        reply_markup=markup(keyboard),
                        message_thread_id=thread,
                        **extra,
                        **self._paid_args(lane),
                    )
                    return sent.message_id

                return await self._html_or_plain(chat_id, body, call)
            case Edit(message_id=message_id, body=body, keyboard=keyboard):

                async def call(text: str, mode: str | None) -> int:
                    await self._bot.edit_message_text(
                        text,
                        chat_id=target,
                        message_id=message_id,
                        parse_mode=mode,
                        link_preview_options=_NO_PREVIEW,
                        reply_markup=markup(keyboard),
                        **extra,
                    )
                    return message_id

                verdict = await self._html_or_plain(chat_id, body, call)
                unchanged = "message is not modified" in getattr(verdict, "reason", "").lower()
                if isinstance(verdict, Refused) and unchanged:
                    return Sent(message_id)  # it already shows this text: done
                return verdict
            case Photo(png=png, caption=caption, thread_id=thread):

                async def call(text: str, mode: str | None) -> int:
                    sent: TgMessage = await self._bot.send_photo(
                        target,
                        png,
                        caption=text,
                        parse_mode=mode,
                        filename="stablewatch.png",
                        message_thread_id=thread,
                        **extra,
                        **self._paid_args(lane),
                    )
                    return sent.message_id

                return await self._html_or_plain(chat_id, caption, call)

    def _extra(self, lane: Lane) -> dict[str, Any]:
        """The lane, for the pacer inside PTB's request path (only when the bot has one)."""
        return {"rate_limit_args": {"lane": lane}} if self._paced else {}

    def _paid_args(self, lane: Lane) -> dict[str, Any]:
        """Broadcasts go out as paid broadcasts when the operator turned them on."""
        return {"allow_paid_broadcast": True} if self._paid and lane is Lane.BROADCAST else {}

    async def _html_or_plain(self, chat_id: str, text: str, call: _Call) -> Verdict:
        """Make the call with HTML; if Telegram cannot parse it, once more as plain text."""
        try:
            return Sent(await call(text, ParseMode.HTML))
        except BadRequest as exc:
            if not is_parse_error(exc):
                return verdict_of(exc)
            log.warning(
                "telegram: chat %s: Telegram could not parse our HTML (%s); resending it plain",
                chat_id,
                exc.message,
            )
        except TelegramError as exc:
            return verdict_of(exc)
        try:
            return Sent(await call(to_plain(text), None))
        except TelegramError as exc:
            return verdict_of(exc)
