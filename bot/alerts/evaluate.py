"""Evaluate one rule over new points: vectorized conditions, then the lifecycle step per point."""

from __future__ import annotations

from collections.abc import Sequence

from bot.alerts.state import Change, step
from bot.engine.conditions import holds
from bot.engine.rules import Rule
from bot.model import AlertState, AlertStatus, Observation


def fresh_state(rule: Rule) -> AlertState:
    """The state of a rule never evaluated, or whose condition was edited."""
    return AlertState(rule.id, AlertStatus.INACTIVE, fingerprint=rule.fingerprint)


def evaluate(
    rule: Rule, prev: AlertState | None, points: Sequence[Observation]
) -> tuple[AlertState, list[Change]]:
    """Step the rule through points newer than its last evaluated one; pure and deterministic."""
    import numpy as np

    state = prev if prev is not None and prev.fingerprint == rule.fingerprint else fresh_state(rule)
    new = [p for p in points if state.last_ts is None or p.ts > state.last_ts]
    if not new:
        return state, []
    values = np.fromiter((p.value for p in new), dtype=np.float64, count=len(new))
    active = holds(rule.condition, values)
    recovered = holds(rule.recover, values) if rule.recover else ~active
    changes: list[Change] = []
    for i, point in enumerate(new):
        state, change = step(state, point.ts, point.value, bool(active[i]), bool(recovered[i]))
        if change is not None:
            changes.append(change)
    return state, changes
