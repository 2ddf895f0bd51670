"""The daily digest job: each chat at its local time, exactly once, through PTB and the fake API."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import DeliverySettings, DigestSettings
from bot.delivery.console import ConsoleNotifier
from bot.delivery.notifier import Notifier
from bot.digest.job import RETRY_LATER, DigestJob
from bot.digest.schedule import DIGEST_LEASE, claim_due
from bot.engine.loader import load_rules
from bot.metrics import Metrics
from bot.model import ChatKind, Transition, TransitionKind
from bot.numbers import usd
from bot.store import Store, open_store
from bot.telegram.notifier import TelegramNotifier
from tests.harness.bot_app import TOKEN, running
from tests.harness.clock import SteppingClock
from tests.harness.fake_telegram import FakeTelegram, Sent
from tests.harness.files import ROOT
from tests.harness.market import START, load_market
from tests.harness.pipeline import scrape

pytestmark = pytest.mark.slow

RULES = load_rules(ROOT / "rules")
FAST = DeliverySettings(global_rate=100, private_rate=100, group_per_minute=600)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/digest.db"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    async with open_store(db_url) as opened:
        await load_market(opened)
        yield opened


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(START)


def job(
    store: Store,
    notifier: Notifier,
    clock: SteppingClock,
    channels: Sequence[str] = (),
    settings: DigestSettings | None = None,
) -> DigestJob:
    return DigestJob(
        store,
        notifier,
        clock,
        ["btc", "eth"],
        settings or DigestSettings(time="08:00", timezone="UTC"),
        lambda: list(channels),
        lambda: RULES,
    )


@asynccontextmanager
async def telegram(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> AsyncIterator[TelegramNotifier]:
    async with running(tg, store, clock) as app:
        yield TelegramNotifier(app.bot)


def kinds(sent: list[Sent]) -> list[str]:
    return [s.method for s in sent]


async def subscribe(store: Store, clock: SteppingClock, *chats: int) -> None:
    for chat in chats:
        kind = ChatKind.PRIVATE if chat > 0 else ChatKind.GROUP
        await store.subscribe(chat, kind, f"chat {chat}", clock())


@asynccontextmanager
async def at_eight(
    tg: FakeTelegram, store: Store, clock: SteppingClock, *chats: int
) -> AsyncIterator[DigestJob]:
    """Subscribe the chats, let the job schedule them at 05:00, then move the clock to 08:00."""
    await subscribe(store, clock, *chats)
    async with telegram(tg, store, clock) as notifier:
        digests = job(store, notifier, clock)
        assert (await digests.run()).claimed == 0
        clock.advance(timedelta(hours=3))
        yield digests


async def test_each_chat_gets_its_digest_at_its_local_time_exactly_once(
    tg: FakeTelegram, store: Store, clock: SteppingClock, db_url: str
) -> None:
    await subscribe(store, clock, 1, 2, -500)
    async with telegram(tg, store, clock) as notifier:
        digests = job(store, notifier, clock)
        assert (await digests.run()).claimed == 0  # schedules everyone; nothing due at 05:00
        await store.set_digest(2, "08:00", "Europe/Berlin", datetime(2025, 11, 1, 7, tzinfo=UTC))
        clock.advance(timedelta(hours=2, seconds=10))  # 07:00:10 UTC = 08:00:10 in Berlin
        assert (await digests.run()).sent == 1
        assert (await digests.run()).claimed == 0
        assert kinds(tg.sent(2)) == ["sendMessage", "sendPhoto"] and tg.sent(1) == []
        clock.advance(timedelta(hours=1))  # 08:00:10 UTC
        first = await digests.run()
        # a restarted bot (new store and job on the same file) sends nothing twice
        async with open_store(db_url) as reopened:
            again = await job(reopened, notifier, clock).run()
    assert (first.sent, again.claimed) == (2, 0)
    for chat in (1, 2, -500):
        text, photo = tg.sent(chat)
        assert "Stablewatch daily digest" in text.text and photo.photo is not None
        assert photo.photo.startswith(b"\x89PNG")
    berlin, utc = tg.sent(2)[0].text, tg.sent(1)[0].text
    assert "09:00 Europe/Berlin" not in berlin and "08:00 Europe/Berlin" in berlin
    assert "08:00 UTC" in utc
    # the scorecard agrees with the recorded flows of the five sessions up to Fri 31 Oct
    rows = await store.observations("etf.btc.net_flow", START - timedelta(days=30), START)
    assert rows[-1].ts.date().isoformat() == "2025-10-31"
    assert f"5 days {usd(sum(o.value for o in rows[-5:]))}" in utc
    assert f"Fri 31 Oct: {usd(rows[-1].value)}" in utc


async def test_next_day_is_the_next_local_day_not_a_24h_repeat(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await subscribe(store, clock, 1)
    async with telegram(tg, store, clock) as notifier:
        digests = job(store, notifier, clock)
        await digests.run()
        clock.advance(timedelta(hours=3, minutes=30))  # 08:30, late after a restart
        assert (await digests.run()).sent == 1
        clock.advance(timedelta(hours=23))  # 07:30 the next day: not yet
        assert (await digests.run()).claimed == 0
        clock.advance(timedelta(minutes=30))
        assert (await digests.run()).sent == 1
    assert kinds(tg.sent(1)) == ["sendMessage", "sendPhoto"] * 2


async def test_alerts_in_a_digest_follow_the_chats_subscribe_choice(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    for rule in ("extreme-fear", "btc-etf-outflow-streak"):
        fired = Transition(rule, TransitionKind.FIRING, clock(), 1.0, f"{rule} fired")
        await store.record_evaluation([], [fired], [], clock())
    await store.set_filter("1", ["tag:etf"])
    async with at_eight(tg, store, clock, 1, 2) as digests:
        assert (await digests.run()).sent == 2
    narrowed, everything = tg.sent(1)[0].text, tg.sent(2)[0].text
    assert "btc-etf-outflow-streak" in narrowed and "extreme-fear" not in narrowed
    assert "btc-etf-outflow-streak" in everything and "extreme-fear" in everything


async def test_channels_get_the_digest_once_each(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with telegram(tg, store, clock) as notifier:
        digests = job(store, notifier, clock, channels=["@stablewatch_news", "-1009"])
        await digests.run()
        clock.advance(timedelta(hours=3))
        outcome = await digests.run()
        assert (await digests.run()).claimed == 0
    assert (outcome.claimed, outcome.sent) == (1, 1)
    for channel in ("@stablewatch_news", "-1009"):
        assert kinds(tg.sent(channel)) == ["sendMessage", "sendPhoto"]


async def test_a_failed_digest_is_retried_later_not_lost(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with at_eight(tg, store, clock, 1) as digests:
        tg.fail_next("sendMessage", status=502)
        assert (await digests.run()).retrying == 1
        assert tg.sent(1) == []
        clock.advance(RETRY_LATER - timedelta(seconds=1))
        assert (await digests.run()).claimed == 0
        clock.advance(timedelta(seconds=1))
        assert (await digests.run()).sent == 1
    assert kinds(tg.sent(1)) == ["sendMessage", "sendPhoto"]


async def test_short_flood_waits_are_slept_through(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with at_eight(tg, store, clock, 1) as digests:
        tg.fail_next("sendPhoto", retry_after=1)
        assert (await digests.run()).sent == 1
    assert kinds(tg.sent(1)) == ["sendMessage", "sendPhoto"]


async def test_a_blocked_chat_is_unsubscribed_and_the_others_still_get_theirs(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with at_eight(tg, store, clock, 1, 2) as digests:
        digests.metrics = Metrics(process=False)
        tg.fail_next("sendMessage", chat_id=1, status=403)
        outcome = await digests.run()
    assert (outcome.sent, outcome.dropped) == (1, 1)
    counted = {k: v for k, v in scrape(digests.metrics).items() if "messages_sent" in k[0]}
    assert counted == {
        ("stablewatch_messages_sent_total", (("kind", "digest"), ("outcome", o))): 1.0
        for o in ("sent", "gone")
    }
    assert [s.chat_id for s in await store.subscriptions()] == [2]
    assert kinds(tg.sent(2)) == ["sendMessage", "sendPhoto"]


async def test_a_group_that_became_a_supergroup_gets_it_there(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with at_eight(tg, store, clock, -500) as digests:
        tg.fail_next("sendMessage", chat_id=-500, migrate_to_chat_id=-100500)
        assert (await digests.run()).sent == 1
    assert kinds(tg.sent(-100500)) == ["sendMessage", "sendPhoto"]
    assert [s.chat_id for s in await store.subscriptions()] == [-100500]


async def test_a_digest_whose_sender_died_goes_out_after_the_lease(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with at_eight(tg, store, clock, 1) as digests:
        assert len(await claim_due(store, clock())) == 1  # claimed, then the bot died
        assert (await digests.run()).claimed == 0
        clock.advance(DIGEST_LEASE)
        assert (await digests.run()).sent == 1
    assert kinds(tg.sent(1)) == ["sendMessage", "sendPhoto"]


async def test_turned_off_chats_get_no_digest(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await subscribe(store, clock, 1)
    await store.set_digest(1, "off", None, None)
    async with telegram(tg, store, clock) as notifier:
        digests = job(store, notifier, clock)
        clock.advance(timedelta(days=2))
        assert (await digests.run()).claimed == 0
    assert tg.sent(1) == []


async def test_console_prints_the_digest_and_saves_the_chart(
    store: Store, clock: SteppingClock, tmp_path: Path
) -> None:
    stream = io.StringIO()
    console = ConsoleNotifier(stream, image_dir=tmp_path / "charts")
    digests = job(store, console, clock, channels=["console"])
    await digests.run()
    clock.advance(timedelta(hours=3))
    assert (await digests.run()).sent == 1
    printed = stream.getvalue()
    assert "Stablewatch daily digest" in printed and "<b>" not in printed
    chart = tmp_path / "charts" / "chart-console.png"
    assert f"[saved to {chart}]" in printed
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_start_up_imports_no_matplotlib() -> None:
    """The chart library loads on the first chart only, keeping start-up fast and small."""
    code = (
        "import sys, bot.app, bot.telegram.app, bot.digest.job;print('matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
