"""Conditions as pure, vectorized functions: a series in, a flag per point and its variables out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.engine import rules as r
from bot.engine.series import Series, range_max, shift_back, window_starts

if TYPE_CHECKING:
    import numpy.typing as npt


@dataclass(frozen=True)
class Evaluated:
    """Per point: whether the condition holds, and the variables its message may use."""

    series: Series
    active: npt.NDArray[np.bool_]
    variables: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)


def compare(op: str, level: float, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Apply one threshold; NaN never holds."""
    with np.errstate(invalid="ignore"):
        match op:
            case "above":
                return np.greater(values, level)
            case "below":
                return np.less(values, level)
            case "at_least":
                return np.greater_equal(values, level)
            case _:
                return np.less_equal(values, level)


def holds(bound: r.Bound, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Whether a bound holds for each value."""
    return compare(bound.op, bound.level, values)


def previous(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each point's predecessor (NaN for the first)."""
    return np.concatenate([[np.nan], values[:-1]]) if values.size else values.copy()


def run_lengths(flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Length of the run of True ending at each point (0 where False)."""
    n = flags.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.arange(n)
    last_false = np.maximum.accumulate(np.where(flags, -1, idx))
    return np.where(flags, idx - last_false, 0).astype(np.int64)


def _threshold(op: str, level: float, s: Series) -> Evaluated:
    return Evaluated(s, compare(op, level, s.values), {"previous": previous(s.values)})


def _streak(spec: r.StreakSpec, s: Series) -> Evaluated:
    flags = holds(spec, s.values)
    run = run_lengths(flags)
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(s.values))])
    idx = np.arange(len(s))
    window_sum = csum[idx + 1] - csum[idx + 1 - run]
    variables = {"streak": run.astype(np.float64), "window_sum": window_sum}
    return Evaluated(s, run >= spec.count, variables | {"previous": previous(s.values)})


def _sign_changes(spec: r.SignChangesSpec, s: Series) -> Evaluated:
    signs = np.sign(s.values)
    changed = np.zeros(len(s), dtype=np.int64)
    if len(s) > 1:
        changed[1:] = (signs[1:] * signs[:-1] < 0).astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(changed)])
    idx = np.arange(len(s))
    first = np.maximum(idx - spec.within + 2, 0)  # pairs whose both points are in the window
    count = csum[idx + 1] - csum[first]
    full = idx >= spec.within - 1
    window_sum = _window_sum(s, spec.within)
    return Evaluated(
        s,
        full & (count >= spec.min),
        {
            "changes": count.astype(np.float64),
            "window_sum": window_sum,
            "previous": previous(s.values),
        },
    )


def _window_sum(s: Series, points: int) -> npt.NDArray[np.float64]:
    csum = np.concatenate([[0.0], np.cumsum(s.values)])
    idx = np.arange(len(s))
    sums: npt.NDArray[np.float64] = csum[idx + 1] - csum[np.maximum(idx + 1 - points, 0)]
    return sums


def _change(spec: r.ChangeSpec, s: Series) -> Evaluated:
    amount, window_span = r.span(spec.window)
    ref = shift_back(s, amount, window_span)
    delta = s.values - ref
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = delta / np.abs(ref)
    size, is_pct = spec.amount
    measure = pct if is_pct else delta
    with np.errstate(invalid="ignore"):
        up, down = measure >= size, measure <= -size
    active = {"up": up, "down": down}.get(spec.direction, up | down)
    return Evaluated(s, active, {"previous": ref, "change": delta, "change_pct": pct})


def _covered(s: Series, amount: int, unit: str) -> npt.NDArray[np.bool_]:
    """Whether the history before each point spans the whole window: "largest in 90 days" needs
    90 days of data, or the first weeks of a backfill would all look like records."""
    if unit == "points":
        return np.arange(len(s)) >= amount
    return s.ts - (s.ts[0] if len(s) else 0) >= amount


def _extreme(spec: r.ExtremeSpec, s: Series, high: bool) -> Evaluated:
    amount, window_span = r.span(spec.within)
    values = s.values if high else -s.values
    starts = window_starts(s.ts, amount, window_span)
    if window_span == "points":
        starts = np.maximum(np.arange(len(s)) - amount, 0)  # the N points before this one
    idx = np.arange(len(s))
    before = range_max(values, starts, idx)
    active = (values > before) & _covered(s, amount, window_span)
    if spec.above is not None:
        active &= compare("above", spec.above, s.values)
    if spec.below is not None:
        active &= compare("below", spec.below, s.values)
    extreme = before if high else -before
    extreme[~np.isfinite(extreme)] = np.nan
    return Evaluated(s, active, {"previous": previous(s.values), "previous_extreme": extreme})


def _longest(spec: r.LongestSpec, s: Series) -> Evaluated:
    flags = holds(spec, s.values)
    run = run_lengths(flags)
    n = len(s)
    idx = np.arange(n)
    ends = np.zeros(n)
    is_end = flags & np.append(~flags[1:], True) if n else flags
    ends[is_end] = run[is_end]
    amount, window_span = r.span(spec.within)
    starts = window_starts(s.ts, amount, window_span)
    run_start = idx - run + 1
    prior = range_max(ends, starts, np.minimum(run_start, idx + 1))
    prior = np.maximum(prior, 0)
    active = flags & (run > prior) & (prior > 0) & _covered(s, amount, window_span)
    return Evaluated(
        s,
        active,
        {"run": run.astype(np.float64), "longest_before": prior, "previous": previous(s.values)},
    )


def _crossing(prev: npt.NDArray[np.float64], s: Series, level: float, up: bool) -> Evaluated:
    active = (prev <= level) & (s.values > level) if up else (prev >= level) & (s.values < level)
    return Evaluated(s, active, {"previous": prev})


def _turns(direction: str, s: Series) -> Evaluated:
    prev = previous(s.values)
    if direction == "positive":
        return Evaluated(s, (prev < 0) & (s.values > 0), {"previous": prev})
    return Evaluated(s, (prev > 0) & (s.values < 0), {"previous": prev})


def _band(low: float, high: float, s: Series, inside: bool) -> Evaluated:
    within = (s.values >= low) & (s.values <= high)
    return Evaluated(
        s,
        within if inside else (s.values < low) | (s.values > high),
        {"previous": previous(s.values)},
    )


_KINDS: dict[type, Callable[[Any, Series], Evaluated]] = {
    r.Above: lambda c, s: _threshold("above", c.above, s),
    r.Below: lambda c, s: _threshold("below", c.below, s),
    r.AtLeast: lambda c, s: _threshold("at_least", c.at_least, s),
    r.AtMost: lambda c, s: _threshold("at_most", c.at_most, s),
    r.Between: lambda c, s: _band(c.between[0], c.between[1], s, inside=True),
    r.Outside: lambda c, s: _band(c.outside[0], c.outside[1], s, inside=False),
    r.CrossesAbove: lambda c, s: _crossing(previous(s.values), s, c.crosses_above, up=True),
    r.CrossesBelow: lambda c, s: _crossing(previous(s.values), s, c.crosses_below, up=False),
    r.Turns: lambda c, s: _turns(c.turns, s),
    r.Streak: lambda c, s: _streak(c.streak, s),
    r.SignChanges: lambda c, s: _sign_changes(c.sign_changes, s),
    r.ChangeCondition: lambda c, s: _change(c.change, s),
    r.NewHigh: lambda c, s: _extreme(c.new_high, s, high=True),
    r.NewLow: lambda c, s: _extreme(c.new_low, s, high=False),
    r.Longest: lambda c, s: _longest(c.longest, s),
}


def evaluate(condition: object, s: Series) -> Evaluated:
    """Evaluate any condition kind over a (transformed) series."""
    return _KINDS[type(condition)](condition, s)
