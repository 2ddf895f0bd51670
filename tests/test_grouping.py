"""Leading-edge grouping: a chat's first alert leaves at once, those close behind it together."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.alerts.pipeline import evaluate_series
from bot.alerts.policy import due_at
from bot.config import DeliverySettings
from bot.delivery.console import ConsoleNotifier
from bot.delivery.outbox import OutboxWorker
from bot.engine.loader import load_rules
from bot.engine.ruleset import RuleSet
from bot.model import ChatKind, Observation
from bot.store import Store
from tests.harness.clock import SteppingClock
from tests.harness.store_backends import make_sqlite_store

WINDOW = timedelta(seconds=30)
SECOND = timedelta(seconds=1)
RULES = ("one", "two", "three", "four", "five")
FAST = DeliverySettings(global_rate=200, private_rate=100, group_per_minute=600)
"""Pacing loose enough that no test waits on it."""


# the policy -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("newest", "due"),
    [
        (None, 0),  # nothing sent yet: the leading edge
        (-10, 20),  # a message left 10 s ago: the end of its window
        (0, 30),  # one left this very second
        (-30, 0),  # its window has just ended
        (-31, 0),
        (20, 20),  # one is waiting for its window's end: join it
    ],
)
def test_due_at(clock: SteppingClock, newest: int | None, due: int) -> None:
    now = clock()
    last = None if newest is None else now + newest * SECOND
    assert due_at(now, last, WINDOW) == now + due * SECOND


@pytest.mark.parametrize("newest", [None, -10, 0, 20])
def test_a_zero_window_is_always_at_once(clock: SteppingClock, newest: int | None) -> None:
    now = clock()
    last = None if newest is None else now + newest * SECOND
    assert due_at(now, last, timedelta(0)) == now


# through the pipeline and the outbox worker -----------------------------------------------------
class Bot:
    """Evaluation and the outbox worker on one store, printing to a console, on a stepped clock."""

    def __init__(
        self, store: Store, rules: RuleSet, clock: SteppingClock, window: timedelta
    ) -> None:
        self.store, self.rules, self.clock = store, rules, clock
        self.start = clock()
        self.delivery = DeliverySettings(grouping_window=window)
        self.console = io.StringIO()
        self.worker = OutboxWorker(store, ConsoleNotifier(self.console), clock, "w", FAST)
        self._read = 0

    async def fire(self, seconds: int, *rules: str) -> None:
        """At start + seconds, each rule's series drops below zero; evaluate as a poll would."""
        await self._post(seconds, -1.0, rules)

    async def clear(self, seconds: int, *rules: str) -> None:
        """At start + seconds, each rule's series is back above zero: the alerts resolve."""
        await self._post(seconds, 1.0, rules)

    async def _post(self, seconds: int, value: float, rules: tuple[str, ...]) -> None:
        now = self.clock.now = self.start + seconds * SECOND
        await self.store.upsert_observations([Observation(rule, now, value) for rule in rules])
        outcome = await evaluate_series(self.store, self.rules, rules, now, delivery=self.delivery)
        assert outcome.enqueued >= 1

    async def drain(self, seconds: int) -> list[tuple[str, list[str]]]:
        """At start + seconds, drain the outbox; the new messages as (chat, rules in it)."""
        self.clock.now = self.start + seconds * SECOND
        await self.worker.drain()
        text = self.console.getvalue()
        fresh, self._read = text[self._read :], len(text)
        messages = re.findall(r"── to (\S+) ──\n(.*?)\n(?=── |\Z)", fresh, re.S)
        # a rule shows as "<id> fired", or (no resolved_message) as "Resolved: <id>"
        return [
            (chat, [r for r in RULES if f"{r} fired" in body or f"Resolved: {r}" in body])
            for chat, body in messages
        ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await make_sqlite_store(tmp_path)
    await opened.subscribe(1, ChatKind.PRIVATE, "", datetime(2025, 1, 1, tzinfo=UTC))
    yield opened
    await opened.close()


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "r.yaml").write_text(
        "rules:\n"
        + "".join(
            f"  - {{id: {r}, series: {r}, condition: {{below: 0}}, message: '{{{{ id }}}} fired'}}\n"
            for r in RULES
        )
    )
    return load_rules(folder)


@pytest.fixture
def bot(store: Store, rules: RuleSet, clock: SteppingClock) -> Bot:
    return Bot(store, rules, clock, WINDOW)


async def test_a_lone_alert_leaves_at_once(bot: Bot) -> None:
    await bot.fire(0, "one")
    assert await bot.drain(0) == [("1", ["one"])]


async def test_alerts_inside_the_window_leave_together_when_it_ends(bot: Bot) -> None:
    await bot.fire(0, "one")
    assert await bot.drain(0) == [("1", ["one"])]
    await bot.fire(10, "two")
    assert await bot.drain(10) == []
    await bot.fire(25, "three")
    assert await bot.drain(29) == []
    assert await bot.drain(30) == [("1", ["two", "three"])]
    await bot.fire(45, "four")  # inside the window the merged message opened
    assert await bot.drain(59) == []
    assert await bot.drain(60) == [("1", ["four"])]


async def test_an_alert_after_the_window_leaves_at_once(bot: Bot) -> None:
    await bot.fire(0, "one")
    assert await bot.drain(0) == [("1", ["one"])]
    await bot.fire(30, "two")
    assert await bot.drain(30) == [("1", ["two"])]
    await bot.fire(100, "three")
    assert await bot.drain(100) == [("1", ["three"])]


async def test_one_chats_window_does_not_hold_another_chat(bot: Bot, store: Store) -> None:
    await store.subscribe(2, ChatKind.PRIVATE, "", bot.start)
    await store.set_filter("2", ["two"])
    await bot.fire(0, "one")
    assert await bot.drain(0) == [("1", ["one"])]
    await bot.fire(10, "two")
    assert await bot.drain(10) == [("2", ["two"])]  # chat 1 is inside its window, chat 2 is not
    assert await bot.drain(30) == [("1", ["two"])]


async def test_a_resolve_opens_no_window(bot: Bot) -> None:
    """A resolve edits the message it resolves (where the chat has one): it notifies nobody."""
    await bot.fire(0, "one")
    assert await bot.drain(0) == [("1", ["one"])]
    await bot.clear(40, "one")
    assert await bot.drain(40) == [("1", ["one"])]  # the console has no message to edit
    await bot.fire(45, "two")
    assert await bot.drain(45) == [("1", ["two"])]


async def test_alerts_of_one_evaluation_leave_as_one_message(bot: Bot) -> None:
    await bot.fire(0, "one", "two")
    assert await bot.drain(0) == [("1", ["one", "two"])]


async def test_a_zero_window_sends_every_alert_at_once(
    store: Store, rules: RuleSet, clock: SteppingClock
) -> None:
    bot = Bot(store, rules, clock, timedelta(0))
    for second, rule in enumerate(RULES[:3]):
        await bot.fire(second, rule)
        assert await bot.drain(second) == [("1", [rule])]
