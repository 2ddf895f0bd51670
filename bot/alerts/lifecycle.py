"""The lifecycle as a pure step function over points: pending, firing, keep_firing_for, recover,
no_data, resolved with a reason (docs/architecture.md, "Alert lifecycle"). It jumps between
condition changes with binary searches, so a backtest costs time per transition, not per point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np

from bot.engine.calendar import DAY, CalendarName, holidays_for, sessions_between, to_days
from bot.model import AlertState, AlertStatus, TransitionKind, from_epoch, to_epoch

if TYPE_CHECKING:
    import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Timing:
    """The lifecycle fields of a rule, in plain numbers."""

    hold: int | None = None
    confirm: int | None = None
    keep_firing_for: int | None = None
    no_data_after: int | None = None
    no_data_then: Literal["keep", "ok", "alert"] = "keep"
    calendar: CalendarName = "continuous"


@dataclass(frozen=True, slots=True)
class Change:
    """A state change: at a point (`index`) or at a moment with no point (no data, rule edited)."""

    kind: TransitionKind
    at: datetime
    value: float | None
    fired_at: datetime | None
    reason: str = ""
    index: int | None = None


def _next(indices: npt.NDArray[np.intp], i: int, n: int) -> int:
    """The first index in a sorted array that is ≥ i, or n."""
    k = int(indices.searchsorted(i))
    return int(indices[k]) if k < indices.size else n


class _Walk:
    """Mutable cursor over one batch of points; only `advance` uses it.

    It keeps the state's changing fields as plain attributes and builds the AlertState once at
    the end: a backtest steps through thousands of transitions per rule.
    """

    def __init__(
        self,
        timing: Timing,
        state: AlertState,
        ts: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        active: npt.NDArray[np.bool_],
        resolved: npt.NDArray[np.bool_],
    ) -> None:
        self.t, self.initial, self.ts, self.values = timing, state, ts, values
        self.status, self.since, self.pending_count = state.status, state.since, state.pending_count
        self.cleared_at, self.last_fired_at = state.cleared_at, state.last_fired_at
        self.on, self.off = np.flatnonzero(active), np.flatnonzero(~active)
        self.res, self.unres = np.flatnonzero(resolved), np.flatnonzero(~resolved)
        self.changes: list[Change] = []

    def state(self, value: float, last_ts: datetime) -> AlertState:
        """The state after the walk."""
        return replace(
            self.initial,
            status=self.status,
            since=self.since,
            pending_count=self.pending_count,
            cleared_at=self.cleared_at,
            last_fired_at=self.last_fired_at,
            value=value,
            last_ts=last_ts,
        )

    def fire(self, k: int, reason: str = "") -> None:
        at = from_epoch(int(self.ts[k]))
        self.status, self.since, self.pending_count = AlertStatus.FIRING, at, 0
        self.cleared_at, self.last_fired_at = None, at
        self.changes.append(Change(TransitionKind.FIRING, at, float(self.values[k]), at, reason, k))

    def resolve(self, k: int, reason: str) -> None:
        at = from_epoch(int(self.ts[k]))
        fired = self.since
        self.status, self.since = AlertStatus.INACTIVE, at
        self.pending_count, self.cleared_at = 0, None
        self.changes.append(
            Change(TransitionKind.RESOLVED, at, float(self.values[k]), fired, reason, k)
        )

    def inactive(self, i: int, n: int) -> int:
        j = _next(self.on, i, n)
        if j >= n:
            return n
        if self.t.hold is None and self.t.confirm is None:
            self.fire(j)
            return j + 1
        self.status, self.since = AlertStatus.PENDING, from_epoch(int(self.ts[j]))
        self.pending_count = 0
        return j

    def pending(self, i: int, n: int) -> int:
        run_end = _next(self.off, i, n)
        assert self.since is not None
        candidates = []
        if self.t.confirm is not None:
            candidates.append(i + max(self.t.confirm - self.pending_count, 1) - 1)
        if self.t.hold is not None:
            due = to_epoch(self.since) + self.t.hold
            candidates.append(max(i, int(self.ts.searchsorted(due, side="left"))))
        k = min(candidates)
        if k < run_end:
            self.fire(k)
            return k + 1
        if run_end < n:
            self.status, self.pending_count = AlertStatus.INACTIVE, 0
            return run_end
        self.pending_count += n - i
        return n

    def firing(self, i: int, n: int) -> int:
        if self.cleared_at is None:
            r = _next(self.res, i, n)
            if r >= n:
                return n
            if not self.t.keep_firing_for:
                self.resolve(r, "condition cleared")
                return r + 1
            self.cleared_at = from_epoch(int(self.ts[r]))
            i = r
        u = _next(self.unres, i, n)
        assert self.cleared_at is not None
        assert self.t.keep_firing_for
        due = to_epoch(self.cleared_at) + self.t.keep_firing_for
        k = max(i, int(self.ts.searchsorted(due, side="left")))
        if k < min(u, n):
            self.resolve(k, "condition cleared")
            return k + 1
        if u < n:
            self.cleared_at = None
            return u
        return n


def advance(
    timing: Timing,
    state: AlertState,
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    active: npt.NDArray[np.bool_],
    resolved: npt.NDArray[np.bool_],
) -> tuple[AlertState, list[Change]]:
    """Step through points (all newer than `state.last_ts`); return the new state and changes.

    `resolved` is the recover bound where the rule has one, else "condition no longer holds".
    """
    n = int(ts.size)
    if n == 0:
        return state, []
    walk = _Walk(timing, state, ts, values, active, resolved)
    i = 0
    while i < n:
        match walk.status:
            case AlertStatus.INACTIVE:
                i = walk.inactive(i, n)
            case AlertStatus.PENDING:
                i = walk.pending(i, n)
            case _:
                i = walk.firing(i, n)
    return walk.state(float(values[-1]), from_epoch(int(ts[-1]))), walk.changes


def stale_at(timing: Timing, last_ts: int) -> int | None:
    """The moment a series whose newest point is `last_ts` counts as missing (None: never)."""
    if timing.no_data_after is None:
        return None
    if timing.calendar == "continuous":
        return last_ts + timing.no_data_after
    sessions = max(1, -(-timing.no_data_after // DAY))
    day = to_days(np.array([last_ts], dtype=np.int64)) + 1
    nth = np.busday_offset(
        day, sessions - 1, roll="forward", weekmask="1111100", holidays=holidays_for(day)
    )
    return (int(nth.astype(np.int64)[0]) + 1) * DAY  # the day after the Nth silent session


def is_stale(timing: Timing, last_ts: int, now: int) -> bool:
    """Whether no data has come for longer than `no_data.after` (sessions for ETF series)."""
    if timing.no_data_after is None:
        return False
    if timing.calendar == "continuous":
        return now - last_ts > timing.no_data_after
    start = to_days(np.array([last_ts], dtype=np.int64)) + 1
    end = to_days(np.array([now], dtype=np.int64))
    sessions = int(sessions_between(start, end, timing.calendar)[0])
    return sessions >= max(1, -(-timing.no_data_after // DAY))


def no_data(timing: Timing, state: AlertState, at: datetime) -> tuple[AlertState, Change | None]:
    """Apply `no_data.then` once a series has gone missing: keep, resolve (ok), or fire (alert)."""
    if timing.no_data_then == "ok" and state.status is not AlertStatus.INACTIVE:
        was_firing = state.status is AlertStatus.FIRING
        new = replace(
            state, status=AlertStatus.INACTIVE, since=at, pending_count=0, cleared_at=None
        )
        if was_firing:
            return new, Change(TransitionKind.RESOLVED, at, None, state.since, "data missing")
        return new, None
    if timing.no_data_then == "alert" and state.status is not AlertStatus.FIRING:
        new = replace(state, status=AlertStatus.FIRING, since=at, pending_count=0, last_fired_at=at)
        return new, Change(TransitionKind.FIRING, at, None, at, "data missing")
    return state, None


def edited(state: AlertState, at: datetime) -> Change | None:
    """A firing alert whose rule changed what it evaluates resolves with that reason."""
    if state.status is AlertStatus.FIRING:
        return Change(TransitionKind.RESOLVED, at, state.value, state.since, "rule edited")
    return None


def timing_of(
    hold: timedelta | None,
    confirm: int | None,
    keep: timedelta | None,
    after: timedelta | None,
    then: Literal["keep", "ok", "alert"],
    calendar: CalendarName,
) -> Timing:
    """Build a Timing from a rule's fields."""

    def sec(d: timedelta | None) -> int | None:
        return int(d.total_seconds()) if d is not None else None

    return Timing(sec(hold), confirm, sec(keep), sec(after), then, calendar)
