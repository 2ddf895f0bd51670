"""The console notifier: with no Telegram token, alerts and digests are printed."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

from bot.delivery.split import to_plain


class ConsoleNotifier:
    """Writes each message as plain text, addressed to its chat, to a stream."""

    name = "console"

    def __init__(self, stream: TextIO | None = None, image_dir: Path = Path("var")) -> None:
        self._stream = stream or sys.stdout
        self._image_dir = image_dir

    async def send(self, chat_id: str, text: str) -> int | None:
        """Print one message; there is no message id on a console."""
        self._stream.write(f"── to {chat_id} ──\n{to_plain(text)}\n")
        self._stream.flush()
        return None

    async def edit(self, chat_id: str, message_id: int, text: str) -> None:
        """Print the new text; a console cannot change what it printed."""
        self._stream.write(f"── edited {message_id} in {chat_id} ──\n{to_plain(text)}\n")
        self._stream.flush()

    async def send_photo(self, chat_id: str, png: bytes, caption: str) -> int | None:
        """Save the chart as a PNG file (the latest per chat) and print where it is."""
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", chat_id)[:64] or "chat"
        self._image_dir.mkdir(parents=True, exist_ok=True)
        path = self._image_dir / f"chart-{safe}.png"
        path.write_bytes(png)
        self._stream.write(f"── chart to {chat_id} ──\n{to_plain(caption)}\n[saved to {path}]\n")
        self._stream.flush()
        return None
