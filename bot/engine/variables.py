"""The names a rule's message may use, known at load so a typo is an error and not a fallback."""

from __future__ import annotations

from bot.engine import rules as r

COMMON = frozenset({"id", "name", "series", "severity", "value", "at", "state", "reason"})
"""Passed to every message (`bot.alerts.pipeline.variables`); a test keeps the two in step."""

_PREVIOUS = frozenset({"previous"})
BY_KIND: dict[type, frozenset[str]] = {
    r.Above: _PREVIOUS,
    r.Below: _PREVIOUS,
    r.AtLeast: _PREVIOUS,
    r.AtMost: _PREVIOUS,
    r.Between: _PREVIOUS,
    r.Outside: _PREVIOUS,
    r.CrossesAbove: _PREVIOUS,
    r.CrossesBelow: _PREVIOUS,
    r.Turns: _PREVIOUS,
    r.Streak: _PREVIOUS | {"streak", "window_sum"},
    r.SignChanges: _PREVIOUS | {"changes", "window_sum"},
    r.ChangeCondition: _PREVIOUS | {"change", "change_pct"},
    r.NewHigh: _PREVIOUS | {"previous_extreme"},
    r.NewLow: _PREVIOUS | {"previous_extreme"},
    r.Longest: _PREVIOUS | {"run", "longest_before"},
}
"""What each condition kind adds (`bot.engine.conditions`); a test keeps the two in step."""


def provided(rule: r.AnyRule) -> frozenset[str]:
    """The variables a rule's messages are rendered with; composites have only the common ones."""
    if isinstance(rule, r.SeriesRule):
        return COMMON | BY_KIND[type(rule.condition)]
    return COMMON
