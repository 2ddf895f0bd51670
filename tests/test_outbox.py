"""The outbox worker end to end: real PTB app and TelegramNotifier against the fake Bot API."""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from bot.config import DeliverySettings
from bot.delivery.console import ConsoleNotifier
from bot.delivery.notifier import Edit, Message, Text, Verdict
from bot.delivery.outbox import MAX_ATTEMPTS, OutboxWorker, plan, retry_delay
from bot.delivery.pacer import Lane, Pacer
from bot.delivery.split import to_plain
from bot.model import ChatKind, Delivery, Transition, TransitionKind
from bot.store import Store
from bot.telegram.notifier import TelegramNotifier
from tests.harness.bot_app import TOKEN, pacer_clock, running
from tests.harness.clock import SteppingClock
from tests.harness.fake_telegram import MAX_TEXT_LENGTH, FakeTelegram, parse_html
from tests.harness.store_rows import notification, pending_outbox

pytestmark = pytest.mark.slow

FAST = DeliverySettings(global_rate=200, private_rate=100, group_per_minute=600)
"""Limits loose enough that tests about errors don't wait on pacing."""
PARSE_ERROR = "Bad Request: can't parse entities: Unsupported start tag"


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server


class Recording:
    """Wraps a notifier and notes when each call to a chat was made (loop time)."""

    name = "recording"

    def __init__(self, inner: TelegramNotifier, crash_on: str | None = None) -> None:
        self.inner = inner
        self.times: dict[str, list[float]] = {}
        self.crash_on = crash_on

    def _note(self, chat_id: str) -> None:
        self.times.setdefault(chat_id, []).append(asyncio.get_running_loop().time())

    async def deliver(self, chat_id: str, message: Message, lane: Lane = Lane.BROADCAST) -> Verdict:
        self._note(chat_id)
        verdict = await self.inner.deliver(chat_id, message, lane)
        if (
            self.crash_on is not None
            and isinstance(message, Text)
            and self.crash_on in message.body
        ):
            raise RuntimeError("the process died right after Telegram accepted the message")
        return verdict


@asynccontextmanager
async def worker(
    tg: FakeTelegram,
    store: Store,
    clock: SteppingClock,
    settings: DeliverySettings = FAST,
    crash_on: str | None = None,
) -> AsyncIterator[tuple[OutboxWorker, Recording]]:
    pacer = Pacer(
        settings.global_rate,
        settings.private_rate,
        settings.group_per_minute,
        clock=pacer_clock(clock),
    )
    async with running(tg, store, clock, pacer=pacer) as app:
        notifier = Recording(TelegramNotifier(app.bot), crash_on)
        yield OutboxWorker(store, notifier, clock, "w1", settings), notifier


async def enqueue(
    store: Store,
    clock: SteppingClock,
    rule: str,
    *deliveries: tuple[str, str],
    kind: TransitionKind = TransitionKind.FIRING,
) -> None:
    """One transition of `rule`, owed to each (chat, text)."""
    transition = Transition(rule, kind, clock(), 1.0, f"{rule} {kind}")
    rows = [Delivery(0, chat, text, clock()) for chat, text in deliveries]
    await store.record_evaluation([], [transition], rows, clock())


async def logged_id(store: Store, rule: str, chat: str) -> int | None:
    entry = await notification(store, rule, chat)
    assert entry is not None, f"nothing logged for {rule} in {chat}"
    return entry[0]


def statuses(tg: FakeTelegram, method: str = "sendMessage") -> list[int]:
    return [call.status for call in tg.calls(method)]


