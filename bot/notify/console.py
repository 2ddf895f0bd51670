"""The console notifier: with no Telegram token, alerts and digests are printed."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.notify.render import to_plain


class ConsoleNotifier:
    """Writes each message as plain text, addressed to its chat, to a stream."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout

    async def send(self, chat_id: str, text: str) -> int | None:
        """Print one message; there is no message id on a console."""
        self._stream.write(f"── to {chat_id} ──\n{to_plain(text)}\n")
        self._stream.flush()
        return None

    async def edit(self, chat_id: str, message_id: int, text: str) -> None:
        """Print the new text; a console cannot change what it printed."""
        self._stream.write(f"── edited {message_id} in {chat_id} ──\n{to_plain(text)}\n")
        self._stream.flush()
