"""Who is told about a transition, and when: mutes, the notification log, the storm breaker and
the grouping window.

See docs/architecture.md, "Delivery".
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.engine.rules import AnyRule
from bot.model import Delivery, Transition, TransitionKind
from bot.store import AlertLog, Audience

STORM_WINDOW = timedelta(hours=1)


@dataclass
class Plan:
    """The outbox rows owed for one evaluation pass, and the mutes the storm breaker set."""

    deliveries: list[tuple[int, str, str]] = field(default_factory=list)
    storm_mutes: list[tuple[str, str]] = field(default_factory=list)


def targets(rule: AnyRule | None, rule_id: str) -> set[str]:
    """What a mute or a filter may name to mean this rule: its id and its tags."""
    return {rule_id} | {f"tag:{t}" for t in (rule.tags if rule else [])}


def wanted(chat_filter: set[str] | None, rule: AnyRule | None, rule_id: str) -> bool:
    """A chat without a filter wants everything; with one, only the rules and tags it names."""
    return not chat_filter or not chat_filter.isdisjoint(targets(rule, rule_id))


def storm_notice(name: str, limit: int) -> str:
    """The one message a storm leaves behind."""
    return (
        f"🔇 <b>{html.escape(name)}</b> sent {limit} alerts here in the last hour: "
        "muted for an hour. /unmute to hear it again now."
    )


async def plan(
    store: Audience,
    owed: Sequence[tuple[int, Transition, AnyRule | None, str]],
    chats: Sequence[str],
    now: datetime,
    storm_limit: int,
) -> Plan:
    """Decide, per transition and chat, whether to send, skip, or send the storm notice.

    A resolve or reminder goes only to chats that were told the alert fired; muted chats are
    skipped, and so are chats whose filter does not name the rule or its tags (except for the
    follow-ups of an alert they were told about); the `storm_limit + 1`-th message of a rule in
    an hour becomes a notice and a mute.
    """
    mutes = await store.mutes(now)
    filters = await store.filters()
    out = Plan()
    counts: dict[str, dict[str, int]] = {}
    told: dict[str, dict[str, datetime]] = {}
    for index, transition, rule, text in owed:
        rid = transition.rule_id
        if rid not in counts:
            counts[rid] = await store.sent_counts(rid, now - STORM_WINDOW)
            told[rid] = await store.notified(rid)
        follow_up = transition.kind in (TransitionKind.RESOLVED, TransitionKind.REMINDER)
        fired, told_here, sent_here = transition.fired_at, told[rid], counts[rid]
        names = targets(rule, rid)  # once per transition, not per chat (fan-outs)
        mutable = names | {"all"}
        for chat in chats:
            chat_mutes = mutes.get(chat)
            if chat_mutes and not mutable.isdisjoint(chat_mutes):
                continue
            if follow_up:
                if chat not in told_here or (fired and told_here[chat] < fired):
                    continue
            else:
                chat_filter = filters.get(chat)
                if chat_filter and chat_filter.isdisjoint(names):
                    continue
            sent = sent_here.get(chat, 0)
            if sent >= storm_limit:
                out.storm_mutes.append((chat, rid))
                mutes.setdefault(chat, {})[rid] = now + STORM_WINDOW
                text_here = storm_notice(rule.name if rule else rid, storm_limit)
            else:
                text_here = text
            sent_here[chat] = sent + 1
            out.deliveries.append((index, chat, text_here))
    return out


def due_at(now: datetime, newest: datetime | None, window: timedelta) -> datetime:
    """When a chat's new messages are due, given when its newest message was or is due.

    Leading edge: with nothing due within the last `window`, at once. A message still waiting
    is joined, so everything arriving inside a window leaves together when it ends; otherwise
    the new ones wait for the end of the window the newest message opened. A window of zero
    turns grouping off.
    """
    if newest is None or window <= timedelta(0):
        return now
    if newest > now:
        return newest
    return max(now, newest + window)


async def schedule(
    store: AlertLog, owed: Sequence[tuple[int, str, str]], now: datetime, window: timedelta
) -> list[Delivery]:
    """Give each owed (transition index, chat, text) its chat's due time, with one store read."""
    chats = {chat for _, chat, _ in owed}
    newest = await store.newest_due(chats, now - window) if window > timedelta(0) and chats else {}
    due = {chat: due_at(now, at, window) for chat, at in newest.items()}  # the rest: now
    return [Delivery(index, chat, text, due.get(chat, now)) for index, chat, text in owed]
