"""Replay history through the rules and the lifecycle on a simulated clock (design §2.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from bot.alerts.evaluate import run_series_rule, timing
from bot.alerts.lifecycle import Change, advance
from bot.alerts.pipeline import message_for
from bot.engine.conditions import Evaluated
from bot.engine.rules import AnyRule, CompositeRule
from bot.engine.ruleset import RuleSet
from bot.engine.series import Series
from bot.model import AlertState, AlertStatus, TransitionKind, from_epoch, to_epoch

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Event:
    """One firing or resolution found by the replay, as `backtest --json` prints it."""

    rule: str
    state: str
    at: datetime
    value: float | None
    message: str

    def as_json(self) -> dict[str, object]:
        """The §2.1 shape."""
        return {
            "rule": self.rule,
            "state": self.state,
            "at": self.at.isoformat(),
            "value": self.value,
            "message": self.message,
        }


def _composite_points(
    rule: CompositeRule, members: Mapping[str, list[Change]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Breakpoints where a composite can change, and whether it holds at each."""
    within = int(rule.within.total_seconds()) if rule.within else 0
    moments: set[int] = set()
    for changes in members.values():
        for c in changes:
            t = to_epoch(c.at)
            moments.add(t)
            if c.kind is TransitionKind.FIRING and within:
                moments.add(t + within + 1)
            if c.kind is TransitionKind.RESOLVED and within and c.fired_at:
                moments.add(max(t, to_epoch(c.fired_at) + within + 1))
    ts = np.array(sorted(moments), dtype=np.int64)
    counts = np.zeros(ts.size)
    flags = np.ones(ts.size, dtype=bool) if rule.all is not None else np.zeros(ts.size, dtype=bool)
    for member in rule.members:
        holds = _member_holds(members.get(member, []), ts, within)
        counts += holds
        flags = flags & holds if rule.all is not None else flags | holds
    return ts, counts, flags


def _member_holds(changes: list[Change], ts: np.ndarray, within: int) -> np.ndarray:
    """Per breakpoint: the member is firing, or fired within the window."""
    out = np.zeros(ts.size, dtype=bool)
    firing_since: int | None = None
    for c in [*changes, None]:
        if c is None or c.kind is TransitionKind.RESOLVED:
            if firing_since is not None:
                end = to_epoch(c.at) if c else int(ts[-1]) + 1 if ts.size else 0
                end = max(end, firing_since + within + 1) if within else end
                out |= (ts >= firing_since) & (ts < end)
                firing_since = None
        else:
            firing_since = to_epoch(c.at)
    return out


def replay(
    rules: RuleSet,
    data: Mapping[str, Series],
    end: datetime,
    start: datetime | None = None,
    progress: Progress | None = None,
) -> list[Event]:
    """Run every rule over all its history; report events from `start` on, in time order."""
    found: list[tuple[AnyRule, Change, Evaluated | None]] = []
    by_rule: dict[str, list[Change]] = {}
    empty = Series.of([], [])
    for rule in rules.series_rules():
        if progress:
            progress(rule.id)
        _, changes, ev = run_series_rule(rule, None, data.get(rule.series, empty), end)
        by_rule[rule.id] = changes
        found.extend((rule, c, ev) for c in changes)
    for composite in rules.composites():
        if progress:
            progress(composite.id)
        ts, counts, flags = _composite_points(composite, by_rule)
        kept = ts <= to_epoch(end)
        ts, counts, flags = ts[kept], counts[kept], flags[kept]
        state = AlertState(composite.id, AlertStatus.INACTIVE, fingerprint=composite.fingerprint)
        _, changes = advance(timing(composite), state, ts, counts, flags, ~flags)
        by_rule[composite.id] = changes
        found.extend((composite, c, None) for c in changes)
    events = [
        Event(rule.id, c.kind.value, c.at, c.value, message_for(rule, c, ev))
        for rule, c, ev in found
        if start is None or c.at >= start
    ]
    return sorted(events, key=lambda e: (e.at, e.rule))


def simulated_end(data: Mapping[str, Series], until: datetime | None) -> datetime:
    """The replay's clock stops at `until`, or just after the newest stored point."""
    if until is not None:
        return until
    newest = max((int(s.ts[-1]) for s in data.values() if len(s)), default=0)
    return from_epoch(newest) + timedelta(seconds=1)
