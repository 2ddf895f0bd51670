"""Conditions, transforms and the trading calendar on small hand-made series."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from bot.engine import calendar as cal
from bot.engine import rules as r
from bot.engine import series as sx
from bot.engine.conditions import Evaluated, evaluate, run_lengths
from bot.engine.evaluate import evaluate_rule, transform
from bot.engine.series import Series

NAN = math.nan
HOUR = 3600
DAY = 86400
CONDITION: TypeAdapter[Any] = TypeAdapter(r.Condition)


def epoch(day: date, hour: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp())


def daily(values: list[float], start: int = 0) -> Series:
    return Series.of([start + i * DAY for i in range(len(values))], values)


def run(condition: dict[str, Any], values: list[float], ts: list[int] | None = None) -> Evaluated:
    s = daily(values) if ts is None else Series.of(ts, values)
    return evaluate(CONDITION.validate_python(condition), s)


def where(ev: Evaluated) -> list[int]:
    return [int(i) for i in np.flatnonzero(ev.active)]


def listed(array: np.ndarray) -> list[float | None]:
    return [None if math.isnan(x) else float(x) for x in array]


def stamps(s: Series) -> list[str]:
    return [str(np.datetime64(int(t), "s").astype("datetime64[D]")) for t in s.ts]


def series_rule(**fields: Any) -> r.SeriesRule:
    return r.SeriesRule.model_validate(
        {"id": "t", "series": "x", "condition": {"above": 0}} | fields
    )


# thresholds, bands, crossings, turns ------------------------------------------------------------
@pytest.mark.parametrize(
    ("condition", "values", "holds_at"),
    [
        pytest.param({"above": 1}, [0, 1, 2, NAN], [2], id="above is strict and NaN never holds"),
        pytest.param({"below": 1}, [0, 1, 2, NAN], [0], id="below is strict and NaN never holds"),
        pytest.param({"at_least": 1}, [0, 1, 2, NAN], [1, 2], id="at_least includes the level"),
        pytest.param({"at_most": 1}, [0, 1, 2, NAN], [0, 1], id="at_most includes the level"),
        pytest.param({"below": 0}, [NAN, NAN], [], id="an all-NaN series never holds"),
        pytest.param(
            {"between": [0, 1]}, [-1, 0, 0.5, 1, 2, NAN], [1, 2, 3], id="between includes both ends"
        ),
        pytest.param(
            {"outside": [0, 1]},
            [-1, 0, 0.5, 1, 2, NAN],
            [0, 4],
            id="outside excludes both ends and NaN",
        ),
        pytest.param(
            {"crosses_above": 0},
            [-1, 0, 1, -1, 2, 3],
            [2, 4],
            id="crosses_above holds on the point that passes the level, not after",
        ),
        pytest.param(
            {"crosses_above": 0}, [-1, 0, 0, -1], [], id="touching the level is not crossing it"
        ),
        pytest.param(
            {"crosses_above": 0},
            [1, 2],
            [],
            id="the first point never crosses: it has no predecessor",
        ),
        pytest.param(
            {"crosses_below": 0},
            [1, 0, -1, 1, -2, -3],
            [2, 4],
            id="crosses_below holds on the point that falls under the level",
        ),
        pytest.param(
            {"turns": "positive"},
            [-1, 1, 2, -1, 3],
            [1, 4],
            id="turns positive on a minus-to-plus pair",
        ),
        pytest.param(
            {"turns": "positive"}, [-1, 0, 1], [], id="a zero between the signs is not a turn"
        ),
        pytest.param(
            {"turns": "negative"},
            [1, -1, -2, 1, -3],
            [1, 4],
            id="turns negative on a plus-to-minus pair",
        ),
    ],
)
def test_simple_conditions_hold_exactly_where_expected(
    condition: dict[str, Any], values: list[float], holds_at: list[int]
) -> None:
    assert where(run(condition, values)) == holds_at


def test_threshold_exposes_the_previous_value() -> None:
    ev = run({"above": 0}, [3, 4, 5])
    assert listed(ev.variables["previous"]) == [None, 3, 4]


def test_missing_points_are_dropped_before_a_crossing_is_looked_for() -> None:
    ev, _ = evaluate_rule(series_rule(condition={"crosses_above": 0}), daily([-1, NAN, 1]), 3 * DAY)
    assert listed(ev.series.values) == [-1, 1]
    assert where(ev) == [1]


# streak and sign changes ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "values", "holds_at", "streak", "window_sum"),
    [
        pytest.param(
            {"below": 0, "count": 3},
            [1, -1, -2, -3, -4, 5, -1],
            [3, 4],
            [0, 1, 2, 3, 4, 0, 1],
            [0, -1, -3, -6, -10, 0, -1],
            id="streak holds from the count-th point of a run and sums only the run",
        ),
        pytest.param(
            {"at_least": 0, "count": 2},
            [0, 0, -1, 5, 5],
            [1, 4],
            [1, 2, 0, 1, 2],
            [0, 0, 0, 5, 10],
            id="streak with at_least counts points on the level",
        ),
        pytest.param(
            {"below": 0, "count": 5},
            [-1, -1, -1, -1, 2, -1],
            [],
            [1, 2, 3, 4, 0, 1],
            [-1, -2, -3, -4, 0, -1],
            id="a run one short of the count never holds",
        ),
    ],
)
def test_streak_counts_the_current_run(
    spec: dict[str, Any],
    values: list[float],
    holds_at: list[int],
    streak: list[float],
    window_sum: list[float],
) -> None:
    ev = run({"streak": spec}, values)
    assert where(ev) == holds_at
    assert listed(ev.variables["streak"]) == streak
    assert listed(ev.variables["window_sum"]) == window_sum


@pytest.mark.parametrize(
    ("spec", "values", "holds_at", "changes"),
    [
        pytest.param(
            {"min": 2, "within": 4},
            [1, -1, 1, 1, 1, -1, 1, 0, 1],
            [3, 6, 7],
            [0, 1, 2, 2, 1, 1, 2, 2, 1],
            id="sign changes count the pairs whose both points are inside the window",
        ),
        pytest.param(
            {"min": 2, "within": 4},
            [1, -1, 1],
            [],
            [0, 1, 2],
            id="sign changes need a full window before they hold",
        ),
        pytest.param(
            {"min": 1, "within": 3},
            [1, 0, -1, 0, 1],
            [],
            [0, 0, 0, 0, 0],
            id="a zero is no sign, so a change through zero does not count",
        ),
        pytest.param(
            {"min": 3, "within": 4},
            [-5, 5, -5, 5, 5, 5],
            [3],
            [0, 1, 2, 3, 2, 1],
            id="two-way flow fades as one-way days push the changes out of the window",
        ),
    ],
)
def test_sign_changes_count_alternations_in_the_last_points(
    spec: dict[str, Any], values: list[float], holds_at: list[int], changes: list[float]
) -> None:
    ev = run({"sign_changes": spec}, values)
    assert where(ev) == holds_at
    assert listed(ev.variables["changes"]) == changes


def test_sign_changes_window_sum_is_the_net_of_the_window() -> None:
    ev = run({"sign_changes": {"min": 1, "within": 3}}, [10, -4, 6, -1])
    assert listed(ev.variables["window_sum"]) == [10, 6, 12, 1]


# change ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "values", "ts", "holds_at"),
    [
        pytest.param(
            {"window": 2, "by": "10%", "direction": "down"},
            [100, 95, 89, 80, 100, 120],
            None,
            [2, 3],
            id="a percentage drop over a points window",
        ),
        pytest.param(
            {"window": 2, "by": "10%", "direction": "up"},
            [100, 95, 89, 80, 100, 120],
            None,
            [4, 5],
            id="a percentage rise over a points window",
        ),
        pytest.param(
            {"window": 2, "by": "10%"},
            [100, 95, 89, 80, 100, 120],
            None,
            [2, 3, 4, 5],
            id="direction either takes both",
        ),
        pytest.param(
            {"window": 1, "by": 5, "direction": "either"},
            [100, 104, 110, 105, 99],
            None,
            [2, 3, 4],
            id="an absolute amount is reached at exactly the amount",
        ),
        pytest.param(
            {"window": "24h", "by": "6%", "direction": "down"},
            [100, 99, 98, 97, 93, 96],
            [0, 6 * HOUR, 12 * HOUR, 18 * HOUR, 24 * HOUR, 30 * HOUR],
            [4],
            id="a 24h window compares with the last point at least 24 hours back",
        ),
        pytest.param(
            {"window": "24h", "by": "6%", "direction": "down"},
            [100, 90, 80],
            [0, 12 * HOUR, 20 * HOUR],
            [],
            id="no point 24 hours back means no change yet",
        ),
        pytest.param(
            {"window": "24h", "by": 10, "direction": "up"},
            [100, 101, 115],
            [0, 1 * HOUR, 50 * HOUR],
            [2],
            id="after a gap the reference is the newest point at least 24 hours old",
        ),
    ],
)
def test_change_over_a_window(
    spec: dict[str, Any], values: list[float], ts: list[int] | None, holds_at: list[int]
) -> None:
    assert where(run({"change": spec}, values, ts)) == holds_at


def test_change_variables_give_the_reference_and_the_move() -> None:
    ev = run({"change": {"window": 2, "by": "10%", "direction": "down"}}, [100, 95, 89])
    assert listed(ev.variables["previous"]) == [None, None, 100]
    assert listed(ev.variables["change"]) == [None, None, -11]
    assert ev.variables["change_pct"][2] == pytest.approx(-0.11)


# new_high / new_low / longest -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("condition", "values", "holds_at"),
    [
        pytest.param(
            {"new_low": {"within": 3}},
            [5, 4, 3, 6, 2, 2, 1],
            [4, 6],
            id="new_low is strict: equalling the low is no new low",
        ),
        pytest.param(
            {"new_high": {"within": 3}},
            [1, 2, 3, 0, 4, 4, 5],
            [4, 6],
            id="new_high is strict: equalling the high is no new high",
        ),
        pytest.param(
            {"new_low": {"within": 3}},
            [5, 4, 3],
            [],
            id="nothing is a record until history covers the window",
        ),
        pytest.param(
            {"new_low": {"within": 2}},
            [1, 9, 8, 7],
            [3],
            id="an older lower point outside the window does not count",
        ),
        pytest.param(
            {"new_low": {"within": 3, "below": 2}},
            [5, 4, 3, 6, 2, 2, 1],
            [6],
            id="new_low with a bound holds only past the bound",
        ),
        pytest.param(
            {"new_high": {"within": 3, "above": 4}},
            [1, 2, 3, 0, 4, 4, 5],
            [6],
            id="new_high with a bound holds only past the bound",
        ),
        pytest.param(
            {"new_low": {"within": "3d"}},
            [5, 4, 3, 6, 2, 2, 1],
            [4, 6],
            id="a duration window holds the points of the last 3 days",
        ),
    ],
)
def test_new_extremes(condition: dict[str, Any], values: list[float], holds_at: list[int]) -> None:
    assert where(run(condition, values)) == holds_at


def test_new_low_reports_the_previous_extreme() -> None:
    ev = run({"new_low": {"within": 3}}, [5, 4, 3, 6, 2])
    assert listed(ev.variables["previous_extreme"]) == [None, 5, 4, 3, 3]


@pytest.mark.parametrize(
    ("values", "holds_at", "longest_before"),
    [
        pytest.param(
            [-1, 1, 1, 1, 1, 1, -1, -1, 1, -1, -1, -1],
            [11],
            [0, 1, 1, 1, 1, 1, 0, 0, 2, 2, 2, 2],
            id="longest holds once the current run beats every earlier run in the window",
        ),
        pytest.param(
            [-1, -1, -1, -1, 1, 1, 1, 1, -1, 1, -1, -1],
            [11],
            [0, 0, 0, 0, 4, 4, 4, 4, 4, 1, 1, 1],
            id="a longer run that ended before the window does not count",
        ),
        pytest.param(
            [1, 1, 1, 1, 1, 1, -1, -1, -1],
            [],
            [0] * 9,
            id="a first run with nothing before it in the window is not a record",
        ),
    ],
)
def test_longest_run_in_a_window(
    values: list[float], holds_at: list[int], longest_before: list[float]
) -> None:
    ev = run({"longest": {"below": 0, "within": 6}}, values)
    assert where(ev) == holds_at
    assert listed(ev.variables["longest_before"]) == longest_before


def test_longest_needs_the_window_covered_and_reports_the_run() -> None:
    values: list[float] = [-1, 1, -1, -1, 1, -1, -1, -1]
    ev = run({"longest": {"below": 0, "within": 10}}, values)
    assert where(ev) == []
    ev = run({"longest": {"below": 0, "within": 6}}, values)
    assert where(ev) == [7]
    assert listed(ev.variables["run"]) == [1, 0, 1, 2, 0, 1, 2, 3]


# resample ----------------------------------------------------------------------------------------
THANKSGIVING_WEEK = [date(2025, 11, d) for d in (24, 25, 26, 28)]
WEEK_BEFORE = [date(2025, 11, d) for d in (17, 18, 19, 20, 21)]


def sessions(days: list[date], values: list[float]) -> Series:
    return Series.of([epoch(d) for d in days], values)


def test_week_on_the_trading_calendar_is_stamped_at_its_last_session() -> None:
    s = sessions([*WEEK_BEFORE, *THANKSGIVING_WEEK], [1, 2, 3, 4, 5, 10, 20, 30, 40])
    out = sx.resample(s, "week", "sum", "us-trading", epoch(date(2025, 11, 28), 20))
    assert stamps(out) == ["2025-11-21", "2025-11-28"]
    assert list(out.values) == [15, 100]


@pytest.mark.parametrize(
    ("now", "weeks"),
    [
        pytest.param(
            datetime(2025, 11, 28, 20), ["2025-11-21"], id="Friday evening without Friday's print"
        ),
        pytest.param(datetime(2025, 11, 30, 12), ["2025-11-21"], id="the weekend still waits"),
        pytest.param(
            datetime(2025, 12, 1, 23), ["2025-11-21"], id="within the grace the week stays open"
        ),
        pytest.param(
            datetime(2025, 12, 2, 0),
            ["2025-11-21", "2025-11-28"],
            id="after the grace the week closes",
        ),
    ],
)
def test_a_week_without_its_closing_session_waits_for_it_or_the_grace(
    now: datetime, weeks: list[str]
) -> None:
    s = sessions([*WEEK_BEFORE, *THANKSGIVING_WEEK[:-1]], [1, 2, 3, 4, 5, 10, 20, 30])
    out = sx.resample(s, "week", "sum", "us-trading", int(now.replace(tzinfo=UTC).timestamp()))
    assert stamps(out) == weeks


def test_the_closing_sessions_point_closes_the_week_at_once() -> None:
    s = sessions(THANKSGIVING_WEEK, [10, 20, 30, 40])
    assert stamps(sx.resample(s, "week", "sum", "us-trading", epoch(date(2025, 11, 28)))) == [
        "2025-11-28"
    ]


def test_week_containing_good_friday_closes_on_thursday() -> None:
    s = sessions([date(2025, 4, d) for d in (14, 15, 16, 17)], [1, 1, 1, 1])
    out = sx.resample(s, "week", "count", "us-trading", epoch(date(2025, 4, 17)))
    assert stamps(out) == ["2025-04-17"]
    assert list(out.values) == [4]


def test_continuous_week_is_stamped_on_sunday() -> None:
    s = daily([1.0] * 7, start=epoch(date(2025, 11, 24)))
    assert stamps(sx.resample(s, "week", "sum", "continuous", epoch(date(2025, 11, 30)))) == [
        "2025-11-30"
    ]


def test_month_closes_on_its_last_session_day() -> None:
    s = sessions([date(2025, 10, 30), date(2025, 10, 31), date(2025, 11, 3)], [1, 2, 4])
    out = sx.resample(s, "month", "sum", "us-trading", epoch(date(2025, 11, 3)))
    assert stamps(out) == ["2025-10-31"]
    assert list(out.values) == [3]
    november = sessions([date(2025, 11, 26), date(2025, 11, 28)], [1, 2])
    assert stamps(
        sx.resample(november, "month", "last", "us-trading", epoch(date(2025, 11, 28)))
    ) == ["2025-11-28"]


def test_day_buckets_of_intraday_data_close_only_once_the_day_is_over() -> None:
    ts = [epoch(date(2025, 3, 3), h) for h in range(0, 24, 6)] + [epoch(date(2025, 3, 4), 0)]
    s = Series.of(ts, [1, 2, 3, 4, 100])
    evening = sx.resample(s, "day", "sum", "continuous", epoch(date(2025, 3, 4), 0))
    assert stamps(evening) == ["2025-03-03"]
    assert list(evening.values) == [10]
    assert len(sx.resample(s, "day", "sum", "continuous", epoch(date(2025, 3, 3), 23))) == 0


def test_day_buckets_of_a_daily_series_are_its_points() -> None:
    s = sessions(WEEK_BEFORE, [1, 2, 3, 4, 5])
    out = sx.resample(s, "day", "sum", "us-trading", epoch(date(2025, 11, 21)))
    assert list(out.ts) == list(s.ts) and list(out.values) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        pytest.param("sum", [6, 4], id="sum adds a bucket"),
        pytest.param("mean", [2, 4], id="mean averages a bucket"),
        pytest.param("last", [3, 4], id="last keeps the newest point"),
        pytest.param("first", [1, 4], id="first keeps the oldest point"),
        pytest.param("min", [1, 4], id="min keeps the smallest"),
        pytest.param("max", [3, 4], id="max keeps the largest"),
        pytest.param("count", [3, 1], id="count counts points"),
    ],
)
def test_fixed_duration_buckets_aggregate(how: sx.How, expected: list[float]) -> None:
    s = Series.of([0, 2 * HOUR, 7 * HOUR, 8 * HOUR], [1, 2, 3, 4])
    out = sx.resample(s, 8 * HOUR, how, "continuous", 16 * HOUR)
    assert list(out.ts) == [0, 8 * HOUR]
    assert list(out.values) == expected


def test_fixed_duration_bucket_closes_only_once_elapsed() -> None:
    s = Series.of([0, 2 * HOUR, 8 * HOUR, 9 * HOUR], [1, 2, 3, 4])
    assert list(sx.resample(s, 8 * HOUR, "sum", "continuous", 16 * HOUR - 1).values) == [3]
    assert list(sx.resample(s, 8 * HOUR, "sum", "continuous", 16 * HOUR).values) == [3, 7]


def test_resample_skips_missing_points_and_handles_an_empty_series() -> None:
    s = Series.of([0, HOUR, 2 * HOUR], [1, NAN, 2])
    assert list(sx.resample(s, DAY, "count", "continuous", DAY).values) == [2]
    assert len(sx.resample(Series.of([], []), "week", "sum", "us-trading", DAY)) == 0


# rolling, pct_change, diff, zscore, abs --------------------------------------------------------
@pytest.mark.parametrize(
    ("window", "span", "how", "expected"),
    [
        pytest.param(3, "points", "sum", [1, 3, 6, 9, 12], id="rolling sum over 3 points"),
        pytest.param(
            3, "points", "mean", [1, 1.5, 2, 3, 4], id="rolling mean uses a partial window first"
        ),
        pytest.param(2, "points", "min", [1, 1, 2, 3, 4], id="rolling min over 2 points"),
        pytest.param(2, "points", "max", [1, 2, 3, 4, 5], id="rolling max over 2 points"),
        pytest.param(
            2 * DAY,
            "seconds",
            "sum",
            [1, 3, 5, 7, 9],
            id="a 2-day window holds today and yesterday",
        ),
    ],
)
def test_rolling_aggregates(window: int, span: str, how: sx.How, expected: list[float]) -> None:
    assert list(sx.rolling(daily([1, 2, 3, 4, 5]), window, span, how).values) == expected


def test_rolling_duration_window_follows_time_not_points() -> None:
    s = Series.of([0, HOUR, 2 * HOUR, 30 * HOUR], [1, 2, 3, 10])
    assert list(sx.rolling(s, DAY, "seconds", "sum").values) == [1, 3, 6, 10]
    assert list(sx.rolling(s, DAY, "seconds", "max").values) == [1, 2, 3, 10]


@pytest.mark.parametrize(
    ("func", "window", "span", "values", "expected"),
    [
        pytest.param(
            sx.pct_change,
            1,
            "points",
            [100, 110, 99, 0, 5],
            [None, 0.1, -0.1, -1, None],
            id="pct_change against the previous point, none from zero",
        ),
        pytest.param(
            sx.pct_change,
            2,
            "points",
            [-100, 5, -50],
            [None, None, 0.5],
            id="pct_change of a negative base uses its magnitude",
        ),
        pytest.param(
            sx.diff, 1, "points", [1, 4, 2], [None, 3, -2], id="diff against the previous point"
        ),
        pytest.param(
            sx.diff,
            2 * DAY,
            "seconds",
            [1, 4, 2, 8],
            [None, None, 1, 4],
            id="diff over a 2-day window",
        ),
        pytest.param(
            sx.zscore,
            3,
            "points",
            [5, 5, 5, 5],
            [None, None, None, None],
            id="zscore of a flat window is undefined",
        ),
    ],
)
def test_windowed_transforms(
    func: Any, window: int, span: str, values: list[float], expected: list[float | None]
) -> None:
    got = listed(func(daily(values), window, span).values)
    assert [g is None for g in got] == [e is None for e in expected]
    assert [g for g in got if g is not None] == pytest.approx(
        [e for e in expected if e is not None]
    )


def test_zscore_is_the_standard_score_within_the_window() -> None:
    z = sx.zscore(daily([1, 2, 3, 4, 10]), 3, "points").values
    assert math.isnan(z[0])
    assert z[2] == pytest.approx(1 / math.sqrt(2 / 3))
    window = np.array([3.0, 4.0, 10.0])
    assert z[4] == pytest.approx((10 - window.mean()) / window.std())


def test_abs_keeps_magnitudes() -> None:
    assert list(sx.absolute(daily([-1, 2, -3])).values) == [1, 2, 3]


def test_rule_pipeline_applies_transforms_in_order_and_drops_undefined_points() -> None:
    rule = series_rule(
        transform=[{"diff": {"window": 1}}, "abs", {"rolling": {"window": 2, "how": "max"}}]
    )
    out = transform(rule, daily([1, 4, 2, NAN, 2, 10]), 10 * DAY)
    assert list(out.values) == [3, 3, 2, 8]
    rule = series_rule(transform=[{"pct_change": {"window": "24h"}}, {"zscore": {"window": 3}}])
    assert len(transform(rule, daily([1, 1, 1]), 3 * DAY)) == 0


# calendar ----------------------------------------------------------------------------------------
def days(*isos: str) -> np.ndarray:
    return np.array(isos, dtype="datetime64[D]")


@pytest.mark.parametrize(
    ("day", "is_open"),
    [
        pytest.param("2025-01-01", False, id="New Year's Day is closed"),
        pytest.param("2025-01-09", False, id="the day of mourning for President Carter is closed"),
        pytest.param("2025-01-10", True, id="the day after the day of mourning is open"),
        pytest.param("2025-01-20", False, id="Martin Luther King Day is closed"),
        pytest.param("2025-04-18", False, id="Good Friday is closed"),
        pytest.param("2025-07-04", False, id="Independence Day is closed"),
        pytest.param("2025-11-27", False, id="Thanksgiving is closed"),
        pytest.param("2025-11-28", True, id="the day after Thanksgiving is a half day, open"),
        pytest.param("2025-11-29", False, id="Saturday is closed"),
        pytest.param("2025-12-25", False, id="Christmas is closed"),
        pytest.param("2025-12-30", True, id="an ordinary Tuesday is open"),
    ],
)
def test_us_trading_sessions(day: str, is_open: bool) -> None:
    """A day is a session when [day, day + 1) holds one session; every day is one when continuous."""
    start = days(day)
    assert int(cal.sessions_between(start, start + 1, "us-trading")[0]) == int(is_open)
    assert int(cal.sessions_between(start, start + 1, "continuous")[0]) == 1


@pytest.mark.parametrize(
    ("day", "every", "calendar", "close"),
    [
        pytest.param(
            "2025-11-24",
            "week",
            "us-trading",
            "2025-11-28",
            id="Thanksgiving week closes Friday 11-28",
        ),
        pytest.param(
            "2025-11-30",
            "week",
            "us-trading",
            "2025-11-28",
            id="a Sunday belongs to the week before it",
        ),
        pytest.param(
            "2025-04-14",
            "week",
            "us-trading",
            "2025-04-17",
            id="Good Friday week closes on Thursday",
        ),
        pytest.param(
            "2025-06-30",
            "week",
            "us-trading",
            "2025-07-03",
            id="a July 4th Friday week closes on Thursday",
        ),
        pytest.param(
            "2025-12-29",
            "week",
            "us-trading",
            "2026-01-02",
            id="a week across New Year closes in the new year",
        ),
        pytest.param(
            "2025-11-24",
            "week",
            "continuous",
            "2025-11-30",
            id="a continuous week closes on Sunday",
        ),
        pytest.param(
            "2025-05-05",
            "month",
            "us-trading",
            "2025-05-30",
            id="May 2025 closes on Friday the 30th",
        ),
        pytest.param(
            "2025-11-03", "month", "us-trading", "2025-11-28", id="November 2025 closes on the 28th"
        ),
        pytest.param(
            "2025-11-03",
            "month",
            "continuous",
            "2025-11-30",
            id="a continuous month closes on its last day",
        ),
    ],
)
def test_period_close(day: str, every: Any, calendar: cal.CalendarName, close: str) -> None:
    assert str(cal.period_close(days(day), every, calendar)[0]) == close


@pytest.mark.parametrize(
    ("start", "end", "calendar", "count"),
    [
        pytest.param(
            "2025-11-21", "2025-11-24", "us-trading", 1, id="Friday to Monday is one session"
        ),
        pytest.param("2025-11-22", "2025-11-24", "us-trading", 0, id="a weekend is no time at all"),
        pytest.param("2025-11-26", "2025-12-01", "us-trading", 2, id="Thanksgiving is skipped"),
        pytest.param(
            "2025-01-08", "2025-01-13", "us-trading", 2, id="the day of mourning is skipped"
        ),
        pytest.param(
            "2025-11-21", "2025-11-24", "continuous", 3, id="a continuous calendar counts days"
        ),
    ],
)
def test_sessions_between(start: str, end: str, calendar: cal.CalendarName, count: int) -> None:
    assert int(cal.sessions_between(days(start), days(end), calendar)[0]) == count


def test_default_calendar_is_us_trading_for_etf_series_only() -> None:
    assert cal.default_calendar("etf.btc.net_flow") == "us-trading"
    assert cal.default_calendar("funding.btc.binance") == "continuous"


# properties --------------------------------------------------------------------------------------
@st.composite
def arrays_and_windows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 70))
    values = draw(
        st.lists(
            st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([-np.inf, np.inf]),
            min_size=n,
            max_size=n,
        )
    )
    pairs = draw(st.lists(st.tuples(st.integers(0, n), st.integers(0, n)), min_size=0, max_size=40))
    left = np.array([a for a, _ in pairs], dtype=np.intp)
    right = np.array([b for _, b in pairs], dtype=np.intp)
    return np.array(values, dtype=np.float64), left, right


@settings(deadline=None, max_examples=300)
@given(arrays_and_windows())
def test_range_max_equals_a_naive_max(case: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    values, left, right = case
    got = sx.range_max(values, left, right)
    expected = [
        float(values[a:b].max()) if b > a else -math.inf for a, b in zip(left, right, strict=True)
    ]
    assert list(got) == expected


@settings(deadline=None, max_examples=300)
@given(st.lists(st.booleans(), max_size=80))
def test_run_lengths_match_a_naive_loop(flags: list[bool]) -> None:
    expected, run_length = [], 0
    for flag in flags:
        run_length = run_length + 1 if flag else 0
        expected.append(run_length)
    assert list(run_lengths(np.array(flags, dtype=bool))) == expected
