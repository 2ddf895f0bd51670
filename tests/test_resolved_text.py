"""A rule without `resolved_message` resolves with a resolved text, not its firing text again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.alerts.backtest import replay
from bot.alerts.lifecycle import Change
from bot.alerts.pipeline import to_transition
from bot.alerts.render import render_transition
from bot.engine.rules import SeriesRule
from bot.engine.ruleset import RuleSet
from bot.engine.series import Series
from bot.model import TransitionKind, from_epoch, to_epoch

DAY = 86_400
T0 = to_epoch(datetime(2025, 11, 1, tzinfo=UTC))


def rule(**extra: str) -> SeriesRule:
    return SeriesRule.model_validate(
        {
            "id": "deep-fear",
            "name": "Deep fear",
            "series": "fear_greed",
            "condition": {"at_most": 20},
            "message": "Fear & Greed at {{ value | plain }}: deep fear.",
            **extra,
        }
    )


def replayed(r: SeriesRule) -> list[tuple[str, str]]:
    data = {"fear_greed": Series.of([T0, T0 + DAY, T0 + 3 * DAY], [30.0, 15.0, 42.0])}
    events = replay(RuleSet((r,)), data, from_epoch(T0 + 4 * DAY))
    return [(e.state, e.message) for e in events]


def test_backtest_rows_of_a_rule_without_resolved_message_say_resolved() -> None:
    assert replayed(rule()) == [
        ("firing", "Fear & Greed at 15: deep fear."),
        ("resolved", "Resolved: Deep fear at 42 after 2d"),
    ]


def test_a_resolved_message_still_wins() -> None:
    resolved = rule(resolved_message="Back at {{ value | plain }}.")
    assert replayed(resolved)[-1] == ("resolved", "Back at 42.")


def test_the_telegram_text_of_such_a_resolution_does_not_repeat_the_firing_text() -> None:
    at = from_epoch(T0 + 3 * DAY)
    change = Change(TransitionKind.RESOLVED, at, 42.0, fired_at=at - timedelta(days=2))
    text = render_transition(to_transition(rule(), change), "Deep fear", "fear_greed")
    assert text == "✅ <b>Resolved: Deep fear</b> at 42 after 2d\n<i>fear_greed · 2025-11-04</i>"
