"""HTML for the read-only commands and the /subscribe keyboards; every dynamic value escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime

from bot.delivery.notifier import Keyboard
from bot.durations import format_duration
from bot.engine.ruleset import RuleSet
from bot.model import AlertState, AlertStatus, Transition, TransitionKind
from bot.sources.status import SourceStatus

SUBSCRIBE, UNSUBSCRIBE = "sub", "unsub"
_MAX_DATA = 64  # bytes of callback_data Telegram accepts
_ICONS = {AlertStatus.FIRING: "🔴", AlertStatus.PENDING: "🟡", AlertStatus.INACTIVE: "🟢"}


def _when(moment: datetime | None, now: datetime) -> str:
    """`since 3h ago` in words people read at a glance."""
    if moment is None:
        return ""
    return f" for {format_duration(now - moment)}" if now > moment else " since now"


def rules_text(rules: RuleSet, states: dict[str, AlertState], now: datetime) -> str:
    """Each rule with its state and how long it has been in it."""
    if not rules.rules:
        return "No rules are loaded."
    lines = ["<b>Rules</b>"]
    for rule in rules.rules:
        state = states.get(rule.id) or AlertState(rule.id)
        tags = " ".join(f"#{html.escape(t)}" for t in rule.tags)
        lines.append(
            f"{_ICONS[state.status]} <b>{html.escape(rule.name)}</b> "
            f"(<code>{html.escape(rule.id)}</code>) {state.status.value}"
            f"{_when(state.since, now)} {tags}".rstrip()
        )
    return "\n".join(lines)


def status_text(statuses: Sequence[SourceStatus]) -> str:
    """Source health as a monospace table."""
    if not statuses:
        return "No sources are enabled."
    body = "\n".join(html.escape(s.line()) for s in statuses)
    return f"<b>Sources</b>\n<pre>{body}</pre>"


def history_text(transitions: Sequence[Transition], rules: RuleSet) -> str:
    """Recent alerts, newest first, one line each."""
    if not transitions:
        return "No alerts yet."
    lines = ["<b>Recent alerts</b>"]
    for t in transitions:
        rule = rules.get(t.rule_id)
        name = rule.name if rule else t.rule_id
        icon = "✅" if t.kind is TransitionKind.RESOLVED else "🔴"
        reason = f" — {html.escape(t.reason)}" if t.reason else ""
        lines.append(
            f"{t.at:%Y-%m-%d %H:%M} UTC {icon} <b>{html.escape(name)}</b> {t.kind.state}{reason}"
        )
    return "\n".join(lines)


def filter_text(chosen: Iterable[str]) -> str:
    """What a chat receives now, in one line."""
    names = sorted(chosen)
    if not names:
        return "This chat receives <b>every</b> alert."
    shown = ", ".join(f"<code>{html.escape(n)}</code>" for n in names)
    return f"This chat receives only: {shown}."


def callback_data(action: str, target: str) -> str | None:
    """`sub:tag:etf`; None when Telegram would refuse it (over 64 bytes)."""
    data = f"{action}:{target}"
    return data if len(data.encode()) <= _MAX_DATA else None


def keyboard(action: str, targets: Sequence[str], chosen: set[str]) -> Keyboard:
    """Two buttons a row, `all` first; chosen targets are ticked (`all` when nothing is)."""
    buttons = []
    for target in ["all", *targets]:
        data = callback_data(action, target)
        if data is None:
            continue
        label = f"#{target[4:]}" if target.startswith("tag:") else target
        label = "everything" if target == "all" else label
        tick = "✅ " if target in chosen or (target == "all" and not chosen) else ""
        buttons.append((f"{tick}{label}", data))
    return tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))


def choose(current: set[str], target: str) -> set[str]:
    """Add a target to a filter; `all` clears it, which means every alert."""
    return set() if target == "all" else current | {target}


def drop(current: set[str], target: str, rules: RuleSet) -> set[str] | None:
    """Remove a target from a filter; None when nothing is left (the chat stops alerts).

    An empty filter means everything, so dropping from it keeps every rule the target is not.
    """
    if target == "all":
        return None
    if not current:
        current = {r.id for r in rules.rules if target not in {r.id, *(f"tag:{t}" for t in r.tags)}}
    left = current - {target}
    return left or None
