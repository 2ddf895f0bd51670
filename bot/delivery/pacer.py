"""One pacer for everything sent with the bot's token: evenly spaced, per chat, replies first.

Telegram counts every message a bot sends, whatever the code path: about 30 a second overall,
one a second per private chat, 20 a minute per group or channel, more with paid broadcasts.
`Schedule` is the bookkeeping (who may go when, given the time) and does no I/O, so it is tested
with numbers; `Pacer` puts it on the event loop with one timer. Overall slots are granted one at
a time, `1 / rate` apart, so no second holds more than the rate (a token bucket would let a
burst through); a timer that fires a few milliseconds late does not cost a slot (`CATCH_UP`),
and a stuck loop, which may have held a send back, costs one (`STALL`).
Only a chat whose own next slot has come competes for an overall slot, so a chat waiting for its
turn never holds up the others; among those, replies go before broadcasts and each lane is first
come, first served.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.config import DeliverySettings

PRUNE_AT = 1024
"""Forget idle chats once this many are known (and again each time the count doubles)."""
CATCH_UP = 0.005
"""A slot granted at most this late (the event loop's lag) keeps the cadence; a later one, or the
first after a quiet spell, starts it afresh. So n + 1 sends span at least n / rate - CATCH_UP."""
STALL = 0.010
"""The loop stuck longer than this (a full garbage collection, a long callback) may have held back
a send just granted, which then leaves right before the next: the next slot moves an interval
past the stall. Shorter hiccups are left to the margin between the rate and Telegram's limit."""
WATCH = 0.1
"""How long after a grant the pacer keeps watching for stalls when nobody waits: a send normally
leaves within milliseconds of its turn."""


class Lane(enum.IntEnum):
    """Which waiters get an overall slot first; lower goes first."""

    REPLY = 0
    """A person's command reply, keyboard edit or error report: someone is waiting for it."""
    BROADCAST = 1
    """Alerts, resolves, reminders, digests, admin notices: nobody is watching the clock."""


def chat_key(chat: int | str | None) -> str | None:
    """One key per chat, whether its id came as a number or as text."""
    return None if chat is None else str(chat)


def is_private(chat: int | str | None) -> bool:
    """Positive ids are people; negative ids and @usernames are groups and channels."""
    return chat is not None and str(chat).isdigit()


def loop_time() -> float:
    """The running event loop's clock, which its timers follow."""
    return asyncio.get_running_loop().time()


@dataclass(eq=False, slots=True)
class Ticket:
    """One caller waiting for its turn; `granted` is the time it got it."""

    lane: Lane
    seq: int
    chat: str | None
    paid: bool
    granted: float | None = None
    gone: bool = False
    """Granted or given up: any queue entry still naming it is stale."""


@dataclass(slots=True)
class _Chat:
    """A chat's own spacing: its next allowed send and its waiters, best (lane, arrival) first."""

    period: float
    next: float = -math.inf
    waiting: list[tuple[Lane, int, Ticket]] = field(default_factory=list)

    def head(self) -> Ticket | None:
        return self.waiting[0][2] if self.waiting else None


@dataclass(slots=True)
class _Budget:
    """An overall rate: the next slot and the chats' heads that are ready for one."""

    interval: float
    next: float = -math.inf
    ready: list[tuple[Lane, int, int, Ticket]] = field(default_factory=list)


class Schedule:
    """The pacer's bookkeeping without the event loop: who may go when, given the time."""

    def __init__(
        self,
        overall_rate: float,
        private_rate: float = 1.0,
        group_per_minute: float = 20.0,
        *,
        paid_rate: float | None = None,
    ) -> None:
        paid = overall_rate if paid_rate is None else paid_rate
        for name, value in (
            ("overall_rate", overall_rate),
            ("private_rate", private_rate),
            ("group_per_minute", group_per_minute),
            ("paid_rate", paid),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, found {value!r}")
        self.private_period = 1 / private_rate
        self.group_period = 60 / group_per_minute
        self._overall = _Budget(1 / overall_rate)
        self._paid = _Budget(1 / paid_rate) if paid_rate is not None else self._overall
        self._chats: dict[str, _Chat] = {}
        self._timers: list[tuple[float, str]] = []
        """(time, chat): a chat with waiters becomes ready then; entries may be stale."""
        self._seq = itertools.count()
        self._pushes = itertools.count()
        self._prune_at = PRUNE_AT

    @property
    def chats(self) -> int:
        """How many chats are remembered (bounded by pruning)."""
        return len(self._chats)

    def join(self, chat: int | str | None, lane: Lane, paid: bool, now: float) -> Ticket:
        """Queue a caller; `release` says when it may go."""
        ticket = Ticket(Lane(lane), next(self._seq), chat_key(chat), paid)
        if ticket.chat is None:
            self._push_ready(ticket)
            return ticket
        state = self._chat(ticket.chat, now)
        heapq.heappush(state.waiting, (ticket.lane, ticket.seq, ticket))
        if state.head() is ticket:
            self._chat_head_changed(ticket.chat, state, now)
        return ticket

    def leave(self, ticket: Ticket, now: float) -> None:
        """A caller stopped waiting (cancelled); a granted turn stays used."""
        if ticket.gone:
            return
        ticket.gone = True
        state = self._chats.get(ticket.chat) if ticket.chat is not None else None
        if state is None or ticket.chat is None:
            return
        was_head = state.head() is ticket
        state.waiting = [entry for entry in state.waiting if entry[2] is not ticket]
        heapq.heapify(state.waiting)
        if was_head and state.waiting:
            self._chat_head_changed(ticket.chat, state, now)

    def hold(self, seconds: float, chat: int | str | None, now: float) -> None:
        """Telegram answered 429: nothing to `chat` (or nothing at all) for `seconds`."""
        until = now + max(0.0, seconds)
        key = chat_key(chat)
        if key is None:
            for budget in self._budgets():
                budget.next = max(budget.next, until)
            return
        state = self._chat(key, now)
        state.next = max(state.next, until)
        if state.waiting:
            heapq.heappush(self._timers, (state.next, key))

    def stall(self, now: float) -> None:
        """The loop was stuck until `now`: a send granted before may only be leaving now."""
        for budget in self._budgets():
            budget.next = max(budget.next, now + budget.interval)

    def release(self, now: float) -> list[Ticket]:
        """Grant every turn due at `now`: one per budget, more only to catch up a late timer."""
        self._wake_chats(now)
        granted: list[Ticket] = []
        for budget in self._budgets():
            while budget.next <= now and (ticket := self._pop_ready(budget, now)) is not None:
                self._grant(ticket, budget, now)
                granted.append(ticket)
        return granted

    def next_release(self, now: float) -> float | None:
        """When `release` may next grant something; None while nobody waits."""
        moments = [self._timers[0][0]] if self._timers else []
        for budget in self._budgets():
            while budget.ready and not self._valid(budget.ready[0][3], now):
                heapq.heappop(budget.ready)
            if budget.ready:
                moments.append(max(budget.next, now))
        return min(moments, default=None)

    # internals ------------------------------------------------------------------------------
    def _budgets(self) -> tuple[_Budget, ...]:
        return (self._overall,) if self._paid is self._overall else (self._overall, self._paid)

    def _budget(self, ticket: Ticket) -> _Budget:
        return self._paid if ticket.paid else self._overall

    def _chat(self, key: str, now: float) -> _Chat:
        state = self._chats.get(key)
        if state is None:
            if len(self._chats) >= self._prune_at:
                self._prune(now)
            period = self.private_period if is_private(key) else self.group_period
            state = self._chats[key] = _Chat(period)
        return state

    def _prune(self, now: float) -> None:
        """Drop chats nobody waits for whose next slot is past: a new entry would be the same."""
        self._chats = {
            key: state for key, state in self._chats.items() if state.waiting or state.next > now
        }
        self._prune_at = max(PRUNE_AT, 2 * len(self._chats))

    def _chat_head_changed(self, key: str, state: _Chat, now: float) -> None:
        """The chat's best waiter competes now if the chat is ready, else when it will be."""
        head = state.head()
        assert head is not None
        if state.next <= now:
            self._push_ready(head)
        else:
            heapq.heappush(self._timers, (state.next, key))

    def _push_ready(self, ticket: Ticket) -> None:
        entry = (ticket.lane, ticket.seq, next(self._pushes), ticket)
        heapq.heappush(self._budget(ticket).ready, entry)

    def _wake_chats(self, now: float) -> None:
        """Chats whose own slot has come put their best waiter up for an overall slot."""
        while self._timers and self._timers[0][0] <= now:
            _, key = heapq.heappop(self._timers)
            state = self._chats.get(key)
            if state is not None and state.next <= now and (head := state.head()) is not None:
                self._push_ready(head)

    def _valid(self, ticket: Ticket, now: float) -> bool:
        """A ready entry counts if its ticket still waits, heads its chat and the chat is ready."""
        if ticket.gone:
            return False
        if ticket.chat is None:
            return True
        state = self._chats.get(ticket.chat)
        return state is not None and state.head() is ticket and state.next <= now

    def _pop_ready(self, budget: _Budget, now: float) -> Ticket | None:
        while budget.ready:
            ticket = heapq.heappop(budget.ready)[3]
            if self._valid(ticket, now):
                return ticket
        return None

    def _grant(self, ticket: Ticket, budget: _Budget, now: float) -> None:
        ticket.granted, ticket.gone = now, True
        late = now - budget.next
        budget.next = (budget.next if late <= CATCH_UP else now) + budget.interval
        if ticket.chat is None:
            return
        state = self._chats[ticket.chat]
        heapq.heappop(state.waiting)
        state.next = now + state.period
        if state.waiting:
            heapq.heappush(self._timers, (state.next, ticket.chat))


class Pacer:
    """Paces every message sent with the bot's token; one instance per token and event loop."""

    def __init__(
        self,
        overall_rate: float,
        private_rate: float = 1.0,
        group_per_minute: float = 20.0,
        *,
        paid_rate: float | None = None,
        clock: Callable[[], float] = loop_time,
    ) -> None:
        self._schedule = Schedule(overall_rate, private_rate, group_per_minute, paid_rate=paid_rate)
        self._clock = clock
        self._waiting: dict[Ticket, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._granted_at = -math.inf

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> Pacer:
        """The pacer for the configured limits (`[delivery]`)."""
        return cls(
            settings.global_rate,
            settings.private_rate,
            settings.group_per_minute,
            paid_rate=settings.paid_broadcast_rate,
        )

    @property
    def chats(self) -> int:
        """How many chats the pacer remembers (bounded by pruning)."""
        return self._schedule.chats

    async def turn(
        self, chat: int | str | None, lane: Lane = Lane.BROADCAST, *, paid: bool = False
    ) -> None:
        """Wait until the chat's limit and the overall budget allow one more send; replies first."""
        future = asyncio.get_running_loop().create_future()
        ticket = self._schedule.join(chat, lane, paid, self._clock())
        self._waiting[ticket] = future
        self._run()
        try:
            await future
        except asyncio.CancelledError:
            self._waiting.pop(ticket, None)
            self._schedule.leave(ticket, self._clock())
            self._run()
            raise

    def hold(self, seconds: float, chat: int | str | None = None) -> None:
        """Telegram answered 429: pause that chat, or everything (None), for `seconds`."""
        self._schedule.hold(seconds, chat, self._clock())

    def _run(self, late: float = 0.0) -> None:
        """Note a stuck loop (timer `late` or overdue), wake whoever's turn came, set the timer."""
        now = self._clock()
        overdue = now - self._timer_at if self._timer is not None else 0.0
        if max(late, overdue) > STALL:
            self._schedule.stall(now)
            if self._timer is not None:
                self._timer_at = now  # counted; the overdue timer still fires
        for ticket in self._schedule.release(now):
            self._granted_at = now
            future = self._waiting.pop(ticket, None)
            if future is not None and not future.done():
                future.set_result(None)
        wake = self._schedule.next_release(now)
        if wake is None and now - self._granted_at > WATCH:
            return  # nobody waits and nothing was just sent
        # Look in often while callers wait or a send may be leaving, to notice a stuck loop.
        wake = min(wake if wake is not None else math.inf, now + CATCH_UP)
        if wake >= self._timer_at:
            return  # the timer already fires early enough
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, wake - now), self._on_timer)
        self._timer_at = wake

    def _on_timer(self) -> None:
        late = self._clock() - self._timer_at
        self._timer, self._timer_at = None, math.inf
        self._run(late)
