"""Run one rule over its data: the same code for the newest point live and for a backtest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

import numpy as np

from bot.alerts.composite import composite_holds, episodes_from_state, micros
from bot.alerts.lifecycle import (
    Change,
    Timing,
    advance,
    edited,
    is_stale,
    no_data,
    stale_at,
    timing_of,
)
from bot.engine.conditions import Evaluated
from bot.engine.evaluate import evaluate_rule
from bot.engine.rules import AnyRule, CompositeRule, SeriesRule
from bot.engine.series import Series
from bot.model import AlertState, AlertStatus, from_epoch, to_epoch


def timing(rule: AnyRule) -> Timing:
    """The lifecycle numbers of a rule."""
    no = rule.no_data if isinstance(rule, SeriesRule) else None
    calendar = rule.session_calendar if isinstance(rule, SeriesRule) else "continuous"
    return timing_of(
        rule.for_,
        rule.confirm,
        rule.keep_firing_for,
        no.after if no else None,
        no.then if no else "keep",
        calendar,
    )


def start_state(
    rule: AnyRule, prev: AlertState | None, now: datetime
) -> tuple[AlertState, list[Change]]:
    """Keep the state while the rule's fingerprint holds; an edit starts afresh (and resolves)."""
    if prev is not None and prev.fingerprint == rule.fingerprint:
        return prev, []
    fresh = AlertState(rule.id, AlertStatus.INACTIVE, fingerprint=rule.fingerprint)
    if prev is None:
        return fresh, []
    change = edited(prev, now)
    return fresh, [change] if change else []


def run_series_rule(
    rule: SeriesRule, prev: AlertState | None, raw: Series, now: datetime
) -> tuple[AlertState, list[Change], Evaluated]:
    """Evaluate a series rule over its data; only points newer than the state are stepped."""
    state, changes = start_state(rule, prev, now)
    now_s = to_epoch(now)
    ev, resolved = evaluate_rule(rule, raw, now_s)
    ts, values = ev.series.ts, ev.series.values
    first = (
        0 if state.last_ts is None else int(np.searchsorted(ts, to_epoch(state.last_ts), "right"))
    )
    t = timing(rule)
    prev_ts = to_epoch(state.last_ts) if state.last_ts else None
    for lo, hi in _segments(t, ts, first, prev_ts):
        if lo > first or (prev_ts is not None and lo == first and _gap(t, prev_ts, int(ts[lo]))):
            gap_from = int(ts[lo - 1]) if lo > first else prev_ts
            assert gap_from is not None
            state, change = no_data(t, state, from_epoch(stale_at(t, gap_from) or gap_from))
            changes.extend([change] if change else [])
        state, found = advance(
            t, state, ts[lo:hi], values[lo:hi], ev.active[lo:hi], resolved[lo:hi]
        )
        changes.extend(replace(c, index=(c.index or 0) + lo) if lo else c for c in found)
    last = to_epoch(state.last_ts) if state.last_ts else None
    if last is not None and is_stale(t, last, now_s):
        state, change = no_data(t, state, from_epoch(stale_at(t, last) or now_s))
        changes.extend([change] if change else [])
    return state, changes, ev


def _gap(t: Timing, before: int, after: int) -> bool:
    """Whether data went missing between two consecutive points."""
    due = stale_at(t, before)
    return due is not None and after > due


def _segments(t: Timing, ts: np.ndarray, first: int, prev_ts: int | None) -> list[tuple[int, int]]:
    """Split new points where the series went missing, so no_data applies in between."""
    n = int(ts.size)
    if first >= n:
        return []
    if t.no_data_after is None or t.no_data_then == "keep":
        return [(first, n)]
    cuts = [first]
    for i in range(first + 1, n):
        if _gap(t, int(ts[i - 1]), int(ts[i])):
            cuts.append(i)
    return [(a, b) for a, b in zip(cuts, [*cuts[1:], n], strict=True)]


def run_composite_live(
    rule: CompositeRule, prev: AlertState | None, members: Mapping[str, AlertState], now: datetime
) -> tuple[AlertState, list[Change]]:
    """Evaluate a composite at `now` from its members' current states."""
    state, changes = start_state(rule, prev, now)
    if state.last_ts is not None and now <= state.last_ts:
        return state, changes
    at = micros(now)
    episodes = {m: episodes_from_state(members.get(m), at) for m in rule.members}
    counts, flags = composite_holds(rule, episodes, np.array([at], dtype=np.int64))
    ts = np.array([to_epoch(now)], dtype=np.int64)
    state, found = advance(timing(rule), state, ts, counts, flags, ~flags)
    return state, changes + found
