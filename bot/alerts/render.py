"""Transitions → Telegram HTML; every value from a rule file or a source is escaped."""

from __future__ import annotations

import html
from datetime import datetime

from bot.durations import format_duration
from bot.keys import DEFAULT_ICON, SEVERITY_ICONS
from bot.model import Transition, TransitionKind


def _when(at: datetime) -> str:
    """Daily points show as a date, intraday ones with the UTC time."""
    if (at.hour, at.minute, at.second) == (0, 0, 0):
        return at.strftime("%Y-%m-%d")
    return at.strftime("%Y-%m-%d %H:%M UTC")


def resolved_text(name: str, value: float | None, at: datetime, fired_at: datetime | None) -> str:
    """A rule without `resolved_message` still says it resolved, never its firing text again."""
    shown = "" if value is None else f" at {value:,.10g}"
    lasted = "" if fired_at is None else f" after {format_duration(at - fired_at)}"
    return f"Resolved: {name}{shown}{lasted}"


def render_transition(transition: Transition, name: str, series: str) -> str:
    """Render an alert or its resolution as one HTML message."""
    title = html.escape(name)
    body = html.escape(transition.message)
    footer = f"<i>{html.escape(series)} · {_when(transition.at)}</i>"
    if transition.kind is TransitionKind.REMINDER:
        lasted = ""
        if transition.fired_at is not None:
            lasted = f" for {format_duration(transition.at - transition.fired_at)}"
        return f"🔁 <b>Still firing: {title}</b>{lasted}\n{body}\n{footer}"
    if transition.kind is TransitionKind.FIRING:
        icon = SEVERITY_ICONS.get(transition.severity, DEFAULT_ICON)
        return f"{icon} <b>{title}</b>\n{body}\n{footer}"
    lasted = ""
    if transition.fired_at is not None:
        lasted = f" after {format_duration(transition.at - transition.fired_at)}"
    reason = f" ({html.escape(transition.reason)})" if transition.reason else ""
    if transition.message == resolved_text(
        name, transition.value, transition.at, transition.fired_at
    ):  # no resolved_message: the heading says it all, with the value
        shown = "" if transition.value is None else f" at {transition.value:,.10g}"
        return f"✅ <b>Resolved: {title}</b>{shown}{lasted}{reason}\n{footer}"
    return f"✅ <b>Resolved: {title}</b>{lasted}{reason}\n{body}\n{footer}"
