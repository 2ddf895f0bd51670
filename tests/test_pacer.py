"""The pacer: its bookkeeping on numbers (an injected clock), then its ordering on the real loop."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from typing import TypeAlias

import pytest

from bot.config import DeliverySettings
from bot.delivery.pacer import CATCH_UP, PRUNE_AT, Lane, Pacer, Schedule, Ticket, is_private

REPLY, BROADCAST = Lane.REPLY, Lane.BROADCAST
Event: TypeAlias = Callable[[float], object]


def drain(schedule: Schedule, start: float = 0.0) -> list[tuple[float, Ticket]]:
    """Run the schedule as the event loop would: release, then sleep until the next release."""
    now: float | None = start
    granted: list[tuple[float, Ticket]] = []
    while now is not None:
        granted += [(now, ticket) for ticket in schedule.release(now)]
        now = schedule.next_release(now)
    return granted


def times(granted: list[tuple[float, Ticket]]) -> list[float]:
    return [round(at, 6) for at, _ in granted]


def order(granted: list[tuple[float, Ticket]]) -> list[str | None]:
    return [ticket.chat for _, ticket in granted]


def busiest_second(moments: list[float], window: float = 1.0) -> int:
    """The most moments in any half-open window of `window` seconds."""
    moments = sorted(moments)
    return max(
        sum(1 for later in moments[i:] if later < first + window - 1e-9)
        for i, first in enumerate(moments)
    )


# the schedule on numbers ------------------------------------------------------------------------
def test_overall_slots_are_evenly_spaced_not_a_burst() -> None:
    schedule = Schedule(10)
    for chat in range(1, 31):
        schedule.join(chat, BROADCAST, False, 0.0)
    granted = drain(schedule)
    assert times(granted) == [round(k / 10, 6) for k in range(30)]
    assert busiest_second(times(granted)) == 10


def test_a_slightly_late_release_keeps_the_cadence_a_very_late_one_restarts_it() -> None:
    schedule = Schedule(10)
    for chat in range(1, 5):
        schedule.join(chat, BROADCAST, False, 0.0)
    moments = [0.0, 0.1 + CATCH_UP / 2, 0.2, 0.3 + CATCH_UP * 2]
    for at in moments:
        assert len(schedule.release(at)) == 1
    assert schedule.next_release(moments[-1]) is None
    schedule.join(5, BROADCAST, False, moments[-1])
    assert schedule.next_release(moments[-1]) == pytest.approx(moments[-1] + 0.1)


def test_a_fast_budget_catches_up_a_late_timer_within_the_allowance() -> None:
    schedule = Schedule(30, paid_rate=1000)
    for chat in range(1, 21):
        schedule.join(chat, BROADCAST, True, 0.0)
    assert len(schedule.release(0.0)) == 1
    assert len(schedule.release(0.0045)) == 4  # slots 1, 2, 3 and 4 ms were due
    assert len(schedule.release(0.02)) == 1  # 15 ms late: the cadence starts afresh


def test_after_a_stall_every_budget_waits_an_interval_past_it() -> None:
    schedule = Schedule(10, paid_rate=100)
    for chat, paid in ((1, False), (2, False), (3, True), (4, True)):
        schedule.join(chat, BROADCAST, paid, 0.0)
    assert order([(0.0, t) for t in schedule.release(0.0)]) == ["1", "3"]
    schedule.stall(0.05)
    assert times(drain(schedule, 0.05)) == [0.06, 0.15]


def test_a_caller_after_a_quiet_spell_goes_at_once_and_the_next_one_interval_later() -> None:
    schedule = Schedule(10)
    schedule.join(1, BROADCAST, False, 0.0)
    assert [t.chat for t in schedule.release(0.0)] == ["1"]
    schedule.join(2, BROADCAST, False, 5.0)
    schedule.join(3, BROADCAST, False, 5.0)
    assert times(drain(schedule, 5.0)) == [5.0, 5.1]


def test_waiting_replies_go_before_waiting_broadcasts_and_each_lane_in_arrival_order() -> None:
    schedule = Schedule(10)
    for chat in (1, 2, 3):
        schedule.join(chat, BROADCAST, False, 0.0)
    schedule.join(4, REPLY, False, 0.0)
    schedule.join(5, REPLY, False, 0.0)
    assert order(drain(schedule)) == ["4", "5", "1", "2", "3"]


def test_a_reply_during_a_fan_out_gets_the_next_slot() -> None:
    schedule = Schedule(30)
    for chat in range(1, 3001):
        schedule.join(chat, BROADCAST, False, 0.0)
    now = 0.0
    for _ in range(100):  # a few seconds into the fan-out
        schedule.release(now)
        now = schedule.next_release(now) or now
    asked = now
    reply = schedule.join(99_999, REPLY, False, asked)
    while reply.granted is None:
        schedule.release(now)
        now = schedule.next_release(now) or now
    assert reply.granted - asked <= 1 / 30 + 1e-9


def test_a_private_chat_gets_one_message_a_second_and_others_go_meanwhile() -> None:
    schedule = Schedule(10)
    for _ in range(3):
        schedule.join(42, BROADCAST, False, 0.0)
    for chat in (7, 8, 9):
        schedule.join(chat, BROADCAST, False, 0.0)
    granted = drain(schedule)
    assert [(at, chat) for at, chat in zip(times(granted), order(granted), strict=True)] == [
        (0.0, "42"),
        (0.1, "7"),
        (0.2, "8"),
        (0.3, "9"),
        (1.0, "42"),
        (2.0, "42"),
    ]


@pytest.mark.parametrize("group", [-500, -1001234567890, "@stablewatch_alerts"])
def test_groups_and_channels_get_their_per_minute_pace(group: int | str) -> None:
    schedule = Schedule(30, group_per_minute=20)
    for _ in range(3):
        schedule.join(group, BROADCAST, False, 0.0)
    assert times(drain(schedule)) == [0.0, 3.0, 6.0]
    assert not is_private(group)


def test_a_chat_is_the_same_chat_as_a_number_or_as_text() -> None:
    schedule = Schedule(30)
    schedule.join(42, BROADCAST, False, 0.0)
    schedule.join("42", BROADCAST, False, 0.0)
    assert times(drain(schedule)) == [0.0, 1.0]
    assert schedule.chats == 1


def test_a_reply_overtakes_its_own_chats_waiting_broadcast() -> None:
    schedule = Schedule(30)
    schedule.join(42, BROADCAST, False, 0.0)
    schedule.release(0.0)  # one went; the chat is busy for a second
    late = schedule.join(42, BROADCAST, False, 0.1)
    reply = schedule.join(42, REPLY, False, 0.2)
    drain(schedule, 0.2)
    assert (reply.granted, late.granted) == (1.0, 2.0)


def test_holding_a_chat_delays_that_chat_only_and_holds_only_extend() -> None:
    schedule = Schedule(10)
    schedule.hold(5, -500, 0.0)
    schedule.hold(2, -500, 0.0)  # shorter: ignored
    held = schedule.join(-500, BROADCAST, False, 0.0)
    other = schedule.join(7, BROADCAST, False, 0.0)
    drain(schedule)
    assert (other.granted, held.granted) == (0.0, 5.0)


def test_holding_a_waiting_chat_takes_it_out_of_the_queue_until_then() -> None:
    schedule = Schedule(10)
    first = schedule.join(-500, BROADCAST, False, 0.0)
    second = schedule.join(7, BROADCAST, False, 0.0)
    schedule.hold(4, -500, 0.0)
    drain(schedule)
    assert (second.granted, first.granted) == (0.0, 4.0)


def test_holding_everything_delays_every_slot() -> None:
    schedule = Schedule(10)
    schedule.hold(3, None, 0.0)
    schedule.hold(1, None, 0.0)
    for chat in (1, 2):
        schedule.join(chat, REPLY, False, 0.0)
    schedule.join(None, BROADCAST, False, 0.0)
    assert times(drain(schedule)) == [3.0, 3.1, 3.2]


def test_paid_broadcasts_use_their_own_budget_but_keep_per_chat_limits() -> None:
    schedule = Schedule(1, paid_rate=100)
    for chat in range(1, 11):
        schedule.join(chat, BROADCAST, True, 0.0)
    schedule.join(42, BROADCAST, False, 0.0)
    schedule.join(42, BROADCAST, True, 0.0)
    granted = drain(schedule)
    paid = [at for at, ticket in granted if ticket.paid and ticket.chat != "42"]
    assert paid == pytest.approx([k / 100 for k in range(10)])
    assert [at for at, ticket in granted if ticket.chat == "42"] == [0.0, 1.0]


def test_without_a_paid_rate_paid_sends_share_the_overall_budget() -> None:
    schedule = Schedule(10)
    for chat in (1, 2, 3):
        schedule.join(chat, BROADCAST, True, 0.0)
    assert times(drain(schedule)) == [0.0, 0.1, 0.2]


def test_a_caller_who_leaves_is_never_granted_and_frees_its_place() -> None:
    schedule = Schedule(10)
    gone = schedule.join(42, BROADCAST, False, 0.0)
    behind = schedule.join(42, BROADCAST, False, 0.0)
    other = schedule.join(7, BROADCAST, False, 0.0)
    schedule.leave(gone, 0.0)
    drain(schedule)
    assert gone.granted is None
    assert (behind.granted, other.granted) == (0.0, 0.1)


def test_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="overall_rate"):
        Schedule(0)
    with pytest.raises(ValueError, match="paid_rate"):
        Schedule(30, paid_rate=0)


def test_memory_stays_bounded_with_many_chats() -> None:
    schedule = Schedule(1000, private_rate=1)
    now, most = 0.0, 0
    for chat in range(1, 20_001):
        schedule.join(chat, BROADCAST, False, now)
        schedule.release(now)
        now += 0.0011
        most = max(most, schedule.chats)
    assert most <= 2 * PRUNE_AT


def simulate(schedule: Schedule, events: list[tuple[float, Event]]) -> list[tuple[float, Ticket]]:
    """Apply events in time order, releasing whatever falls due in between, then drain."""
    now, granted = 0.0, []
    for at, event in sorted(events, key=lambda item: item[0]):
        while (wake := schedule.next_release(now)) is not None and wake <= at:
            now = wake
            granted += [(now, ticket) for ticket in schedule.release(now)]
        now = at
        event(now)
        granted += [(now, ticket) for ticket in schedule.release(now)]
    return granted + drain(schedule, now)


def test_random_traffic_never_breaks_a_limit() -> None:
    rng = random.Random(7)
    schedule = Schedule(29.4, private_rate=1, group_per_minute=20)
    chats: list[int | str] = [*range(1, 40), *range(-60, -50), "@news"]
    holds: list[tuple[float, float, int | str | None]] = []

    def join(chat: int | str, lane: Lane) -> Event:
        return lambda now: schedule.join(chat, lane, False, now)

    def hold(seconds: float, chat: int | str | None) -> Event:
        def apply(now: float) -> None:
            holds.append((now, now + seconds, chat))
            schedule.hold(seconds, chat, now)

        return apply

    events = [
        (rng.uniform(0, 10), join(rng.choice(chats), rng.choice([REPLY, BROADCAST])))
        for _ in range(600)
    ]
    events += [(rng.uniform(0, 10), hold(rng.uniform(0, 3), None))]
    events += [(rng.uniform(0, 10), hold(rng.uniform(0, 3), rng.choice(chats))) for _ in range(9)]
    granted = simulate(schedule, events)
    assert len(granted) == 600
    assert busiest_second([at for at, _ in granted]) <= 30
    per_chat: dict[str | None, list[float]] = {}
    for at, ticket in granted:
        per_chat.setdefault(ticket.chat, []).append(at)
    for chat, moments in per_chat.items():
        gap = 1.0 if is_private(chat) else 3.0
        assert all(b - a >= gap - 1e-9 for a, b in itertools.pairwise(moments))
    for start, end, held in holds:
        assert not any(
            start < at < end for at, ticket in granted if held is None or ticket.chat == str(held)
        )


# the pacer on the event loop --------------------------------------------------------------------
class Readings:
    """The pacer's clock (the loop's), read by the callers right after their turn."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float]] = []

    def __call__(self) -> float:
        return asyncio.get_running_loop().time()

    def note(self, name: str) -> None:
        self.log.append((name, self()))

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def gaps(self, keep: Callable[[str], bool] = lambda _: True) -> list[float]:
        moments = [at for name, at in self.log if keep(name)]
        return [b - a for a, b in itertools.pairwise(moments)]


