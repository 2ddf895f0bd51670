"""End to end: the real PTB application and notifier against the fake Bot API on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.config import TelegramSettings
from bot.delivery.notifier import Edit, Gone, Moved, Photo, Refused, Retry, Sent, Text, Verdict
from bot.delivery.split import to_plain
from bot.model import ChatKind, Clock
from bot.store import Store
from bot.telegram.app import TelegramStartError, build_application, start_telegram
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.registry import COMMANDS
from tests.harness.bot_app import BOT, POLL, TOKEN, running
from tests.harness.clock import SteppingClock
from tests.harness.fake_telegram import FakeTelegram

pytestmark = pytest.mark.slow  # PTB round trips through the fake Bot API


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB warns on int durations unless opted in to timedelta; the suite turns warnings to errors."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


async def _active(store: Store) -> dict[int, tuple[ChatKind, str]]:
    return {s.chat_id: (s.kind, s.title) for s in await store.subscriptions()}


# commands ---------------------------------------------------------------------------------------
async def test_start_subscribes_the_chat_and_explains_the_bot(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        tg.inject_message(42, "/start", first_name="Alice")
        [answer] = await tg.wait_for(1, chat_id=42)
    assert await _active(store) == {42: (ChatKind.PRIVATE, "Alice")}
    assert answer.parse_mode == "HTML"
    for topic in ("ETF", "funding", "open interest", "fear &amp; greed", "now subscribed"):
        assert topic in answer.text
    assert answer.params["link_preview_options"] == {"is_disabled": True}


async def test_start_twice_says_already_subscribed(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        tg.inject_message(42, "/start")
        tg.inject_message(42, "/start")
        first, second = await tg.wait_for(2, chat_id=42)
    assert "now subscribed" in first.text
    assert "already subscribed" in second.text


async def test_stop_unsubscribes_the_chat(tg: FakeTelegram, store: Store, clock: Clock) -> None:
    async with running(tg, store, clock):
        tg.inject_message(42, "/start")
        tg.inject_message(42, "/stop")
        _, stopped = await tg.wait_for(2, chat_id=42)
        assert await _active(store) == {}
        tg.inject_message(42, "/stop")
        *_, again = await tg.wait_for(3, chat_id=42)
    assert "Unsubscribed" in stopped.text
    assert "was not subscribed" in again.text
    [row] = await store.subscriptions(active_only=False)
    assert (row.chat_id, row.active) == (42, False)


async def test_help_lists_every_registry_command(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        tg.inject_message(42, "/help")
        [answer] = await tg.wait_for(1, chat_id=42)
    for command in COMMANDS:
        assert f"/{command.name} — {command.description}" in answer.text


async def test_command_menu_is_published_from_the_registry(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        pass
    expected = [
        {"command": c.name, "description": c.description} for c in COMMANDS if not c.admin_only
    ]
    assert tg.commands() == expected


async def test_allowlist_refuses_other_chats_in_one_polite_line(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock, access="allowlist", allowed_chat_ids=[100]):
        tg.inject_message(42, "/start")
        [refusal] = await tg.wait_for(1, chat_id=42)
        tg.inject_message(100, "/start")
        await tg.wait_for(1, chat_id=100)
    assert "\n" not in refusal.text
    assert "allowlist" in refusal.text
    assert set(await _active(store)) == {100}


async def test_unknown_command_points_to_help(tg: FakeTelegram, store: Store, clock: Clock) -> None:
    async with running(tg, store, clock):
        tg.inject_message(42, "/frobnicate <now>")
        [answer] = await tg.wait_for(1, chat_id=42)
    assert answer.text == "I don't know /frobnicate. /help lists what I can do."


async def test_group_ignores_commands_for_other_bots_and_unaddressed_unknowns(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        tg.inject_message(-500, "/start@other_bot", chat_type="group")
        tg.inject_message(-500, "/frobnicate", chat_type="group")
        tg.inject_message(-500, f"/frobnicate@{BOT}", chat_type="group")
        tg.inject_message(-500, f"/help@{BOT}", chat_type="group")
        answers = await tg.wait_for(lambda sent: any("Commands" in s.text for s in sent))
    assert len(answers) == 2
    assert answers[0].text.startswith("I don't know /frobnicate.")
    assert await _active(store) == {}


async def test_group_admin_subscribes_the_group_with_an_addressed_command(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    tg.set_member(-500, 7, "administrator")
    async with running(tg, store, clock):
        tg.inject_message(-500, f"/start@{BOT}", user_id=7, chat_type="group", title="<Desk>")
        [answer] = await tg.wait_for(1, chat_id=-500)
    assert await _active(store) == {-500: (ChatKind.GROUP, "<Desk>")}
    assert "<b>&lt;Desk&gt;</b> is now subscribed" in answer.text


async def test_group_member_who_is_not_admin_is_refused(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        tg.inject_message(-500, "/start", user_id=8, chat_type="supergroup")
        [answer] = await tg.wait_for(1, chat_id=-500)
    assert "only this group's admins" in answer.text
    assert await _active(store) == {}


async def test_anonymous_group_admin_may_subscribe(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        tg.inject_message(-500, "/start", chat_type="supergroup", anonymous=True)
        await tg.wait_for(1, chat_id=-500)
    assert set(await _active(store)) == {-500}


async def test_editing_a_command_does_not_run_it_again(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        tg.inject_message(42, "/start")
        update = tg.inject_message(42, "/help")
        await tg.wait_for(2, chat_id=42)
        tg.inject_edited_message(42, update["message"]["message_id"], "/stop")
        tg.inject_message(42, "/help")
        answers = await tg.wait_for(3, chat_id=42)
    assert "Commands" in answers[2].text
    assert set(await _active(store)) == {42}


async def test_bot_removed_from_a_group_unsubscribes_it(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    tg.set_member(-500, 7, "creator")
    async with running(tg, store, clock):
        tg.inject_message(-500, "/start", user_id=7, chat_type="group")
        await tg.wait_for(1, chat_id=-500)
        tg.inject_my_chat_member(-500, new_status="kicked")
        tg.inject_message(42, "/help")  # processed after the removal: a bounded barrier
        await tg.wait_for(1, chat_id=42)
    assert await _active(store) == {}


async def test_updates_from_many_chats_while_running_are_all_answered(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        await tg.wait_for_poll()
        for chat in range(1, 11):
            tg.inject_message(chat, "/start", first_name=f"U{chat}")
        await tg.wait_for(10)
    assert set(await _active(store)) == set(range(1, 11))
    assert tg.pending_updates == 0  # the last poll at stop confirmed everything


async def test_a_failing_handler_is_logged_and_the_bot_keeps_going(
    tg: FakeTelegram, store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore:
        async def subscribe(self, *args: Any) -> bool:
            raise RuntimeError("disk on fire")

    async with running(tg, cast(Store, BrokenStore()), clock):
        tg.inject_message(42, "/start")
        tg.inject_message(42, "/help")
        sorry, helped = await tg.wait_for(2, chat_id=42)
    assert "something went wrong" in sorry.text
    assert "Commands" in helped.text
    assert "disk on fire" in caplog.text


# start-up ---------------------------------------------------------------------------------------
async def test_wrong_token_raises_a_one_line_start_error(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    settings = TelegramSettings.model_validate({"token": "123456:WRONG", "api_url": tg.api_url})
    app = build_application(settings, store, clock)
    with pytest.raises(TelegramStartError) as caught:
        await start_telegram(app, poll_timeout=POLL)
    message = str(caught.value)
    assert message == (
        "telegram.token was refused by the Bot API (401 Unauthorized): "
        "check the token from @BotFather"
    )
    assert "WRONG" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_unreachable_api_raises_a_start_error(store: Store, clock: Clock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = TelegramSettings.model_validate(
        {"token": TOKEN, "api_url": f"http://127.0.0.1:{port}"}
    )
    app = build_application(settings, store, clock)
    with pytest.raises(TelegramStartError, match=r"^telegram.api_url: cannot reach"):
        await start_telegram(app, poll_timeout=POLL)


async def test_stop_is_safe_after_start_and_start_again_works(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with running(tg, store, clock):
        pass
    async with running(tg, store, clock):
        tg.inject_message(42, "/help")
        await tg.wait_for(1, chat_id=42)
    assert [c.method for c in tg.calls()][:3] == ["getMe", "setMyCommands", "deleteWebhook"]


# notifier ---------------------------------------------------------------------------------------
@asynccontextmanager
async def notifier(tg: FakeTelegram, store: Store, clock: Clock) -> AsyncIterator[TelegramNotifier]:
    """The notifier on the production bot object (rate limiter, defaults), polling included."""
    async with running(tg, store, clock) as app:
        yield TelegramNotifier(app.bot)


async def send(telegram: TelegramNotifier, chat: str, text: str) -> Verdict:
    return await telegram.deliver(chat, Text(text))


async def test_notifier_sends_html_and_returns_the_message_id(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with notifier(tg, store, clock) as telegram:
        first = await send(telegram, "42", "<b>BTC</b> funding &lt; 0")
        second = await send(telegram, "42", "again")
        await send(telegram, "@stablewatch_alerts", "to a channel")
    assert (first, second) == (Sent(1), Sent(2))
    [sent, _] = tg.sent(42)
    assert (sent.text, sent.plain, sent.parse_mode) == (
        "<b>BTC</b> funding &lt; 0",
        "BTC funding < 0",
        "HTML",
    )
    assert tg.sent("@stablewatch_alerts")[0].plain == "to a channel"


async def test_notifier_sends_keyboards_edits_and_photos(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    keys = ((("✅ everything", "sub:all"), ("btc", "sub:tag:btc")),)
    async with notifier(tg, store, clock) as telegram:
        first = await telegram.deliver("42", Text("pick", keys))
        assert first == Sent(1)
        assert await telegram.deliver("42", Edit(1, "picked", None)) == Sent(1)
        assert await telegram.deliver("42", Edit(1, "picked", None)) == Sent(1)  # not modified
        photo = await telegram.deliver("42", Photo(b"\x89PNG fake", "<b>chart</b>"))
    assert isinstance(photo, Sent) and photo.message_id is not None
    [sent] = [c for c in tg.sent(42) if c.text == "pick"]
    assert sent.reply_markup is not None
    assert [b["callback_data"] for b in sent.reply_markup["inline_keyboard"][0]] == [
        "sub:all",
        "sub:tag:btc",
    ]
    assert [c.params["text"] for c in tg.calls("editMessageText")][-1] == "picked"


async def test_notifier_blocked_chat_is_gone(tg: FakeTelegram, store: Store, clock: Clock) -> None:
    tg.block(42)
    async with notifier(tg, store, clock) as telegram:
        verdict = await send(telegram, "42", "hello")
    assert isinstance(verdict, Gone) and "blocked" in verdict.reason


async def test_notifier_flood_control_gives_retry_after(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    tg.fail_next("sendMessage", chat_id=42, status=429, retry_after=7)
    async with notifier(tg, store, clock) as telegram:
        verdict = await send(telegram, "42", "hello")
        clock.advance(timedelta(seconds=7))  # the pacer holds every send until then
        assert await send(telegram, "42", "hello") == Sent(1)  # the fault was for one call only
    assert isinstance(verdict, Retry) and verdict.after == 7.0


async def test_notifier_migrated_group_gives_the_new_chat(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    tg.fail_next("sendMessage", chat_id=-500, migrate_to_chat_id=-1001234567890)
    async with notifier(tg, store, clock) as telegram:
        verdict = await send(telegram, "-500", "hello")
    assert isinstance(verdict, Moved) and verdict.chat_id == -1001234567890


async def test_notifier_resends_unparseable_html_once_as_plain_text(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    text = "<b>BTC & ETH</b> flows <i>turned"  # unbalanced <i>
    async with notifier(tg, store, clock) as telegram:
        verdict = await send(telegram, "42", text)
    attempts = tg.calls("sendMessage")
    assert [call.status for call in attempts] == [400, 200]
    assert "parse_mode" not in attempts[1].params
    [sent] = tg.sent(42)
    assert (Sent(sent.message_id), sent.text) == (verdict, to_plain(text))


async def test_notifier_gives_up_when_the_plain_resend_fails_too(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    unparseable = "Bad Request: can't parse entities: Unsupported start tag"
    tg.fail_next("sendMessage", chat_id=42, status=400, description=unparseable, times=2)
    async with notifier(tg, store, clock) as telegram:
        verdict = await send(telegram, "42", "<b>fine</b>")
    assert isinstance(verdict, Refused)
    assert len(tg.calls("sendMessage")) == 2


async def test_notifier_bad_request_is_refused_and_not_resent(
    tg: FakeTelegram, store: Store, clock: Clock
) -> None:
    async with notifier(tg, store, clock) as telegram:
        verdict = await send(telegram, "42", "x" * 4097)
    assert isinstance(verdict, Refused) and "too long" in verdict.reason
    assert len(tg.calls("sendMessage")) == 1


async def test_notifier_unknown_chat_is_gone(store: Store, clock: Clock) -> None:
    strict = FakeTelegram(token=TOKEN, strict_chats=True)
    async with strict, notifier(strict, store, clock) as telegram:
        verdict = await send(telegram, "999", "hello")
    assert isinstance(verdict, Gone)


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_notifier_server_errors_are_retryable(
    tg: FakeTelegram, store: Store, clock: Clock, status: int
) -> None:
    tg.fail_next("sendMessage", status=status)
    async with notifier(tg, store, clock) as telegram:
        verdict = await send(telegram, "42", "hello")
    assert isinstance(verdict, Retry) and verdict.after is None


async def test_notifier_timeout_is_retryable(tg: FakeTelegram) -> None:
    tg.delay_next("sendMessage", 2.0)
    request = HTTPXRequest(read_timeout=0.2, write_timeout=0.2, connect_timeout=0.2)
    bot = Bot(TOKEN, base_url=f"{tg.api_url}/bot", request=request)
    async with bot:
        verdict = await send(TelegramNotifier(bot), "42", "hello")
    assert isinstance(verdict, Retry) and verdict.after is None
    assert "Timed out" in verdict.reason
