"""Replay history through the rules and the lifecycle on a simulated clock."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

import numpy as np

from bot.alerts.composite import PER_SECOND, composite_holds, episodes_from_changes
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
        """What `backtest --json` prints for it: rule, state, at, value and message."""
        return {
            "rule": self.rule,
            "state": self.state,
            "at": self.at.isoformat(),
            "value": self.value,
            "message": self.message,
        }


def _breakpoints(within: timedelta | None, changes: Mapping[str, list[Change]]) -> np.ndarray:
    """Moments a composite can change: each change of the rules replayed so far, and when a
    `within` runs out after one."""
    window = int(within.total_seconds()) if within else 0
    moments: set[int] = set()
    for found in changes.values():
        for c in found:
            t = to_epoch(c.at)
            moments.add(t)
            if c.kind is TransitionKind.FIRING and window:
                moments.add(t + window + 1)
            if c.kind is TransitionKind.RESOLVED and window and c.fired_at:
                moments.add(max(t, to_epoch(c.fired_at) + window + 1))
    return np.array(sorted(moments), dtype=np.int64)


class NoSuchRule(ValueError):
    """A `--rule` pattern matched no rule: say which ids come closest, not just "0 events"."""


def select(rules: RuleSet, patterns: Sequence[str]) -> tuple[RuleSet, frozenset[str]]:
    """The rules the patterns (fnmatch globs) name, plus the composite members they need to
    be evaluated; and the ids named, whose events alone are reported."""
    ids = [r.id for r in rules.rules]
    named: set[str] = set()
    for pattern in patterns:
        hits = {i for i in ids if fnmatchcase(i, pattern)}
        if not hits:
            closest = difflib.get_close_matches(pattern, ids, n=3, cutoff=0.0)
            raise NoSuchRule(f"--rule {pattern!r} matches no rule; closest: {', '.join(closest)}")
        named |= hits
    needed, todo = set(), list(named)
    while todo:
        rule = rules.get(todo.pop())
        if rule is not None and rule.id not in needed:
            needed.add(rule.id)
            if isinstance(rule, CompositeRule):
                todo.extend(rule.members)
    kept = tuple(r for r in rules.rules if r.id in needed)
    return RuleSet(kept, rules.issues), frozenset(named)


def cut(series: Series, end: datetime) -> Series:
    """The points up to `end`: a backtest `--to` must not see what came after it."""
    keep = int(np.searchsorted(series.ts, to_epoch(end), side="right"))
    return series if keep == len(series) else Series(series.ts[:keep], series.values[:keep])


def replay(
    rules: RuleSet,
    data: Mapping[str, Series],
    end: datetime,
    start: datetime | None = None,
    progress: Progress | None = None,
    only: Collection[str] | None = None,
) -> list[Event]:
    """Run every rule over its history up to `end`; report events from `start` on (of the
    rules in `only`, when given), in time order."""
    found: list[tuple[AnyRule, Change, Evaluated | None]] = []
    by_rule: dict[str, list[Change]] = {}
    empty = Series.of([], [])
    data = {key: cut(series, end) for key, series in data.items()}
    for rule in rules.series_rules():
        if progress:
            progress(rule.id)
        _, changes, ev = run_series_rule(rule, None, data.get(rule.series, empty), end)
        by_rule[rule.id] = changes
        found.extend((rule, c, ev) for c in changes)
    for composite in rules.composites():
        if progress:
            progress(composite.id)
        ts = _breakpoints(composite.within, by_rule)
        ts = ts[ts <= to_epoch(end)]
        members = {m: episodes_from_changes(by_rule.get(m, [])) for m in composite.members}
        counts, flags = composite_holds(composite, members, ts * PER_SECOND)
        state = AlertState(composite.id, AlertStatus.INACTIVE, fingerprint=composite.fingerprint)
        _, changes = advance(timing(composite), state, ts, counts, flags, ~flags)
        by_rule[composite.id] = changes
        found.extend((composite, c, None) for c in changes)
    events = [
        Event(rule.id, c.kind.value, c.at, c.value, message_for(rule, c, ev))
        for rule, c, ev in found
        if (start is None or c.at >= start) and (only is None or rule.id in only) and c.at <= end
    ]
    return sorted(events, key=lambda e: (e.at, e.rule))


def simulated_end(data: Mapping[str, Series], until: datetime | None) -> datetime:
    """The replay's clock stops at `until`, or just after the newest stored point."""
    if until is not None:
        return until
    newest = max((int(s.ts[-1]) for s in data.values() if len(s)), default=0)
    return from_epoch(newest) + timedelta(seconds=1)
