"""The settings and read-only chat commands, end to end through PTB and the fake Bot API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.model import AlertState, AlertStatus, ChatKind, SourceHealth, Transition, TransitionKind
from bot.store import Store
from tests.harness.bot_app import BOT, RULES, FakeService, ask, running
from tests.harness.clock import SteppingClock
from tests.harness.fake_telegram import FakeTelegram, Sent

pytestmark = pytest.mark.slow  # PTB round trips through the fake Bot API


@pytest.fixture
def service(clock: SteppingClock) -> FakeService:
    return FakeService(clock)


def buttons(sent: Sent) -> list[str]:
    assert sent.reply_markup is not None
    return [b["callback_data"] for row in sent.reply_markup["inline_keyboard"] for b in row]


# /subscribe and /unsubscribe ---------------------------------------------------------------------
async def test_subscribe_keyboard_narrows_then_resets_the_filter(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        menu = await ask(tg, 42, "/subscribe")
        assert {"sub:all", "sub:tag:etf", "sub:extreme-fear"} <= set(buttons(menu))
        tg.inject_callback_query(42, menu.message_id, "sub:tag:etf")
        edited = (await tg.wait_for(2, chat_id=42))[-1]
        assert await store.filters() == {"42": {"tag:etf"}}
        assert [s.chat_id for s in await store.subscriptions()] == [42]
        tg.inject_callback_query(42, menu.message_id, "sub:all")
        reset = (await tg.wait_for(3, chat_id=42))[-1]
    assert edited.method == "editMessageText" and "<code>tag:etf</code>" in edited.text
    assert "every</b> alert" in reset.text
    assert await store.filters() == {}
    assert len(tg.calls("answerCallbackQuery")) == 2


async def test_subscribe_typed_and_unknown_target(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        done = await ask(tg, 42, "/subscribe ETF extreme-fear")
        bad = await ask(tg, 42, "/subscribe <nosuch>")
    assert await store.filters() == {"42": {"tag:etf", "extreme-fear"}}
    assert "receives only" in done.text
    assert bad.text.startswith("Usage: /subscribe") and "\n" not in bad.text


async def test_unsubscribe_from_everything_keeps_the_other_rules(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        await ask(tg, 42, "/start")
        await ask(tg, 42, "/unsubscribe health")
        bad = await ask(tg, 42, "/unsubscribe 1h")
    chosen = (await store.filters())["42"]
    assert "extreme-fear" in chosen and not any(t.startswith("source-down") for t in chosen)
    assert bad.text.startswith("Usage: /unsubscribe")


async def test_unsubscribe_keyboard_dropping_the_last_target_stops_alerts(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        await ask(tg, 42, "/subscribe extreme-fear")
        menu = await ask(tg, 42, "/unsubscribe")
        assert buttons(menu) == ["unsub:all", "unsub:extreme-fear"]
        tg.inject_callback_query(42, menu.message_id, "unsub:extreme-fear")
        stopped = (await tg.wait_for(3, chat_id=42))[-1]
    assert "Unsubscribed" in stopped.text
    assert await store.subscriptions() == [] and await store.filters() == {}


async def test_group_keyboard_refuses_non_admins_and_accepts_admins(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    tg.set_member(-500, 7, "administrator")
    async with running(tg, store, service=service):
        menu = await ask(tg, -500, f"/subscribe@{BOT}", user_id=7, chat_type="group")
        tg.inject_callback_query(-500, menu.message_id, "sub:tag:etf", user_id=8)
        await tg.wait_for_calls("answerCallbackQuery", 1)
        assert await store.filters() == {}
        tg.inject_callback_query(-500, menu.message_id, "sub:tag:etf", user_id=7)
        await tg.wait_for(2, chat_id=-500)
    refusal = tg.calls("answerCallbackQuery")[0].params
    assert refusal["show_alert"] is True and "admins" in refusal["text"]
    assert await store.filters() == {"-500": {"tag:etf"}}


# /mute and /unmute -------------------------------------------------------------------------------
async def test_mute_then_unmute(tg: FakeTelegram, store: Store, service: FakeService) -> None:
    now = service.clock()
    async with running(tg, store, service=service):
        muted = await ask(tg, 42, "/mute extreme-fear 8h")
        assert await store.mutes(now) == {"42": {"extreme-fear": now + timedelta(hours=8)}}
        bad = await ask(tg, 42, "/unmute nosuch")
        lifted = await ask(tg, 42, "/unmute")
    assert "Muted <code>extreme-fear</code>" in muted.text and "8h" in muted.text
    assert bad.text.startswith("Usage: /unmute")
    assert lifted.text == "🔔 Lifted 1 mute(s)."
    assert await store.mutes(now) == {}


@pytest.mark.parametrize(
    "text", ["/mute", "/mute all", "/mute nosuch 1h", "/mute all forever", "/mute all 2y"]
)
async def test_mute_bad_arguments_get_one_usage_line(
    tg: FakeTelegram, store: Store, service: FakeService, text: str
) -> None:
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, text)
    assert "Usage: /mute" in answer.text and "\n" not in answer.text
    assert await store.mutes(service.clock()) == {}


async def test_group_mute_needs_a_group_admin(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    tg.set_member(-500, 7, "administrator")
    async with running(tg, store, service=service):
        refused = await ask(tg, -500, f"/mute@{BOT} all 1h", user_id=8, chat_type="group")
        await ask(tg, -500, f"/mute@{BOT} tag:etf 1h", user_id=7, chat_type="group")
    assert "only this group's admins" in refused.text
    assert set((await store.mutes(service.clock()))["-500"]) == {"tag:etf"}


# /rules, /status, /history, /reload --------------------------------------------------------------
async def test_rules_shows_each_state_and_since_when(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    since = service.clock() - timedelta(hours=3)
    firing = AlertState("extreme-fear", AlertStatus.FIRING, since=since, value=12)
    await store.record_evaluation([firing], [], [], service.clock())
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, "/rules")
    line = next(x for x in answer.text.splitlines() if "extreme-fear" in x)
    assert "firing for 3h" in line and "#sentiment" in line
    assert "Fear &amp; Greed source down" in answer.text


async def test_rules_without_a_runtime_says_none_are_loaded(tg: FakeTelegram, store: Store) -> None:
    async with running(tg, store):
        answer = await ask(tg, 42, "/rules")
    assert answer.text == "No rules are loaded."


async def test_status_lists_sources_with_freshness_and_errors(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    now = service.clock()
    await store.save_source_health(
        SourceHealth("fear_greed", False, now - timedelta(hours=5), "HTTP 503 <html>", now, 3)
    )
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, "/status")
    line = next(x for x in answer.text.splitlines() if "fear_greed" in x)
    assert "DOWN (3 failed polls)" in line and "5h ago (STALE)" in line
    assert "HTTP 503 &lt;html&gt;" in line


async def test_history_lists_recent_alerts_and_checks_n(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    now = service.clock()
    fired = Transition("extreme-fear", TransitionKind.FIRING, now, 12.0, "m", reason="<cond>")
    await store.record_evaluation([], [fired], [], now)
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, "/history 5")
        bad = await ask(tg, 42, "/history 51")
        worse = await ask(tg, 42, "/history 1; DROP TABLE x")
    assert "<b>Extreme fear</b> firing — &lt;cond&gt;" in answer.text
    assert bad.text == worse.text == "Usage: /history [N], N from 1 to 50"


async def test_reload_is_for_bot_admins_and_reports_problems(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service, admin_ids=[42]):
        ok = await ask(tg, 42, "/reload")
        refused = await ask(tg, 43, "/reload")
        service.problems = ["etf.yaml:3:5: <bad>"]
        failed = await ask(tg, 42, "/reload")
    assert ok.text == f"✅ Rules reloaded: {len(RULES.rules)} rule(s)."
    assert "only for this bot's admins" in refused.text
    assert "<pre>etf.yaml:3:5: &lt;bad&gt;</pre>" in failed.text


async def test_allowlist_applies_to_every_command(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service, access="allowlist", allowed_chat_ids=[100]):
        refused = await ask(tg, 42, "/rules")
        allowed = await ask(tg, 100, "/history")
    assert "allowlist" in refused.text
    assert allowed.text == "No alerts yet."


# my_chat_member ----------------------------------------------------------------------------------
async def test_bot_added_to_a_channel_or_group_subscribes_it(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        tg.inject_my_chat_member(-1001, new_status="administrator", chat_type="channel", title="C")
        tg.inject_my_chat_member(-500, new_status="member", chat_type="group", title="G")
        await ask(tg, 42, "/help")  # processed after the membership changes: a barrier
        subscribed = {s.chat_id: s.kind for s in await store.subscriptions()}
        assert subscribed == {-1001: ChatKind.CHANNEL, -500: ChatKind.GROUP}
        tg.inject_my_chat_member(-1001, new_status="left", chat_type="channel")
        await ask(tg, 42, "/help")
    assert [s.chat_id for s in await store.subscriptions()] == [-500]


async def test_bot_added_to_a_chat_off_the_allowlist_stays_unsubscribed(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service, access="allowlist", allowed_chat_ids=[100]):
        tg.inject_my_chat_member(-1001, new_status="administrator", chat_type="channel")
        await ask(tg, 100, "/help")
    assert await store.subscriptions() == []
