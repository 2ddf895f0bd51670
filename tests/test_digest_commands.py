"""/summary, /chart, /digest and /timezone end to end through PTB and the fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.digest.schedule import schedule_new_digests
from bot.model import OFF, ChatKind
from bot.store import Store, open_store
from tests.harness.bot_app import BOT, FakeService, ask, running
from tests.harness.clock import SteppingClock
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.market import START, load_market

pytestmark = pytest.mark.slow


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite+aiosqlite:///{tmp_path}/t.db") as opened:
        await load_market(opened)
        yield opened


@pytest.fixture
def service() -> FakeService:
    return FakeService(SteppingClock(START))


# /summary ----------------------------------------------------------------------------------------
async def test_summary_sends_the_digest_now_with_its_chart(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        tg.inject_message(42, "/summary")
        text, photo = await tg.wait_for(2, chat_id=42)
    assert text.method == "sendMessage" and photo.method == "sendPhoto"
    assert "Stablewatch summary" in text.text and "Sat 1 Nov, 05:00 UTC" in text.text
    assert "<b>BTC</b> Fri 31 Oct" in text.text and "Fear &amp; Greed <b>29</b>" in text.text
    assert "as of" not in text.text  # a Friday flow and a day-old F&G are fresh on Saturday
    assert photo.photo is not None and photo.photo.startswith(b"\x89PNG")
    assert "Stablewatch summary" in photo.text
    assert tg.calls("sendChatAction")  # "sending photo…" while the chart is drawn


async def test_summary_is_in_the_chats_time_zone(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    await store.subscribe(42, ChatKind.PRIVATE, "", START)
    async with running(tg, store, service=service):
        await ask(tg, 42, "/timezone America/New_York")
        tg.inject_message(42, "/summary")
        answers = await tg.wait_for(3, chat_id=42)
    assert "Sat 1 Nov, 01:00 America/New_York" in answers[1].text


async def test_summary_without_data_says_so(
    tg: FakeTelegram, tmp_path: Path, service: FakeService
) -> None:
    async with (
        open_store(f"sqlite+aiosqlite:///{tmp_path}/empty.db") as empty,
        running(tg, empty, service=service),
    ):
        tg.inject_message(42, "/summary")
        text, photo = await tg.wait_for(2, chat_id=42)
    assert text.text.count("no data yet") == 3 and photo.photo is not None


async def test_summary_with_only_old_data_names_the_newest_date(
    tg: FakeTelegram, store: Store
) -> None:
    later = FakeService(SteppingClock(START + timedelta(days=120)))
    async with running(tg, store, service=later):
        tg.inject_message(42, "/summary")
        text, _ = await tg.wait_for(2, chat_id=42)
    assert "no data yet" not in text.text
    assert "Fear &amp; Greed: no data since 31 Oct 2025" in text.text
    assert "<b>BTC</b>: no data since 28 Nov 2025" in text.text  # its ETF flows
    assert "Futures</b>\n<b>BTC</b>: no data since 31 Oct 2025" in text.text


async def test_summary_of_a_month_old_reading_says_as_of(tg: FakeTelegram, store: Store) -> None:
    later = FakeService(SteppingClock(START + timedelta(days=28)))
    async with running(tg, store, service=later):
        tg.inject_message(42, "/summary")
        text, _ = await tg.wait_for(2, chat_id=42)
    assert "vs a week before · as of 31 Oct" in text.text


# /chart ------------------------------------------------------------------------------------------
async def test_chart_sends_a_png_of_the_series_over_the_range(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        tg.inject_message(42, "/chart etf.btc.net_flow 30d")
        [photo] = [s for s in await tg.wait_for(1, chat_id=42) if s.method == "sendPhoto"]
    assert photo.photo is not None and photo.photo.startswith(b"\x89PNG")
    assert "<b>etf.btc.net_flow</b> · last 30d" in photo.text
    assert "newest −$191.6M at 31 Oct 00:00 UTC" in photo.plain


async def test_chart_defaults_to_30_days_and_accepts_any_case(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, "/chart FEAR_GREED")
    assert answer.method == "sendPhoto" and "fear_greed</b> · last 30d" in answer.text


async def test_chart_of_an_unknown_series_suggests_close_names(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, "/chart etf.btc.netflow")
    assert answer.method == "sendMessage" and "\n" not in answer.text
    assert "No data for <code>etf.btc.netflow</code>" in answer.text
    assert "<code>etf.btc.net_flow</code>" in answer.text


async def test_chart_with_no_points_in_range_names_the_newest(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    service.clock.advance(timedelta(days=60))
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, "/chart funding.btc.binance 7d")
    assert "no points in the last 7d" in answer.text
    assert "newest is from 2025-10-31" in answer.text


@pytest.mark.parametrize(
    "command",
    [
        "/chart",
        "/chart ../../etc/passwd",
        "/chart etf.btc.net_flow 2y",
        "/chart etf.btc.net_flow 0d",
        "/chart etf.btc.net_flow 30d extra",
        "/chart etf.btc.net_flow; DROP TABLE observations",
        "/chart <b>x</b>",
    ],
)
async def test_chart_bad_arguments_get_one_usage_line(
    tg: FakeTelegram, store: Store, service: FakeService, command: str
) -> None:
    before = await store.observations("etf.btc.net_flow")
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, command)
    assert answer.text.startswith("Usage: /chart SERIES [RANGE]") and "\n" not in answer.text
    assert await store.observations("etf.btc.net_flow") == before != []  # nothing touched


# /digest and /timezone ---------------------------------------------------------------------------
async def test_digest_shows_sets_and_turns_off_the_daily_time(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    await store.subscribe(42, ChatKind.PRIVATE, "", START)
    await schedule_new_digests(store, "08:00", "UTC", START)
    async with running(tg, store, service=service):
        shown = await ask(tg, 42, "/digest")
        changed = await ask(tg, 42, "/digest 7:30")
        off = await ask(tg, 42, "/digest OFF")
        after_off = await ask(tg, 42, "/digest")
    assert "Daily digest here at 08:00 UTC; next Sat 1 Nov 08:00 UTC." in shown.text
    assert "at 07:30 UTC; next Sat 1 Nov 07:30 UTC" in changed.text
    assert off.text.startswith("🔕 Daily digest off here")
    assert "digest is off here" in after_off.text
    schedule = await store.digest_schedule(42)
    assert schedule is not None and (schedule.digest_time, schedule.next_at) == (OFF, None)


async def test_digest_time_moves_the_next_due_moment(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    await store.subscribe(42, ChatKind.PRIVATE, "", START)
    async with running(tg, store, service=service):
        await ask(tg, 42, "/timezone europe/berlin")
        await ask(tg, 42, "/digest 06:15")
    schedule = await store.digest_schedule(42)
    assert schedule is not None
    assert (schedule.digest_time, schedule.timezone) == ("06:15", "Europe/Berlin")
    assert schedule.next_at == datetime(2025, 11, 1, 5, 15, tzinfo=UTC)  # CET = UTC+1


@pytest.mark.parametrize("argument", ["25:00", "7", "noon", "07:30 08:00", "07:60", "off!"])
async def test_digest_bad_time_gets_one_usage_line(
    tg: FakeTelegram, store: Store, service: FakeService, argument: str
) -> None:
    await store.subscribe(42, ChatKind.PRIVATE, "", START)
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, f"/digest {argument}")
    assert answer.text.startswith("Usage: /digest HH:MM|off") and "\n" not in answer.text


async def test_digest_needs_a_subscription(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, "/digest 09:00")
    assert "not subscribed" in answer.text and "/start" in answer.text
    assert await store.digest_schedule(42) is None


@pytest.mark.parametrize(
    "argument", ["Mars/Olympus", "../../etc/passwd", "Europe/Berlin/x", "<b>", "a" * 65]
)
async def test_timezone_refuses_unknown_zones_in_one_line(
    tg: FakeTelegram, store: Store, service: FakeService, argument: str
) -> None:
    await store.subscribe(42, ChatKind.PRIVATE, "", START)
    async with running(tg, store, service=service):
        answer = await ask(tg, 42, f"/timezone {argument}")
    assert answer.text.startswith(("Unknown time zone", "Usage: /timezone"))
    assert "\n" not in answer.text
    schedule = await store.digest_schedule(42)
    assert schedule is not None and schedule.timezone is None


async def test_timezone_shows_the_zone_and_its_local_time(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    await store.subscribe(42, ChatKind.PRIVATE, "", START)
    async with running(tg, store, service=service):
        before = await ask(tg, 42, "/timezone")
        changed = await ask(tg, 42, "/timezone Asia/Tokyo")
    assert "time zone is UTC (there it is Sat 1 Nov 05:00)" in before.text
    assert "Time zone set to Asia/Tokyo" in changed.text
    assert "at 08:00 Asia/Tokyo; next Sun 2 Nov 08:00 Asia/Tokyo" in changed.text


async def test_group_digest_settings_are_for_group_admins(
    tg: FakeTelegram, store: Store, service: FakeService
) -> None:
    await store.subscribe(-500, ChatKind.GROUP, "G", START)
    tg.add_chat(-500, "group", title="G")
    tg.set_member(-500, 7, "administrator")
    tg.set_member(-500, 8, "member")
    group = {"chat_type": "group", "title": "G"}
    async with running(tg, store, service=service):
        shown = await ask(tg, -500, f"/digest@{BOT}", user_id=8, **group)
        refused = await ask(tg, -500, f"/digest@{BOT} 09:00", user_id=8, **group)
        zone_refused = await ask(tg, -500, f"/timezone@{BOT} Asia/Tokyo", user_id=8, **group)
        done = await ask(tg, -500, f"/digest@{BOT} 09:00", user_id=7, **group)
        summary_by_member = await ask(tg, -500, f"/summary@{BOT}", user_id=8, **group)
    assert "Daily digest here at 08:00" in shown.text
    assert "only this group's admins" in refused.text and "only" in zone_refused.text
    assert "at 09:00 UTC" in done.text
    assert summary_by_member.method in ("sendMessage", "sendPhoto")
    schedule = await store.digest_schedule(-500)
    assert schedule is not None and schedule.digest_time == "09:00"
