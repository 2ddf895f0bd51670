"""The console notifier: with no Telegram token, alerts and digests are printed."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

from bot.delivery.notifier import Edit, Message, Photo, Sent, Text, Verdict
from bot.delivery.pacer import Lane
from bot.delivery.split import to_plain


class ConsoleNotifier:
    """Writes each message as plain text, addressed to its chat, to a stream."""

    name = "console"

    def __init__(self, stream: TextIO | None = None, image_dir: Path = Path("var")) -> None:
        self._stream = stream or sys.stdout
        self._image_dir = image_dir

    async def deliver(self, chat_id: str, message: Message, lane: Lane = Lane.BROADCAST) -> Verdict:
        """Print a message, print an edit's new text, or save a chart; a console never refuses."""
        match message:
            case Text(body=body):
                self._write(f"── to {chat_id} ──\n{to_plain(body)}\n")
                return Sent(None)
            case Edit(message_id=message_id, body=body):
                self._write(f"── edited {message_id} in {chat_id} ──\n{to_plain(body)}\n")
                return Sent(message_id)
            case Photo(png=png, caption=caption):
                path = self._save(chat_id, png)
                self._write(f"── chart to {chat_id} ──\n{to_plain(caption)}\n[saved to {path}]\n")
                return Sent(None)

    def _save(self, chat_id: str, png: bytes) -> Path:
        """Keep the latest chart per chat as a PNG file."""
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", chat_id)[:64] or "chat"
        self._image_dir.mkdir(parents=True, exist_ok=True)
        path = self._image_dir / f"chart-{safe}.png"
        path.write_bytes(png)
        return path

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
