"""The pure lifecycle: fire when the condition holds, resolve only once recovered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.alerts.evaluate import evaluate
from bot.alerts.state import step
from bot.engine.rules import Bound, Rule
from bot.model import AlertState, AlertStatus, Observation, TransitionKind

DAY0 = datetime(2025, 10, 1, tzinfo=UTC)


def fear_rule(**extra: object) -> Rule:
    return Rule.model_validate(
        {
            "id": "extreme-fear",
            "series": "fear_greed",
            "condition": {"at_most": 20},
            "recover": {"above": 25},
            **extra,
        }
    )


def daily(*values: float) -> list[Observation]:
    return [Observation("fear_greed", DAY0 + timedelta(days=i), v) for i, v in enumerate(values)]


def kinds(changes: list) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    return [(c.kind.value, (c.at - DAY0).days) for c in changes]


def test_fires_once_when_reaching_the_threshold() -> None:
    state, changes = evaluate(fear_rule(), None, daily(30, 22, 20, 15, 18))
    assert kinds(changes) == [("firing", 2)]
    assert state.status is AlertStatus.FIRING
    assert state.since == DAY0 + timedelta(days=2)


def test_hysteresis_keeps_firing_between_20_and_25() -> None:
    _, changes = evaluate(fear_rule(), None, daily(15, 22, 25, 19, 26, 18))
    assert kinds(changes) == [("firing", 0), ("resolved", 4), ("firing", 5)]


def test_without_recover_resolves_when_condition_stops() -> None:
    rule = Rule.model_validate({"id": "f", "series": "s", "condition": {"below": 0}})
    _, changes = evaluate(rule, None, daily(-1, -2, 1, -1))
    assert kinds(changes) == [("firing", 0), ("resolved", 2), ("firing", 3)]


def test_only_points_after_last_evaluated_are_stepped() -> None:
    points = daily(30, 15, 16)
    state, first = evaluate(fear_rule(), None, points[:2])
    assert kinds(first) == [("firing", 1)]
    again, changes = evaluate(fear_rule(), state, points)
    assert changes == []
    assert again.last_ts == points[-1].ts


def test_changed_condition_resets_state_but_message_edit_keeps_it() -> None:
    state, _ = evaluate(fear_rule(), None, daily(15))
    kept, changes = evaluate(fear_rule(message="edited"), state, daily(15, 14))
    assert kept.status is AlertStatus.FIRING and changes == []
    reset, changes = evaluate(fear_rule(condition={"at_most": 10}), state, daily(15, 14))
    assert reset.status is AlertStatus.INACTIVE and changes == []


def test_missing_value_changes_nothing() -> None:
    prev = AlertState("r", AlertStatus.FIRING, since=DAY0)
    state, change = step(prev, DAY0 + timedelta(days=1), float("nan"), False, True)
    assert change is None
    assert state.status is AlertStatus.FIRING
    assert state.last_ts == DAY0 + timedelta(days=1)


def test_resolve_carries_when_it_fired() -> None:
    _, changes = evaluate(fear_rule(), None, daily(15, 30))
    assert changes[1].kind is TransitionKind.RESOLVED
    assert changes[1].fired_at == DAY0
    assert changes[1].reason == "condition cleared"


def test_bound_comparisons_are_inclusive_only_where_named() -> None:
    import numpy as np

    from bot.engine.conditions import holds

    values = np.array([19.0, 20.0, 21.0, np.nan])
    assert holds(Bound(at_most=20), values).tolist() == [True, True, False, False]
    assert holds(Bound(below=20), values).tolist() == [True, False, False, False]
    assert holds(Bound(at_least=20), values).tolist() == [False, True, True, False]
    assert holds(Bound(above=20), values).tolist() == [False, False, True, False]
