"""The pure lifecycle step: one data point in, the next state and maybe a transition out."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from bot.model import AlertState, AlertStatus, TransitionKind


@dataclass(frozen=True, slots=True)
class Change:
    """A state change found while stepping through points."""

    kind: TransitionKind
    at: datetime
    value: float
    fired_at: datetime | None
    reason: str = ""


def step(
    prev: AlertState, at: datetime, value: float, active: bool, recovered: bool
) -> tuple[AlertState, Change | None]:
    """Advance one point: fire when the condition holds, resolve only once recovered (hysteresis).

    `recovered` is the recover bound where the rule has one, else "condition no longer holds".
    A missing value (NaN) changes nothing but the evaluated timestamp.
    """
    if math.isnan(value):
        return replace(prev, last_ts=at), None
    if prev.status is AlertStatus.FIRING:
        if recovered:
            state = replace(prev, status=AlertStatus.INACTIVE, since=at, value=value, last_ts=at)
            return state, Change(
                TransitionKind.RESOLVED, at, value, prev.since, "condition cleared"
            )
        return replace(prev, value=value, last_ts=at), None
    if active:
        state = replace(prev, status=AlertStatus.FIRING, since=at, value=value, last_ts=at)
        return state, Change(TransitionKind.FIRING, at, value, at)
    return replace(prev, value=value, last_ts=at), None