# grouping and splitting -------------------------------------------------------------------------
async def test_rows_for_one_chat_become_one_message(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await enqueue(store, clock, "funding", ("42", "<b>Funding</b> flipped"), ("43", "funding"))
    await enqueue(store, clock, "etf", ("42", "<b>ETF</b> inflows"))
    async with worker(tg, store, clock) as (outbox, _):
        assert await outbox.drain() == 3
    [message] = tg.sent(42)
    assert message.text == "<b>Funding</b> flipped\n\n<b>ETF</b> inflows"
    assert [m.text for m in tg.sent(43)] == ["funding"]
    assert await logged_id(store, "funding", "42") == await logged_id(store, "etf", "42") == 1
    assert await pending_outbox(store) == 0


async def test_a_long_merged_message_is_split_and_rows_keep_the_first_id(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    block = "\n".join(f"<b>line {n}</b> 🚨 &lt;detail&gt;" for n in range(120))
    for rule in ("a", "b", "c"):
        await enqueue(store, clock, rule, ("42", f"<i>{rule}</i>\n{block}"))
    async with worker(tg, store, clock) as (outbox, _):
        assert await outbox.drain() == 3
    messages = tg.sent(42)
    assert len(messages) >= 3
    for message in messages:
        assert len(message.text.encode("utf-16-le")) // 2 <= MAX_TEXT_LENGTH
        parse_html(message.text)
    assert "".join(m.plain for m in messages) == to_plain(
        "\n\n".join(f"<i>{r}</i>\n{block}" for r in "abc")
    )
    assert {await logged_id(store, rule, "42") for rule in "abc"} == {messages[0].message_id}


# resolve edits ----------------------------------------------------------------------------------
async def fire_then_resolve(store: Store, clock: SteppingClock, outbox: OutboxWorker) -> None:
    await enqueue(store, clock, "funding", ("42", "🚨 <b>Funding</b> negative"))
    assert await outbox.drain() == 1
    resolved = "✅ <b>Funding</b> negative — resolved: condition cleared"
    await enqueue(store, clock, "funding", ("42", resolved), kind=TransitionKind.RESOLVED)


async def test_a_resolved_alert_edits_the_original_message(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with worker(tg, store, clock) as (outbox, _):
        await fire_then_resolve(store, clock, outbox)
        assert await outbox.drain() == 1
    sent, edited = tg.sent(42)
    assert (edited.method, edited.message_id) == ("editMessageText", sent.message_id)
    assert edited.plain.startswith("✅ Funding negative — resolved")
    assert len(tg.calls("sendMessage")) == 1
    assert await logged_id(store, "funding", "42") == sent.message_id


@pytest.mark.parametrize(
    "description",
    [
        "Bad Request: message to edit not found",
        "Bad Request: message can't be edited",
    ],
)
async def test_when_the_original_cannot_be_edited_the_resolution_is_sent_anew(
    tg: FakeTelegram, store: Store, clock: SteppingClock, description: str
) -> None:
    async with worker(tg, store, clock) as (outbox, _):
        await fire_then_resolve(store, clock, outbox)
        tg.fail_next("editMessageText", status=400, description=description)
        assert await outbox.drain() == 1
    _, second = tg.sent(42)
    assert (second.method, second.message_id) == ("sendMessage", 2)
    assert "resolved" in second.plain
    assert await logged_id(store, "funding", "42") == 2


async def test_an_edit_that_changes_nothing_counts_as_done(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with worker(tg, store, clock) as (outbox, _):
        await fire_then_resolve(store, clock, outbox)
        tg.fail_next(
            "editMessageText", status=400, description="Bad Request: message is not modified"
        )
        assert await outbox.drain() == 1
    assert len(tg.calls("sendMessage")) == 1
    assert await pending_outbox(store) == 0


async def test_an_unparseable_edit_is_made_once_more_as_plain_text(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with worker(tg, store, clock) as (outbox, _):
        await fire_then_resolve(store, clock, outbox)
        tg.fail_next("editMessageText", status=400, description=PARSE_ERROR)
        assert await outbox.drain() == 1
    assert statuses(tg, "editMessageText") == [400, 200]
    assert "parse_mode" not in tg.calls("editMessageText")[1].params


def test_plan_keeps_edits_apart_and_merges_the_rest_in_id_order() -> None:
    from bot.model import OutboxItem

    def item(n: int, kind: TransitionKind, reply_to: int | None = None) -> OutboxItem:
        return OutboxItem(n, f"k{n}", "42", f"t{n}", f"r{n}", kind, reply_to=reply_to)

    firing, resolved = TransitionKind.FIRING, TransitionKind.RESOLVED
    units = plan("42", [item(3, firing), item(1, resolved, 7), item(2, resolved), item(4, firing)])
    assert [(u.text, u.edit_of) for u in units] == [("t1", 7), ("t2\n\nt3\n\nt4", None)]


# errors -----------------------------------------------------------------------------------------
async def test_flood_wait_is_waited_out_and_the_same_message_retried(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await enqueue(store, clock, "funding", ("42", "hello"))
    tg.fail_next("sendMessage", chat_id=42, status=429, retry_after=1)
    async with worker(tg, store, clock) as (outbox, notifier):
        assert await outbox.drain() == 1
    assert statuses(tg) == [429, 200]
    first, retry = notifier.times["42"]
    assert retry - first >= 1.0
    assert [m.text for m in tg.sent(42)] == ["hello"]


async def test_a_long_flood_wait_goes_back_to_the_outbox(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await enqueue(store, clock, "funding", ("-1001234567890", "hello group"))
    tg.fail_next("sendMessage", status=429, retry_after=120)
    async with worker(tg, store, clock) as (outbox, _):
        assert await outbox.drain() == 0
        clock.advance(timedelta(seconds=119))
        assert await outbox.drain() == 0
        clock.advance(timedelta(seconds=2))
        assert await outbox.drain() == 1
    assert statuses(tg) == [429, 200]


async def test_a_blocked_chat_is_unsubscribed_and_never_tried_again(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await store.subscribe(42, ChatKind.PRIVATE, "Alice", clock())
    await store.subscribe(43, ChatKind.PRIVATE, "Bob", clock())
    async with worker(tg, store, clock) as (outbox, _):
        await fire_then_resolve(store, clock, outbox)
        await enqueue(store, clock, "etf", ("42", "etf"), ("43", "etf"))
        tg.block(42)
        assert await outbox.drain() == 1  # only Bob's
    assert [s.chat_id for s in await store.subscriptions()] == [43]
    assert statuses(tg, "editMessageText") == [403]  # the edit failed; the message was skipped
    assert statuses(tg) == [200, 200]
    assert await pending_outbox(store) == 0


async def test_unknown_chat_is_unsubscribed(store: Store, clock: SteppingClock) -> None:
    await store.subscribe(999, ChatKind.PRIVATE, "Gone", clock())
    await enqueue(store, clock, "funding", ("999", "hello"))
    strict = FakeTelegram(token=TOKEN, strict_chats=True)
    async with strict, worker(strict, store, clock) as (outbox, _):
        assert await outbox.drain() == 0
    assert await store.subscriptions() == []


async def test_a_migrated_group_is_followed_and_the_message_resent_there(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await store.subscribe(-500, ChatKind.GROUP, "Traders", clock())
    await enqueue(store, clock, "funding", ("-500", "hello group"))
    tg.fail_next("sendMessage", chat_id=-500, migrate_to_chat_id=-1001234567890)
    async with worker(tg, store, clock) as (outbox, _):
        assert await outbox.drain() == 1
    assert [m.text for m in tg.sent(-1001234567890)] == ["hello group"]
    assert [s.chat_id for s in await store.subscriptions()] == [-1001234567890]
    assert await logged_id(store, "funding", "-1001234567890") == 1


async def test_bad_request_is_never_retried(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await store.subscribe(42, ChatKind.PRIVATE, "Alice", clock())
    await enqueue(store, clock, "funding", ("42", "hello"))
    tg.fail_next("sendMessage", status=400, description="Bad Request: wrong parameter")
    async with worker(tg, store, clock) as (outbox, _):
        assert await outbox.drain() == 0
        clock.advance(timedelta(hours=1))
        assert await outbox.drain() == 0
    assert statuses(tg) == [400]
    assert await pending_outbox(store) == 0
    assert [s.chat_id for s in await store.subscriptions()] == [42]


async def test_unparseable_html_is_resent_once_as_plain_text(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await enqueue(store, clock, "funding", ("42", "<b>BTC & ETH</b> <i>turned"))
    async with worker(tg, store, clock) as (outbox, _):
        assert await outbox.drain() == 1
    assert statuses(tg) == [400, 200]
    assert tg.sent(42)[0].text == "BTC & ETH turned"


@pytest.mark.parametrize("status", [500, 502])
async def test_server_errors_back_off_and_keep_the_chat_in_order(
    tg: FakeTelegram, store: Store, clock: SteppingClock, status: int
) -> None:
    async with worker(tg, store, clock) as (outbox, _):
        await fire_then_resolve(store, clock, outbox)
        await enqueue(store, clock, "etf", ("42", "etf inflows"))
        tg.fail_next("editMessageText", status=status)
        assert await outbox.drain() == 0  # the edit failed, the new message waits behind it
        assert await pending_outbox(store) == 2
        assert await outbox.drain() == 0  # not due yet
        clock.advance(retry_delay(0, lambda: 1.0))
        assert await outbox.drain() == 2
    assert [m.method for m in tg.sent(42)] == ["sendMessage", "editMessageText", "sendMessage"]


async def test_network_errors_keep_the_row_until_telegram_takes_it(
    tg: FakeTelegram, store: Store, clock: SteppingClock, caplog: pytest.LogCaptureFixture
) -> None:
    await enqueue(store, clock, "funding", ("42", "hello"))
    tg.fail_next("sendMessage", status=502, times=-1)
    async with worker(tg, store, clock) as (outbox, _):
        for _ in range(MAX_ATTEMPTS + 2):
            assert await outbox.drain() == 0  # one try per drain: backoff, not a hot loop
            clock.advance(timedelta(hours=1))
        assert len(tg.calls("sendMessage")) == MAX_ATTEMPTS + 2
        assert await pending_outbox(store) == 1
        assert "failed 8 time(s)" in caplog.text
        tg.clear_faults()
        assert await outbox.drain() == 1
    assert [m.plain for m in tg.sent(42)] == ["hello"]


def test_retry_delay_grows_with_jitter_and_is_capped() -> None:
    assert retry_delay(0, lambda: 0.0) == timedelta(seconds=2.5)
    assert retry_delay(0, lambda: 1.0) == timedelta(seconds=5)
    assert retry_delay(3, lambda: 1.0) == timedelta(seconds=40)
    assert retry_delay(20, lambda: 1.0) == timedelta(minutes=10)


# idempotency ------------------------------------------------------------------------------------
async def test_a_crash_repeats_only_the_message_in_flight(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    async with worker(tg, store, clock) as (outbox, _):
        await fire_then_resolve(store, clock, outbox)
    await enqueue(store, clock, "etf", ("42", "etf inflows"))
    async with worker(tg, store, clock, crash_on="etf") as (outbox, _):
        with pytest.raises(ExceptionGroup):
            await outbox.drain()
    await store.release_claims("*")
    async with worker(tg, store, clock) as (outbox, _):
        assert await outbox.drain() == 1  # the edit was recorded before the crash
    methods = [(m.method, m.plain[:3]) for m in tg.sent(42)]
    assert methods == [
        ("sendMessage", "🚨 F"),
        ("editMessageText", "✅ F"),
        ("sendMessage", "etf"),  # accepted, then the crash: in flight, so sent again
        ("sendMessage", "etf"),
    ]


# rate limits and channels -----------------------------------------------------------------------
def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def arrivals(tg: FakeTelegram, chat: str) -> list[float]:
    """When Telegram accepted each message to a chat: the pacer works inside the bot's calls."""
    return [
        c.at
        for c in tg.calls("sendMessage")
        if str(c.params.get("chat_id")) == chat and c.status == 200
    ]


async def test_channels_and_supergroups_get_alerts_at_the_group_pace(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    """Three chunks each to a channel and a supergroup, at 120/min: 0.5 s apart, chats at once."""
    long = "\n".join(["🚨 " + "x" * 1000] * 10)  # three messages
    targets = ("@stablewatch_alerts", "-1001234567890")
    await enqueue(store, clock, "funding", *((chat, long) for chat in targets))
    settings = DeliverySettings(global_rate=50, private_rate=50, group_per_minute=120)
    async with worker(tg, store, clock, settings) as (outbox, _notifier):
        assert await outbox.drain() == 2
    for chat in targets:
        assert len(tg.sent(chat)) == 3
        # spaced 0.5 s at the pacer; arrival times carry loopback and scheduling jitter, which
        # does not add up over the span (unpaced, three sends land within a few ms)
        times = arrivals(tg, chat)
        assert times[-1] - times[0] >= 0.9 and min(gaps(times)) >= 0.35, gaps(times)
    starts = [arrivals(tg, chat)[0] for chat in targets]
    assert abs(starts[0] - starts[1]) < 0.4  # served side by side, not one after the other


async def test_private_chats_get_at_most_the_private_rate(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await enqueue(store, clock, "funding", ("42", "\n".join(["y" * 1000] * 9)))
    settings = DeliverySettings(global_rate=50, private_rate=5, group_per_minute=600)
    async with worker(tg, store, clock, settings) as (outbox, _notifier):
        assert await outbox.drain() == 1
    assert len(arrivals(tg, "42")) == 3
    times = arrivals(tg, "42")  # 0.2 s apart at the pacer, with arrival jitter
    assert times[-1] - times[0] >= 0.36 and min(gaps(times)) >= 0.14, gaps(times)


async def test_the_overall_rate_keeps_telegram_from_answering_429(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    chats = [str(n) for n in range(1, 26)]
    await enqueue(store, clock, "funding", *((chat, f"hi {chat}") for chat in chats))
    tg.rate_limit(per_second=20)
    settings = DeliverySettings(global_rate=18, private_rate=50, group_per_minute=600)
    async with worker(tg, store, clock, settings) as (outbox, _):
        assert await outbox.drain() == 25
    assert tg.throttled == 0
    assert all(len(tg.sent(chat)) == 1 for chat in chats)


# console ----------------------------------------------------------------------------------------
async def test_console_prints_edits() -> None:
    stream = io.StringIO()
    await ConsoleNotifier(stream).deliver("console", Edit(3, "✅ <b>Funding</b> resolved"))
    assert stream.getvalue() == "── edited 3 in console ──\n✅ Funding resolved\n"


class StoreOutage:
    """The real store, except that handing claims back fails once: the database went away."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.failed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def release_claims(self, worker: str) -> int:
        if not self.failed:
            self.failed = True
            raise ConnectionRefusedError("the store is down")
        return await self._store.release_claims(worker)


async def test_rows_a_failed_drain_could_not_hand_back_go_out_on_the_next_drain(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    await enqueue(store, clock, "etf", ("42", "etf inflows"), ("43", "etf inflows"))
    outage = StoreOutage(store)
    async with worker(tg, outage, clock, crash_on="etf") as (outbox, notifier):  # type: ignore[arg-type]
        with pytest.raises(ExceptionGroup):
            await outbox.drain()
        assert outage.failed and await pending_outbox(store) == 2
        notifier.crash_on = None
        assert await outbox.drain() == 2  # not left claimed until the claim expires
    assert await pending_outbox(store) == 0
    assert {str(m.chat_id) for m in tg.sent()} == {"42", "43"}
