"""The delivery stage through the real Telegram notifier and the fake Bot API: one verdict each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bot.delivery.notifier import Gone, Refused, Retry, Sent, Text
from bot.delivery.pacer import Lane
from bot.delivery.stage import Stage
from bot.model import ChatKind, Clock
from bot.store import Store
from bot.telegram.notifier import TelegramNotifier
from tests.harness.bot_app import running
from tests.harness.fake_telegram import FakeTelegram


@asynccontextmanager
async def stage(
    tg: FakeTelegram, store: Store, clock: Clock, max_retry_wait: float = 60.0
) -> AsyncIterator[Stage]:
    async with running(tg, store, clock) as app:
        yield Stage(TelegramNotifier(app.bot), store, max_retry_wait=max_retry_wait)


async def test_a_sent_message_says_where_and_which_id(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with stage(tg, store, clock) as s:
        done = await s.deliver("42", Text("hello"))
    assert (done.chat, done.verdict) == ("42", Sent(1))


async def test_a_migrated_group_is_followed_once_with_its_subscription(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    await store.subscribe(-500, ChatKind.GROUP, "desk", clock())
    tg.fail_next("sendMessage", chat_id=-500, migrate_to_chat_id=-1001234)
    async with stage(tg, store, clock) as s:
        done = await s.deliver("-500", Text("hello"))
    assert done.chat == "-1001234" and isinstance(done.verdict, Sent)
    assert [sub.chat_id for sub in await store.subscriptions()] == [-1001234]
    assert [m.plain for m in tg.sent(-1001234)] == ["hello"]


async def test_a_closed_chat_is_unsubscribed_and_said_gone(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    await store.subscribe(42, ChatKind.PRIVATE, "Alice", clock())
    await store.subscribe(43, ChatKind.PRIVATE, "Bob", clock())
    tg.block(42)
    async with stage(tg, store, clock) as s:
        done = await s.deliver("42", Text("hello"))
    assert isinstance(done.verdict, Gone)
    assert [sub.chat_id for sub in await store.subscriptions()] == [43]


@pytest.mark.slow  # it waits the real second Telegram asked for
async def test_a_short_flood_wait_is_waited_out_for_that_message(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    tg.fail_next("sendMessage", chat_id=42, status=429, retry_after=1)
    async with stage(tg, store, clock, max_retry_wait=5) as s:
        done = await s.deliver("42", Text("hello"), Lane.BROADCAST)
    assert isinstance(done.verdict, Sent)
    assert [c.status for c in tg.calls("sendMessage")] == [429, 200]


async def test_a_flood_wait_over_the_limit_goes_back_to_the_caller(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    tg.fail_next("sendMessage", chat_id=42, status=429, retry_after=30)
    async with stage(tg, store, clock, max_retry_wait=5) as s:
        done = await s.deliver("42", Text("hello"), Lane.BROADCAST)
    assert done.verdict == Retry("Telegram flood control: retry in 30s", 30.0)
    assert [c.status for c in tg.calls("sendMessage")] == [429]


async def test_a_broadcast_after_a_network_error_is_left_to_the_caller(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    tg.fail_next("sendMessage", chat_id=42, status=502)
    async with stage(tg, store, clock) as s:
        done = await s.deliver("42", Text("hello"), Lane.BROADCAST)
    assert isinstance(done.verdict, Retry) and done.verdict.after is None


@pytest.mark.slow  # it waits a real backoff
async def test_a_reply_after_a_network_error_is_sent_again(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    tg.fail_next("sendMessage", chat_id=42, status=502)
    async with stage(tg, store, clock) as s:
        done = await s.deliver("42", Text("hello"), Lane.REPLY)
    assert isinstance(done.verdict, Sent)
    assert [c.status for c in tg.calls("sendMessage")] == [502, 200]


async def test_a_bad_request_is_refused_and_never_repeated(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with stage(tg, store, clock) as s:
        done = await s.deliver("42", Text("x" * 4097), Lane.REPLY)
    assert isinstance(done.verdict, Refused)
    assert len(tg.calls("sendMessage")) == 1
