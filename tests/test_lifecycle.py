"""The lifecycle: pending, firing, hysteresis, keep_firing_for, no_data, edits — one rule at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bot.alerts.composite import composite_holds, episodes_from_state, micros
from bot.alerts.evaluate import run_composite_live, run_series_rule
from bot.alerts.lifecycle import Change
from bot.engine.rules import CompositeRule, SeriesRule
from bot.engine.series import Series
from bot.model import AlertState, AlertStatus, TransitionKind

T0 = datetime(2025, 10, 1, tzinfo=UTC)


def rule(**fields: Any) -> SeriesRule:
    base = {"id": "r", "series": "x", "condition": {"at_most": 20}}
    return SeriesRule.model_validate(base | fields)


def series(
    values: list[float], step: timedelta = timedelta(days=1), start: datetime = T0
) -> Series:
    ts = [int((start + i * step).timestamp()) for i in range(len(values))]
    return Series.of(ts, values)


def run(
    r: SeriesRule,
    values: list[float],
    step: timedelta = timedelta(days=1),
    prev: AlertState | None = None,
    now: datetime | None = None,
) -> tuple[AlertState, list[Change]]:
    s = series(values, step)
    end = now or datetime.fromtimestamp(int(s.ts[-1]), UTC)
    state, changes, _ = run_series_rule(r, prev, s, end)
    return state, changes


def marks(changes: list[Change], step: timedelta = timedelta(days=1)) -> list[tuple[str, float]]:
    return [(c.kind.value, (c.at - T0) / step) for c in changes]


def test_fires_once_when_reaching_the_threshold() -> None:
    state, changes = run(rule(), [30, 22, 20, 15, 18])
    assert marks(changes) == [("firing", 2)]
    assert state.status is AlertStatus.FIRING and state.since == T0 + timedelta(days=2)


def test_recover_bound_gives_hysteresis() -> None:
    _, changes = run(rule(recover={"above": 25}), [15, 22, 25, 19, 26, 18])
    assert marks(changes) == [("firing", 0), ("resolved", 4), ("firing", 5)]
    assert changes[1].fired_at == T0 and changes[1].reason == "condition cleared"


def test_for_holds_the_condition_before_firing() -> None:
    hourly = timedelta(hours=1)
    r = rule(condition={"below": 0}, **{"for": "8h"})
    _, changes = run(r, [-1] * 8 + [-1, -1], hourly)
    assert marks(changes, hourly) == [("firing", 8)]
    _, broken = run(r, [-1] * 5 + [1] + [-1] * 9, hourly)
    assert marks(broken, hourly) == [("firing", 14)]


def test_confirm_counts_points() -> None:
    _, changes = run(rule(confirm=3), [10, 10, 30, 10, 10, 10, 10])
    assert marks(changes) == [("firing", 5)]


def test_pending_survives_between_live_evaluations() -> None:
    r = rule(confirm=3)
    state, changes = run(r, [10, 10])
    assert changes == [] and state.status is AlertStatus.PENDING and state.pending_count == 2
    _, changes = run(r, [10, 10, 10], prev=state)
    assert marks(changes) == [("firing", 2)]


def test_keep_firing_for_bridges_short_gaps() -> None:
    r = rule(keep_firing_for="2d")
    _, changes = run(r, [10, 30, 10, 30, 30, 30, 10])
    assert marks(changes) == [("firing", 0), ("resolved", 5), ("firing", 6)]


def test_only_points_after_last_evaluated_are_stepped() -> None:
    state, first = run(rule(), [30, 15])
    again, changes = run(rule(), [30, 15, 16], prev=state)
    assert marks(first) == [("firing", 1)] and changes == []
    assert again.last_ts == T0 + timedelta(days=2)


def test_message_edit_keeps_state_and_condition_edit_resolves_as_rule_edited() -> None:
    state, _ = run(rule(), [15])
    kept, changes = run(rule(message="edited"), [15, 14], prev=state)
    assert kept.status is AlertStatus.FIRING and changes == []
    reset, changes = run(rule(condition={"at_most": 10}), [15, 14], prev=state)
    assert [(c.kind, c.reason) for c in changes] == [(TransitionKind.RESOLVED, "rule edited")]
    assert reset.status is AlertStatus.INACTIVE


def test_no_data_ok_resolves_when_the_series_goes_quiet() -> None:
    r = rule(no_data={"after": "2d", "then": "ok"})
    state, changes = run(r, [15], now=T0 + timedelta(days=3))
    assert marks(changes) == [("firing", 0), ("resolved", 2)]
    assert changes[-1].reason == "data missing" and state.status is AlertStatus.INACTIVE


def test_no_data_alert_fires_and_keep_does_nothing() -> None:
    _, alert = run(rule(no_data={"after": "1d", "then": "alert"}), [30], now=T0 + timedelta(days=2))
    assert [(c.kind.value, c.reason) for c in alert] == [("firing", "data missing")]
    _, keep = run(rule(no_data={"after": "1d", "then": "keep"}), [15], now=T0 + timedelta(days=9))
    assert marks(keep) == [("firing", 0)]


def test_no_false_no_data_over_a_weekend_for_etf_series() -> None:
    friday = datetime(2025, 11, 21, tzinfo=UTC)
    r = SeriesRule.model_validate(
        {
            "id": "e",
            "series": "etf.btc.net_flow",
            "condition": {"below": 0},
            "no_data": {"after": "1d", "then": "ok"},
        }
    )
    s = Series.of([int(friday.timestamp())], [-5.0])
    _, monday = run_series_rule(r, None, s, friday + timedelta(days=3, hours=12))[:2]
    assert [c.kind.value for c in monday] == ["firing"]
    _, tuesday = run_series_rule(r, None, s, friday + timedelta(days=5))[:2]
    assert [(c.kind.value, c.reason) for c in tuesday][-1] == ("resolved", "data missing")


def test_gap_inside_history_applies_no_data_between_points() -> None:
    r = rule(no_data={"after": "2d", "then": "ok"})
    s = Series.of([int(T0.timestamp()), int((T0 + timedelta(days=5)).timestamp())], [15.0, 15.0])
    _, changes, _ = run_series_rule(r, None, s, T0 + timedelta(days=5))
    assert marks(changes) == [("firing", 0), ("resolved", 2), ("firing", 5)]


def test_missing_values_are_skipped_not_read_as_clear() -> None:
    _, changes = run(rule(), [15, float("nan"), 16])
    assert marks(changes) == [("firing", 0)]


def test_composite_counts_members_fired_within_the_window() -> None:
    c = CompositeRule.model_validate({"id": "both", "all": ["a", "b"], "within": "14d"})
    now = T0 + timedelta(days=20)
    firing = AlertState("a", AlertStatus.FIRING, since=now)
    recent = AlertState("b", AlertStatus.INACTIVE, last_fired_at=now - timedelta(days=10))
    old = AlertState("b", AlertStatus.INACTIVE, last_fired_at=now - timedelta(days=15))
    state, changes = run_composite_live(c, None, {"a": firing, "b": recent}, now)
    assert [ch.kind.value for ch in changes] == ["firing"]
    state, changes = run_composite_live(c, state, {"a": firing, "b": old}, now + timedelta(hours=1))
    assert [ch.kind.value for ch in changes] == ["resolved"]


def test_live_member_counts_to_the_microsecond_and_when_stamped_ahead() -> None:
    c = CompositeRule.model_validate({"id": "c", "any": ["b"], "within": "1500ms"})
    now = T0 + timedelta(days=1, microseconds=250)

    def holds(state: AlertState) -> bool:
        at = micros(now)
        _, flags = composite_holds(c, {"b": episodes_from_state(state, at)}, np.array([at]))
        return bool(flags[0])

    def fired(ago: timedelta) -> AlertState:
        return AlertState("b", AlertStatus.INACTIVE, last_fired_at=now - ago)

    assert holds(fired(timedelta(milliseconds=1500)))
    assert not holds(fired(timedelta(milliseconds=1500, microseconds=1)))
    ahead = now + timedelta(minutes=30)  # a point stamped ahead of our clock
    assert holds(AlertState("b", AlertStatus.FIRING, since=ahead, last_fired_at=ahead))
    assert holds(AlertState("b", AlertStatus.INACTIVE, last_fired_at=ahead))
    assert not holds(AlertState("b", AlertStatus.PENDING, since=now))


def test_jumping_lifecycle_matches_a_point_by_point_reference() -> None:
    """Random series: the jump-based walk agrees with a naive loop over every point."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        values = list(rng.integers(0, 40, size=60).astype(float))
        confirm = int(rng.integers(1, 4))
        r = rule(confirm=confirm, recover={"above": 25})
        _, changes = run(r, values)
        expected, status, count = [], "off", 0
        for i, v in enumerate(values):
            if status == "on":
                if v > 25:
                    expected.append(("resolved", i))
                    status, count = "off", 0
                continue
            count = count + 1 if v <= 20 else 0
            if count >= confirm:
                expected.append(("firing", i))
                status = "on"
        assert marks(changes) == [(k, float(i)) for k, i in expected]


def test_no_data_deadline_skips_holidays_like_the_live_check() -> None:
    """Thursday before Good Friday 2025: one missing session is Monday, stale from Tuesday."""
    from bot.alerts.lifecycle import Timing, is_stale, stale_at

    timing = Timing(no_data_after=86400, no_data_then="ok", calendar="us-trading")
    thursday = int(datetime(2025, 4, 17, tzinfo=UTC).timestamp())
    due = stale_at(timing, thursday)
    assert due == int(datetime(2025, 4, 22, tzinfo=UTC).timestamp())
    assert not is_stale(timing, thursday, due - 1)
    assert is_stale(timing, thursday, due)