LATE = 0.005
"""How much later one caller may notice its turn than the next: the loop's wake-up jitter."""


async def test_callers_are_released_one_interval_apart_replies_first() -> None:
    clock = Readings()
    pacer = Pacer(20, private_rate=100, clock=clock)

    async def send(name: str, chat: int, lane: Lane) -> None:
        await pacer.turn(chat, lane)
        clock.note(name)

    async with asyncio.TaskGroup() as group:
        for n in range(1, 5):
            group.create_task(send(f"b{n}", n, BROADCAST))
        await asyncio.sleep(0)  # the broadcasts queue first (b1 goes at once)
        group.create_task(send("r1", 10, REPLY))
        group.create_task(send("r2", 11, REPLY))
    assert clock.names() == ["b1", "r1", "r2", "b2", "b3", "b4"]
    assert all(gap >= 1 / 20 - LATE for gap in clock.gaps())


async def test_a_chat_waiting_for_its_own_slot_does_not_hold_up_others() -> None:
    clock = Readings()
    pacer = Pacer(50, private_rate=5, clock=clock)

    async def send(name: str, chat: int) -> None:
        await pacer.turn(chat, REPLY)
        clock.note(name)

    async with asyncio.TaskGroup() as group:
        for n in range(3):
            group.create_task(send(f"a{n}", 42))
        for n in range(3):
            group.create_task(send(f"o{n}", 100 + n))
    assert clock.names() == ["a0", "o0", "o1", "o2", "a1", "a2"]
    assert all(gap >= 1 / 5 - LATE for gap in clock.gaps(lambda name: name.startswith("a")))


