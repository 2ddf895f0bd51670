"""The Telegram notifier: sends HTML and turns PTB's errors into retry semantics."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeAlias

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from bot.delivery.notifier import DeliveryError
from bot.delivery.split import to_plain

log = logging.getLogger(__name__)
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_NUMERIC_ID = re.compile(r"-?\d+")
_Call: TypeAlias = Callable[[str, str | None], Awaitable[int]]


def _target(chat_id: str) -> int | str:
    """Numeric ids go out as numbers; `@channelname` stays a string."""
    return int(chat_id) if _NUMERIC_ID.fullmatch(chat_id) else chat_id


def _seconds(value: int | float | timedelta) -> float:
    """`RetryAfter.retry_after` is an int, or a timedelta with `PTB_TIMEDELTA=true`."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_parse_error(exc: BadRequest) -> bool:
    """Telegram rejected our HTML itself, so the same text as plain text can still go out."""
    return "can't parse entities" in exc.message.lower()


def delivery_error(exc: TelegramError) -> DeliveryError:
    """Translate a PTB error into what the outbox should do next."""
    if isinstance(exc, BadRequest):  # first: BadRequest subclasses NetworkError, never retry it
        gone = "chat not found" in exc.message.lower()
        return DeliveryError(
            f"Telegram refused the message: {exc.message}", permanent=True, deactivate=gone
        )
    if isinstance(exc, Forbidden):
        return DeliveryError(
            f"the chat is closed to the bot: {exc.message}", permanent=True, deactivate=True
        )
    if isinstance(exc, ChatMigrated):
        return DeliveryError(
            f"the group became supergroup {exc.new_chat_id}", migrate_to=exc.new_chat_id
        )
    if isinstance(exc, RetryAfter):
        wait = _seconds(exc.retry_after)
        return DeliveryError(f"Telegram flood control: retry in {wait:g}s", retry_after=wait)
    if isinstance(exc, InvalidToken):
        # Every chat fails alike; keep the messages queued until the token is fixed.
        return DeliveryError(f"the bot token was refused: {exc.message}")
    return DeliveryError(f"Telegram did not answer: {exc.message}")  # TimedOut, NetworkError, 5xx


class TelegramNotifier:
    """Delivers rendered HTML to Telegram chats; implements `bot.notify.Notifier`."""

    name = "telegram"

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def send(self, chat_id: str, text: str) -> int | None:
        """Send one message; raise DeliveryError saying whether and when to retry."""
        target = _target(chat_id)

        async def send(body: str, parse_mode: str | None) -> int:
            message = await self._bot.send_message(
                target, body, parse_mode=parse_mode, link_preview_options=_NO_PREVIEW
            )
            return message.message_id

        return await self._html_or_plain(chat_id, text, send)

    async def edit(self, chat_id: str, message_id: int, text: str) -> None:
        """Replace a message's text; "not modified" means it already shows it, so that is done."""
        target = _target(chat_id)

        async def edit(body: str, parse_mode: str | None) -> int:
            await self._bot.edit_message_text(
                body,
                chat_id=target,
                message_id=message_id,
                parse_mode=parse_mode,
                link_preview_options=_NO_PREVIEW,
            )
            return message_id

        try:
            await self._html_or_plain(chat_id, text, edit)
        except DeliveryError as exc:
            if "message is not modified" not in str(exc).lower():
                raise

    async def send_photo(self, chat_id: str, png: bytes, caption: str) -> int | None:
        """Send a chart; the caption falls back to plain text like a message does."""
        target = _target(chat_id)

        async def send(body: str, parse_mode: str | None) -> int:
            message = await self._bot.send_photo(
                target, png, caption=body, parse_mode=parse_mode, filename="stablewatch.png"
            )
            return message.message_id

        return await self._html_or_plain(chat_id, caption, send)

    async def _html_or_plain(self, chat_id: str, text: str, call: _Call) -> int:
        """Make the call with HTML; if Telegram cannot parse it, once more as plain text."""
        try:
            return await call(text, ParseMode.HTML)
        except BadRequest as exc:
            if not is_parse_error(exc):
                raise delivery_error(exc) from exc
            log.warning(
                "telegram: chat %s: Telegram could not parse our HTML (%s); resending it plain",
                chat_id,
                exc.message,
            )
        except TelegramError as exc:
            raise delivery_error(exc) from exc
        try:
            return await call(to_plain(text), None)
        except TelegramError as exc:
            raise delivery_error(exc) from exc
