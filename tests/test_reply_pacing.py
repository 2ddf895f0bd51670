"""Replies under Telegram's limit: the real PTB application and our pacer against a fake Bot API
that allows 30 sends in any sliding second, like Telegram at its limit, and no more."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from bot.config import DeliverySettings
from bot.delivery.pacer import Lane, Pacer
from bot.model import Clock
from bot.store import Store
from bot.telegram.limiter import RateLimitArgs
from tests.harness.bot_app import BOT, TOKEN, ask, running
from tests.harness.fake_telegram import FakeTelegram

TELEGRAM_LIMIT = 30


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN, bot_username=BOT) as server:
        server.strict_window(TELEGRAM_LIMIT, window=1.0)
        yield server


def production_pacer() -> Pacer:
    """The pacer the bot runs with: the default `[delivery]` limits."""
    return Pacer.from_settings(DeliverySettings())


@pytest.mark.slow
async def test_500_chats_starting_in_the_same_second_all_get_an_answer(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock, pacer=production_pacer()):
        await tg.wait_for_poll()
        for chat in range(1, 501):
            tg.inject_message(chat, "/start", first_name=f"U{chat}")
        sent = await tg.wait_for(500, timeout=60)
    assert sorted(int(s.chat_id) for s in sent) == list(range(1, 501))
    assert all("now subscribed" in s.text for s in sent)
    assert tg.throttled == 0


@pytest.mark.slow
async def test_a_steady_20_starts_a_second_are_all_answered(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock, pacer=production_pacer()):
        await tg.wait_for_poll()
        for chat in range(1, 151):
            tg.inject_message(chat, "/start")
            await asyncio.sleep(1 / 20)
        sent = await tg.wait_for(150, timeout=30)
    assert sorted(int(s.chat_id) for s in sent) == list(range(1, 151))
    assert tg.throttled == 0


async def test_a_reply_that_gets_a_429_is_sent_again_after_the_wait(
    tg: FakeTelegram, store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    tg.fail_next("sendMessage", chat_id=42, retry_after=1)
    async with running(tg, store, clock):
        answer = await ask(tg, 42, "/help")
    assert "Commands" in answer.text
    assert [call.status for call in tg.calls("sendMessage")] == [429, 200]
    ours = [r for r in caplog.records if r.name.startswith("bot.")]
    assert [r.levelno for r in ours if "flood control" in r.getMessage()] == [logging.INFO]
    assert not [r for r in ours if r.levelno >= logging.ERROR]


@pytest.mark.slow
async def test_a_reply_during_a_fan_out_overtakes_the_waiting_broadcasts(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    broadcast: RateLimitArgs = {"lane": Lane.BROADCAST}
    async with running(tg, store, clock, pacer=production_pacer()) as app:
        await tg.wait_for_poll()
        fan_out = [
            asyncio.create_task(app.bot.send_message(chat, "alert", rate_limit_args=broadcast))
            for chat in range(1000, 1300)
        ]
        await tg.wait_for(TELEGRAM_LIMIT)  # a second into a ten-second fan-out
        asked_at = len(tg.sent())
        tg.inject_message(42, "/help")
        await tg.wait_for(1, chat_id=42)
        answered_at = next(i for i, s in enumerate(tg.sent()) if s.chat_id == 42)
        for task in fan_out:
            task.cancel()
        await asyncio.gather(*fan_out, return_exceptions=True)
    assert answered_at - asked_at < TELEGRAM_LIMIT // 2  # within half a second of sends
    assert tg.throttled == 0