async def test_a_hold_on_everything_pauses_waiting_callers() -> None:
    clock = Readings()
    pacer = Pacer(100, private_rate=100, clock=clock)
    start = clock()
    pacer.hold(0.2)
    await pacer.turn(42, REPLY)
    assert clock() - start >= 0.2


async def test_a_hold_on_one_group_lets_the_others_through() -> None:
    clock = Readings()
    pacer = Pacer(100, group_per_minute=6000, clock=clock)
    pacer.hold(0.2, -500)

    async def send(name: str, chat: int) -> None:
        await pacer.turn(chat)
        clock.note(name)

    start = clock()
    async with asyncio.TaskGroup() as group:
        group.create_task(send("held", -500))
        group.create_task(send("free", -600))
    assert clock.names() == ["free", "held"]
    assert clock.log[1][1] - start >= 0.2


async def test_a_stuck_loop_after_a_grant_pushes_the_next_turn_past_it() -> None:
    """The caller just granted is held up (say, by a full garbage collection) and sends late:
    the next caller waits a whole interval after that, not merely after the grant."""
    clock = Readings()
    pacer = Pacer(20, private_rate=100, clock=clock)

    async def send(name: str, chat: int, stuck: float = 0.0) -> None:
        await pacer.turn(chat)
        time.sleep(stuck)  # noqa: ASYNC251 -- blocks the loop, as a long collection would
        clock.note(name)

    async with asyncio.TaskGroup() as group:
        group.create_task(send("first", 1))
        group.create_task(send("stuck", 2, stuck=0.04))
        group.create_task(send("next", 3))
    assert clock.names() == ["first", "stuck", "next"]
    assert clock.gaps()[1] >= 1 / 20 - LATE


