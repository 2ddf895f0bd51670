"""After new data: evaluate the rules that read it, persist states, enqueue the deliveries."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.alerts.evaluate import evaluate
from bot.alerts.state import Change
from bot.engine.rules import Rule, RuleSet
from bot.engine.templates import TemplateError, render
from bot.model import AlertState, Transition, TransitionKind
from bot.notify.render import render_transition
from bot.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one evaluation pass produced, for logs and tests."""

    transitions: tuple[Transition, ...] = ()
    enqueued: int = 0


def message_for(rule: Rule, change: Change) -> str:
    """Render the rule's template; a broken one falls back to a plain line, never a crash."""
    template = rule.message
    if change.kind is TransitionKind.RESOLVED and rule.resolved_message:
        template = rule.resolved_message
    variables = {
        "id": rule.id,
        "name": rule.name,
        "series": rule.series,
        "severity": rule.severity,
        "value": change.value,
        "at": change.at,
        "state": change.kind.value,
    }
    try:
        return render(template, variables)
    except TemplateError as exc:
        log.error("rule %s: %s", rule.id, exc)
        return f"{rule.name}: {change.value:g}"


def to_transition(rule: Rule, change: Change) -> Transition:
    """Attach the rule's identity and rendered message to a state change."""
    return Transition(
        rule_id=rule.id,
        kind=change.kind,
        at=change.at,
        value=change.value,
        message=message_for(rule, change),
        severity=rule.severity,
        reason=change.reason,
        fired_at=change.fired_at,
    )


async def recipients(store: Store, channels: Sequence[str]) -> list[str]:
    """Every active subscription, then every configured channel, without duplicates."""
    chats = [str(s.chat_id) for s in await store.subscriptions(active_only=True)]
    return list(dict.fromkeys([*chats, *channels]))


async def evaluate_series(
    store: Store,
    rules: RuleSet,
    series: Iterable[str],
    now: datetime,
    channels: Sequence[str] = (),
) -> Outcome:
    """Evaluate the rules that read the given series; only changes at the newest point are sent.

    History that arrives by backfill or import updates the state silently, so old alerts are
    never replayed into chats.
    """
    wanted = set(series)
    chosen = [rule for rule in rules.rules if rule.series in wanted]
    if not chosen:
        return Outcome()
    states = await store.alert_states()
    new_states: list[AlertState] = []
    transitions: list[Transition] = []
    deliveries: list[tuple[int, str, str]] = []
    chats = await recipients(store, channels)
    for rule in chosen:
        prev = states.get(rule.id)
        since = prev.last_ts if prev and prev.fingerprint == rule.fingerprint else None
        points = await store.observations(rule.series, since=since)
        state, changes = evaluate(rule, prev, points)
        if state != prev:
            new_states.append(state)
        newest = points[-1].ts if points else None
        for change in changes:
            transition = to_transition(rule, change)
            transitions.append(transition)
            if change.at == newest:
                text = render_transition(transition, rule.name, rule.series)
                deliveries.extend((len(transitions) - 1, chat, text) for chat in chats)
    if not new_states and not transitions:
        return Outcome()
    enqueued = await store.record_evaluation(new_states, transitions, deliveries, now)
    for t in transitions:
        log.info("rule %s %s at %s (value %g)", t.rule_id, t.kind.value, t.at.isoformat(), t.value)
    return Outcome(tuple(transitions), enqueued)
