"""After new data: evaluate the rules that read it, persist states, enqueue the deliveries."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.alerts.evaluate import run_composite_live, run_series_rule
from bot.alerts.lifecycle import Change
from bot.alerts.policy import STORM_WINDOW, plan, schedule
from bot.alerts.render import render_transition, resolved_text
from bot.config import DeliverySettings
from bot.engine.conditions import Evaluated
from bot.engine.rules import AnyRule, SeriesRule
from bot.engine.ruleset import RuleSet
from bot.engine.series import Series
from bot.engine.templates import TemplateError, render
from bot.model import AlertState, AlertStatus, Delivery, Transition, TransitionKind, to_epoch
from bot.store import Store

log = logging.getLogger(__name__)
LOOKBACK = timedelta(days=400)
"""History loaded around the newest evaluated point: longer than any default rule's window."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one evaluation pass produced, for logs and tests."""

    transitions: tuple[Transition, ...] = ()
    enqueued: int = 0
    firing: frozenset[str] = frozenset()
    """Every rule firing after the pass (the `alerts_firing` metric)."""


def variables(rule: AnyRule, change: Change, ev: Evaluated | None) -> dict[str, Any]:
    """The names a message template may use: the rule, the change, the condition's variables."""
    out: dict[str, Any] = {
        "id": rule.id,
        "name": rule.name,
        "series": getattr(rule, "series", ""),
        "severity": rule.severity,
        "value": change.value,
        "at": change.at,
        "state": change.kind.state,
        "reason": change.reason,
    }
    if ev is not None and change.index is not None:
        for key, array in ev.variables.items():
            number = float(array[change.index])
            out[key] = None if math.isnan(number) else number
    return out


def message_for(rule: AnyRule, change: Change, ev: Evaluated | None) -> str:
    """Render the rule's template; a broken one falls back to a plain line, never a crash."""
    template = rule.message
    if change.kind is TransitionKind.RESOLVED:
        if not rule.resolved_message:
            return resolved_text(rule.name, change.value, change.at, change.fired_at)
        template = rule.resolved_message
    try:
        return render(template, variables(rule, change, ev))
    except TemplateError as exc:
        log.error("rule %s: %s", rule.id, exc)
        shown = "n/a" if change.value is None else f"{change.value:g}"
        return f"{rule.name}: {shown}"


def to_transition(rule: AnyRule, change: Change, ev: Evaluated | None = None) -> Transition:
    """Attach the rule's identity and rendered message to a state change."""
    return Transition(
        rule_id=rule.id,
        kind=change.kind,
        at=change.at,
        value=change.value,
        message=message_for(rule, change, ev),
        severity=rule.severity,
        reason=change.reason,
        fired_at=change.fired_at,
    )


async def recipients(store: Store, channels: Sequence[str]) -> list[str]:
    """Every active subscription, then every configured channel, without duplicates."""
    chats = [str(chat) for chat in await store.subscriber_ids()]
    return list(dict.fromkeys([*chats, *channels]))


async def _load(
    store: Store, rule: SeriesRule, prev: AlertState | None, cache: dict[str, tuple[int, Series]]
) -> Series:
    """The series around the newest evaluated point; loaded once per pass for all its rules."""
    since = prev.last_ts - LOOKBACK if prev and prev.last_ts else None
    start = to_epoch(since) if since else 0
    cached = cache.get(rule.series)
    if cached is not None and cached[0] <= start:
        first = int(cached[1].ts.searchsorted(start))
        return Series(cached[1].ts[first:], cached[1].values[first:])
    ts, values = await store.series_arrays(rule.series, since)
    series = Series.of(ts, values)
    cache[rule.series] = (start, series)
    return series


def _removed(
    rules: RuleSet, states: dict[str, AlertState], now: datetime
) -> list[tuple[AlertState, Transition]]:
    """Alerts still firing for rules that were deleted from the files resolve, saying so."""
    out = []
    for rule_id, state in states.items():
        if rules.get(rule_id) is None and state.status is AlertStatus.FIRING:
            quiet = replace(state, status=AlertStatus.INACTIVE, since=now, fingerprint="")
            transition = Transition(
                rule_id,
                TransitionKind.RESOLVED,
                now,
                state.value,
                "The rule was removed from the rule files.",
                reason="rule removed",
                fired_at=state.since,
            )
            out.append((quiet, transition))
    return out


def _reminders(
    rules: RuleSet, states: dict[str, AlertState], now: datetime, wanted: set[str] | None
) -> list[tuple[AlertState, Transition]]:
    """Alerts firing longer than their `repeat` since the last notice are told again."""
    out = []
    for rule in rules.rules:
        if rule.repeat is None or (
            wanted is not None and getattr(rule, "series", None) not in wanted
        ):
            continue
        state = states.get(rule.id)
        if state is None or state.status is not AlertStatus.FIRING:
            continue
        last = state.notified_at or state.since
        if last is None or now - last < rule.repeat * rule.repeat_backoff**state.reminders:
            continue
        change = Change(TransitionKind.REMINDER, now, state.value, state.since, "still firing")
        told = replace(state, notified_at=now, reminders=state.reminders + 1)
        out.append((told, to_transition(rule, change)))
    return out


Found = list[tuple[AnyRule, Change, "Evaluated | None", bool]]


