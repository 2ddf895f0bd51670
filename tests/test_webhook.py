"""Webhook mode: Telegram's posts go through the secret check, reach only the leader, run once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from bot.store import Store
from bot.telegram.app import TelegramApp
from bot.telegram.link import SECRET_HEADER, WEBHOOK_PATH, queue_update, webhook_route
from tests.harness.bot_app import running
from tests.harness.clock import SteppingClock
from tests.harness.fake_telegram import FakeTelegram

SECRET = "s3cret_Token-1"
WEBHOOK = {"mode": "webhook", "webhook_url": "https://bot.example/telegram/webhook"}


@asynccontextmanager
async def serving(app: TelegramApp, leading: Callable[[], bool]) -> AsyncIterator[str]:
    """The webhook route on a loopback server, as the bot's HTTP server mounts it."""
    web_app = web.Application()
    route = webhook_route(SECRET, leading, queue_update(app.bot, app.update_queue))
    web_app.router.add_post(WEBHOOK_PATH, route)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{WEBHOOK_PATH}"
    finally:
        await runner.cleanup()


async def test_webhook_mode_sets_the_webhook_and_never_polls(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with running(tg, store, clock, webhook_secret=SECRET, **WEBHOOK):
        pass
    assert tg.webhook["url"] == WEBHOOK["webhook_url"]
    assert tg.webhook["secret_token"] == SECRET
    assert "message" in tg.webhook["allowed_updates"]
    assert tg.calls("getUpdates") == []


async def test_webhook_refuses_a_wrong_secret_and_a_standby_then_handles_once(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    leader = {"now": False}
    async with (
        running(tg, store, clock, webhook_secret=SECRET, **WEBHOOK) as app,
        serving(app, lambda: leader["now"]) as url,
        aiohttp.ClientSession() as http,
    ):
        update = tg.inject_message(42, "/help")
        for headers, status in (
            ({}, 403),
            ({SECRET_HEADER: "wrong"}, 403),
            ({SECRET_HEADER: SECRET}, 503),  # a standby: the load balancer retries the leader
        ):
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == status, await response.text()
        assert tg.sent(42) == []
        leader["now"] = True
        async with http.post(url, data=b"{not json", headers={SECRET_HEADER: SECRET}) as bad:
            assert bad.status == 400
        for _ in range(2):  # Telegram retries a post it thinks failed: handled once
            async with http.post(url, json=update, headers={SECRET_HEADER: SECRET}) as response:
                assert response.status == 200
        (reply,) = await tg.wait_for(1, chat_id=42)
        assert "Commands" in reply.text
        followup = tg.inject_message(42, "/help")
        async with http.post(url, json=followup, headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 200
        await tg.wait_for(2, chat_id=42)
    assert len(tg.sent(42)) == 2


@pytest.mark.parametrize("secret", ["", "has spaces", "x" * 257])
def test_webhook_mode_needs_a_valid_secret(secret: str) -> None:
    from pydantic import ValidationError

    from bot.config import TelegramSettings

    with pytest.raises(ValidationError):
        TelegramSettings.model_validate({"token": "1:abc", "webhook_secret": secret, **WEBHOOK})
