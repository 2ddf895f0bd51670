"""Series transforms as pure numpy functions over (ts, value) arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from bot.engine.calendar import DAY, CalendarName, period_close, to_days

if TYPE_CHECKING:
    import numpy.typing as npt

How = Literal["sum", "mean", "last", "first", "min", "max", "count"]
COMPLETE_GRACE = 3 * DAY
"""A calendar bucket whose closing session has no point yet closes this long after that session."""


@dataclass(frozen=True, slots=True)
class Series:
    """A series as two aligned arrays: epoch seconds (int64, increasing) and values (float64)."""

    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    @classmethod
    def of(
        cls, ts: list[int] | npt.NDArray[np.int64], values: list[float] | npt.NDArray[np.float64]
    ) -> Series:
        """Build from plain lists (tests, loaders)."""
        return cls(np.asarray(ts, dtype=np.int64), np.asarray(values, dtype=np.float64))

    def __len__(self) -> int:
        return int(self.ts.size)

    def dropna(self) -> Series:
        """Missing points (NaN) are not data: remove them before windows count points."""
        keep = ~np.isnan(self.values)
        return self if bool(keep.all()) else Series(self.ts[keep], self.values[keep])


def _reduce(
    values: npt.NDArray[np.float64], starts: npt.NDArray[np.intp], how: How
) -> npt.NDArray[np.float64]:
    """Reduce contiguous groups beginning at `starts`."""
    ends = np.append(starts[1:], values.size)
    match how:
        case "sum":
            return np.add.reduceat(values, starts)
        case "mean":
            return np.add.reduceat(values, starts) / (ends - starts)
        case "min":
            return np.minimum.reduceat(values, starts)
        case "max":
            return np.maximum.reduceat(values, starts)
        case "first":
            return values[starts]
        case "count":
            return (ends - starts).astype(np.float64)
        case _:
            last: npt.NDArray[np.float64] = values[ends - 1]
            return last


def resample(
    series: Series,
    every: str | int,
    how: How,
    calendar: CalendarName,
    now: int,
) -> Series:
    """Group into days, weeks, months (on the calendar) or fixed durations; drop open buckets.

    Calendar weeks and months are stamped at their last session day. For a daily series (every
    point at 00:00 UTC, like ETF flows) a bucket closes when that session's point is in (or
    COMPLETE_GRACE after it); intraday data closes a day, week or month only once its last day
    has elapsed, since later points of that day may still come. Durations close when elapsed.
    """
    s = series.dropna()
    if len(s) == 0:
        return s
    if isinstance(every, int):
        keys = s.ts // every * every
        closes = keys + every
    elif every == "day":
        keys = s.ts // DAY * DAY
        closes = keys
    else:
        days = to_days(s.ts)
        keys = (
            period_close(days, "week" if every == "week" else "month", calendar).astype(np.int64)
            * DAY
        )
        closes = keys
    starts = np.flatnonzero(np.diff(keys, prepend=keys[0] - 1))
    bucket_ts, bucket_close = keys[starts], closes[starts]
    values = _reduce(s.values, starts, how)
    if isinstance(every, int):
        done = bucket_close <= now
    elif not bool((s.ts % DAY == 0).all()):
        done = bucket_close + DAY <= now
    elif every == "day":
        done = np.ones(bucket_ts.size, dtype=bool)
    else:
        last_point = s.ts[np.append(starts[1:], s.ts.size) - 1]
        done = (last_point >= bucket_close) | (now >= bucket_close + DAY + COMPLETE_GRACE)
    return Series(bucket_ts[done], values[done])


def window_starts(ts: npt.NDArray[np.int64], window: int | str, span: str) -> npt.NDArray[np.intp]:
    """Index where each point's trailing window begins: N points back, or a duration back."""
    n = ts.size
    if span == "points":
        return np.maximum(np.arange(n) - int(window) + 1, 0)
    return np.searchsorted(ts, ts - int(window), side="right")


def range_max(
    values: npt.NDArray[np.float64], left: npt.NDArray[np.intp], right: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """Maximum over [left, right) for every pair, vectorized with a sparse table; empty → -inf."""
    out = np.full(left.size, -np.inf)
    length = right - left
    ok = length > 0
    if values.size == 0 or not bool(ok.any()):
        return out
    a, b = left[ok], right[ok]
    level = np.frexp(length[ok].astype(np.float64))[1] - 1  # floor(log2(length)), exactly
    n = values.size
    table = np.full((int(level.max()) + 1, n), -np.inf)  # row k: max of values[i : i + 2**k]
    table[0] = values
    for k in range(1, table.shape[0]):
        half, width = 1 << (k - 1), n - (1 << k) + 1
        table[k, :width] = np.maximum(table[k - 1, :width], table[k - 1, half : half + width])
    out[ok] = np.maximum(table[level, a], table[level, b - (1 << level)])
    return out


def rolling(series: Series, window: int, span: str, how: How) -> Series:
    """Trailing window aggregate; the first points use the partial window."""
    s = series.dropna()
    if len(s) == 0:
        return s
    starts = window_starts(s.ts, window, span)
    ends = np.arange(1, len(s) + 1)
    csum = np.concatenate([[0.0], np.cumsum(s.values)])
    match how:
        case "sum":
            out = csum[ends] - csum[starts]
        case "mean":
            out = (csum[ends] - csum[starts]) / (ends - starts)
        case "max":
            out = range_max(s.values, starts, ends)
        case "min":
            out = -range_max(-s.values, starts, ends)
        case "count":
            out = (ends - starts).astype(np.float64)
        case "first":
            out = s.values[starts]
        case _:
            out = s.values.copy()
    return Series(s.ts, out)


def shift_back(series: Series, window: int, span: str) -> npt.NDArray[np.float64]:
    """The value `window` points (or the last point at least a duration) before each point."""
    n = len(series)
    out = np.full(n, np.nan)
    if span == "points":
        if window < n:
            out[window:] = series.values[:-window] if window else series.values
        return out
    idx = np.searchsorted(series.ts, series.ts - window, side="right") - 1
    ok = idx >= 0
    out[ok] = series.values[idx[ok]]
    return out


def pct_change(series: Series, window: int, span: str) -> Series:
    """Relative change against the value a window back, as a fraction (−0.06 = −6 %)."""
    s = series.dropna()
    ref = shift_back(s, window, span)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (s.values - ref) / np.abs(ref)
    out[~np.isfinite(out)] = np.nan
    return Series(s.ts, out)


def diff(series: Series, window: int, span: str) -> Series:
    """Absolute change against the value a window back."""
    s = series.dropna()
    return Series(s.ts, s.values - shift_back(s, window, span))


def zscore(series: Series, window: int, span: str) -> Series:
    """Standard score within a trailing window (NaN while the window has no spread)."""
    s = series.dropna()
    if len(s) == 0:
        return s
    starts = window_starts(s.ts, window, span)
    ends = np.arange(1, len(s) + 1)
    c1 = np.concatenate([[0.0], np.cumsum(s.values)])
    c2 = np.concatenate([[0.0], np.cumsum(s.values**2)])
    count = ends - starts
    mean = (c1[ends] - c1[starts]) / count
    var = np.maximum((c2[ends] - c2[starts]) / count - mean**2, 0.0)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (s.values - mean) / std
    out[~np.isfinite(out)] = np.nan
    return Series(s.ts, out)


def absolute(series: Series) -> Series:
    """Magnitude only."""
    return Series(series.ts, np.abs(series.values))