async def _step_rules(
    store: Store,
    rules: RuleSet,
    wanted: set[str] | None,
    states: dict[str, AlertState],
    now: datetime,
) -> tuple[dict[str, AlertState], Found]:
    """Run the series rules that read `wanted` (all when None), then every composite."""
    changed: dict[str, AlertState] = {}
    found: Found = []
    cache: dict[str, tuple[int, Series]] = {}
    for rule in rules.series_rules():
        if wanted is not None and rule.series not in wanted:
            continue
        prev = states.get(rule.id)
        state, changes, ev = run_series_rule(rule, prev, await _load(store, rule, prev, cache), now)
        newest = int(ev.series.ts.size) - 1
        found.extend((rule, c, ev, c.index is None or c.index == newest) for c in changes)
        if state != prev:
            states[rule.id] = changed[rule.id] = state
    for composite in rules.composites():
        prev = states.get(composite.id)
        state, changes = run_composite_live(composite, prev, states, now)
        found.extend((composite, c, None, True) for c in changes)
        if state != prev:
            states[composite.id] = changed[composite.id] = state
    return changed, found


Owed = list[tuple[int, Transition, "AnyRule | None", str]]


def _messages(
    rules: RuleSet, found: Found, extra: list[Transition]
) -> tuple[list[Transition], Owed]:
    """Transitions to log, and the rendered message each delivered one owes the chats."""
    transitions: list[Transition] = []
    owed: Owed = []
    for transition in extra:
        transitions.append(transition)
        owner = rules.get(transition.rule_id)
        name = owner.name if owner else transition.rule_id
        where = getattr(owner, "series", "composite") if owner else "rule removed"
        owed.append(
            (len(transitions) - 1, transition, owner, render_transition(transition, name, where))
        )
    for owner, change, evaluated, deliver in found:
        transition = to_transition(owner, change, evaluated)
        transitions.append(transition)
        if deliver:
            text = render_transition(transition, owner.name, getattr(owner, "series", "composite"))
            owed.append((len(transitions) - 1, transition, owner, text))
    return transitions, owed


async def _read_states(
    store: Store, rules: RuleSet, wanted: set[str] | None
) -> tuple[dict[str, AlertState], set[str]]:
    """The states a pass reads, and the rules firing before it.

    A full pass reads every state; a pass over some series only those of the rules reading them
    and of the composites and their members (with 2,000 rules, most rows are not touched).
    """
    if wanted is None:
        states = await store.alert_states()
        return states, {r for r, s in states.items() if s.status is AlertStatus.FIRING}
    needed = {r.id for r in rules.series_rules() if r.series in wanted}
    for composite in rules.composites():
        needed |= {composite.id, *composite.members}
    return await store.alert_states(needed), await store.firing_rules()


async def _deliveries(
    store: Store,
    owed: Owed,
    now: datetime,
    channels: Sequence[str],
    delivery: DeliverySettings | None,
) -> list[Delivery]:
    """Who gets each owed message and when: recipients, the delivery policy, the storm mutes."""
    policy = delivery or DeliverySettings()
    chats = await recipients(store, channels)
    decided = await plan(store, owed, chats, now, policy.storm_limit)
    for chat, rule_id in decided.storm_mutes:
        await store.mute(chat, rule_id, now + STORM_WINDOW, "storm breaker")
    return await schedule(store, decided.deliveries, now, policy.grouping_window)


async def evaluate_series(
    store: Store,
    rules: RuleSet,
    series: Iterable[str] | None,
    now: datetime,
    channels: Sequence[str] = (),
    delivery: DeliverySettings | None = None,
) -> Outcome:
    """Evaluate the rules that read the given series (all when None), then every composite.

    Only changes at a series' newest point, or at `now` (no data, rule edited, composites,
    reminders), are delivered: history that arrives by backfill or import updates state silently.
    """
    wanted = None if series is None else set(series)
    states, firing_before = await _read_states(store, rules, wanted)
    changed, found = await _step_rules(store, rules, wanted, states, now)
    extra: list[Transition] = []
    for state, transition in _removed(rules, states, now) if wanted is None else []:
        states[state.rule_id] = changed[state.rule_id] = state
        extra.append(transition)
    for owner, change, _, deliver in found:
        if deliver and change.kind is TransitionKind.FIRING:
            fresh = replace(states[owner.id], notified_at=now, reminders=0)
            states[owner.id] = changed[owner.id] = fresh
    for state, reminder in _reminders(rules, states, now, wanted):
        states[state.rule_id] = changed[state.rule_id] = state
        extra.append(reminder)
    firing = frozenset(
        {r for r in firing_before if r not in states}
        | {r for r, s in states.items() if s.status is AlertStatus.FIRING}
    )
    if not changed and not found and not extra:
        return Outcome(firing=firing)
    transitions, owed = _messages(rules, found, extra)
    deliveries = await _deliveries(store, owed, now, channels, delivery) if owed else []
    enqueued = await store.record_evaluation(list(changed.values()), transitions, deliveries, now)
    for t in transitions:
        log.info(
            "rule %s %s at %s (%s)", t.rule_id, t.kind.state, t.at.isoformat(), t.reason or "-"
        )
    return Outcome(tuple(transitions), enqueued, firing)
