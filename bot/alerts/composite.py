"""When a composite's members hold: one pure function for the live pass and the backtest.

A member holds at a moment while it fires, or if it fired at most `within` before. Each member is
given as its firing episodes; live builds them from the member's state, a backtest from the
member's changes. Times are whole microseconds since the epoch: the live clock has them, and a
`within` like `1500ms` stays exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from bot.alerts.lifecycle import Change
from bot.engine.rules import CompositeRule
from bot.model import AlertState, AlertStatus, TransitionKind

if TYPE_CHECKING:
    import numpy.typing as npt

Episode = tuple[int, int | None]
"""One firing of a member: when it fired, and when it resolved (None while it still fires)."""

PER_SECOND = 1_000_000
"""Microseconds in a second: epoch seconds (a backtest's breakpoints) times this."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LONGEST = int(np.iinfo(np.int64).max)
"""Longer windows than this (rule files allow ~2 million years) cover every moment anyway."""


def micros(at: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch, exactly."""
    return (at - _EPOCH) // _MICROSECOND


def member_holds(
    episodes: Iterable[Episode], at: npt.NDArray[np.int64], within: int
) -> npt.NDArray[np.bool_]:
    """Per moment: the member fires then, or fired at most `within` before (0: no window)."""
    out = np.zeros(at.size, dtype=bool)
    for fired, resolved in episodes:
        held = np.ones(at.size, dtype=bool) if resolved is None else at < resolved
        if within:
            held |= at - fired <= within
        out |= (at >= fired) & held
    return out


def composite_holds(
    rule: CompositeRule, members: Mapping[str, Sequence[Episode]], at: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per moment: how many members hold (the composite's value), and whether all or any do."""
    within = min(rule.within // _MICROSECOND, _LONGEST) if rule.within else 0
    counts = np.zeros(at.size)
    flags = np.full(at.size, rule.all is not None)
    for member in rule.members:
        holds = member_holds(members.get(member, ()), at, within)
        counts += holds
        flags = flags & holds if rule.all is not None else flags | holds
    return counts, flags


def episodes_from_changes(changes: Iterable[Change]) -> list[Episode]:
    """A member's firings in a replay: each firing change up to the resolve after it."""
    out: list[Episode] = []
    fired: int | None = None
    for change in changes:
        if change.kind is TransitionKind.FIRING:
            fired = micros(change.at)
        elif change.kind is TransitionKind.RESOLVED and fired is not None:
            out.append((fired, micros(change.at)))
            fired = None
    if fired is not None:
        out.append((fired, None))
    return out


def episodes_from_state(state: AlertState | None, now: int) -> list[Episode]:
    """A member's last firing as its live state tells it: still firing, or over by `now`.

    A point may be stamped a little ahead of our clock (`bot.keys.FUTURE_SLACK`), so a firing
    the state reports by `now` starts at `now` at the latest.
    """
    if state is None:
        return []
    if state.status is AlertStatus.FIRING:
        fired = state.last_fired_at or state.since
        return [(now if fired is None else min(micros(fired), now), None)]
    if state.last_fired_at is None:
        return []
    return [(min(micros(state.last_fired_at), now), now)]
