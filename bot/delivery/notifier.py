"""The `Notifier` protocol and the delivery error that carries retry semantics."""

from __future__ import annotations

from typing import Protocol


class DeliveryError(Exception):
    """A message could not be delivered; says whether to retry, when, or where the chat moved.

    `deactivate` means the chat is gone for us (blocked, kicked): stop sending to it.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        migrate_to: int | None = None,
        deactivate: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.migrate_to = migrate_to
        self.deactivate = deactivate


class Notifier(Protocol):
    """Sends rendered HTML text and charts to a chat; implemented by the console and Telegram."""

    name: str

    async def send(self, chat_id: str, text: str) -> int | None:
        """Send one message and return its message id (None where there is none)."""
        ...

    async def edit(self, chat_id: str, message_id: int, text: str) -> None:
        """Replace a sent message's text, so a resolved alert updates the original message."""
        ...

    async def send_photo(self, chat_id: str, png: bytes, caption: str) -> int | None:
        """Send a PNG chart with a short HTML caption (at most 1024 characters on Telegram)."""
        ...