async def test_a_stuck_loop_right_after_a_send_delays_the_next_caller_too() -> None:
    """Nobody waits while the loop is stuck (replies come one update at a time), yet the send
    just granted may have left only at the end: the next one keeps an interval from there."""
    clock = Readings()
    pacer = Pacer(20, private_rate=100, clock=clock)
    await pacer.turn(1)
    time.sleep(0.04)  # noqa: ASYNC251 -- the loop is stuck right after the grant
    clock.note("stuck")
    await pacer.turn(2)
    clock.note("next")
    assert clock.gaps()[0] >= 1 / 20 - LATE


async def test_a_cancelled_caller_gives_its_place_to_the_next() -> None:
    clock = Readings()
    pacer = Pacer(10, private_rate=100, clock=clock)
    await pacer.turn(1)
    clock.note("first")
    waiting = asyncio.create_task(pacer.turn(2))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await pacer.turn(3)
    clock.note("next")
    assert clock.gaps() == [pytest.approx(0.1, abs=0.05)]  # slot 1, not slot 2


async def test_from_settings_takes_the_delivery_limits() -> None:
    clock = Readings()
    pacer = Pacer.from_settings(DeliverySettings(global_rate=200, private_rate=20))
    for _ in range(3):
        await pacer.turn(42, REPLY)
        clock.note("42")
    assert all(gap >= 1 / 20 - LATE for gap in clock.gaps())
