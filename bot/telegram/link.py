"""Whether Telegram is reachable, and the webhook route: what readiness and failover rely on.

Polling: every `getUpdates` round trip goes through `WatchedRequest`, which remembers whether the
last one was answered with 200. Webhook: the route below checks the secret, refuses updates on a
standby (503, so a load balancer sends Telegram to the leader) and queues the rest for PTB
(docs/architecture.md, "High availability").
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.request import HTTPXRequest

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram/webhook"


class Link:
    """The state of our connection to the Bot API, as readiness reports it."""

    def __init__(self) -> None:
        self.connected = False
        self.reason = "telegram not connected"

    def up(self) -> None:
        self.connected = True

    def down(self, reason: str) -> None:
        if self.connected:
            log.warning("telegram: not connected: %s", reason)
        self.connected = False
        self.reason = f"telegram not connected: {reason}"


class WatchedRequest(HTTPXRequest):
    """PTB's own request class for `getUpdates`, reporting each round trip's outcome to a Link."""

    def __init__(self, link: Link) -> None:
        super().__init__(connection_pool_size=1)
        self.link = link

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        try:
            code, payload = await super().do_request(*args, **kwargs)
        except Exception as exc:
            self.link.down(type(exc).__name__)
            raise
        if code == 200:
            self.link.up()
        else:
            self.link.down(f"getUpdates answered HTTP {code}")
        return code, payload


Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def webhook_route(
    secret: str,
    leading: Callable[[], bool],
    accept: Callable[[dict[str, Any]], Awaitable[None]],
) -> Handler:
    """The `/telegram/webhook` handler: 403 without the secret, 503 on a standby, else queue."""
    from aiohttp import web

    expected = secret.encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning(
                "telegram: webhook request without the right secret from %s", request.remote
            )
            return web.Response(status=403, text="forbidden")
        if not leading():
            return web.Response(status=503, text="standby")
        try:
            payload = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            return web.Response(status=400, text="not an update")
        await accept(payload)
        return web.Response(text="ok")

    return handle


def queue_update(bot: Any, queue: Any) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """Turn a webhook payload into PTB's `Update` and put it on the application's queue."""

    async def accept(payload: dict[str, Any]) -> None:
        await queue.put(Update.de_json(payload, bot))

    return accept
