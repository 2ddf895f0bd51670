"""The `AlertLog` role in SQL: rule states, the transition log, and the outbox rows they owe."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from bot.model import (
    AlertState,
    AlertStatus,
    Delivery,
    Transition,
    TransitionKind,
    from_epoch,
    to_epoch,
)
from bot.store import schema as db
from bot.store.sql.base import CHUNK, PENDING, SqlBase, chunks, epoch, when


class SqlAlertLog(SqlBase):
    """States replaced per rule, transitions appended, deliveries enqueued in one transaction."""

    _decoded: dict[str, tuple[tuple[Any, ...], AlertState]] | None = None

    async def alert_states(self, rule_ids: Collection[str] | None = None) -> dict[str, AlertState]:
        """Return the persisted state of every rule that has one, or of the rules named.

        Every evaluation reads them, and most rows have not changed since the last read: a row
        identical to the one read before gives back the same (frozen) state instead of being
        decoded again, which is most of the read's time with thousands of rules.
        """
        s = db.alert_states
        if rule_ids is None:
            rows = list(await self._fetch(select(s)))
        else:
            ids = sorted(set(rule_ids))
            rows = []
            for lo in range(0, len(ids), CHUNK):  # within every driver's bound-parameter limit
                rows.extend(
                    await self._fetch(select(s).where(s.c.rule_id.in_(ids[lo : lo + CHUNK])))
                )
        before = self._decoded or {}
        decoded = {} if rule_ids is None else dict(before)  # a full read forgets deleted rows
        out: dict[str, AlertState] = {}
        for r in rows:
            raw = tuple(r)
            known = before.get(r.rule_id)
            entry = known if known and known[0] == raw else (raw, _state_from(r))
            decoded[r.rule_id] = entry
            out[r.rule_id] = entry[1]
        self._decoded = decoded
        return out

    async def firing_rules(self) -> set[str]:
        """The rules whose persisted state is firing."""
        s = db.alert_states
        query = select(s.c.rule_id).where(s.c.status == str(AlertStatus.FIRING))
        return {r.rule_id for r in await self._fetch(query)}

    async def record_evaluation(
        self,
        states: Sequence[AlertState],
        transitions: Sequence[Transition],
        deliveries: Sequence[Delivery],
        now: datetime,
    ) -> int:
        """In one transaction: save states, log transitions, enqueue outbox rows; count the rows."""
        at = to_epoch(now)
        state_rows = [_state_row(s, at) for s in states]
        transition_rows = [_transition_row(tr, at) for tr in transitions]
        async with self._writer.begin() as conn:
            for chunk in chunks(state_rows):
                await conn.execute(self._replace(db.alert_states, ("rule_id",)), chunk)
            ids: list[int] = []
            for chunk in chunks(transition_rows):
                stmt = insert(db.transitions).returning(
                    db.transitions.c.id, sort_by_parameter_order=True
                )
                ids.extend((await conn.execute(stmt, chunk)).scalars())
            for delivery in deliveries:
                index = delivery.transition_index
                if not 0 <= index < len(ids):  # raising here rolls back the states and transitions
                    raise IndexError(f"delivery refers to transition {index} of {len(ids)}")
            await self._insert_columns(
                conn, db.outbox, _outbox_columns(transitions, ids, deliveries, at)
            )
        return len(deliveries)

    async def newest_due(self, chats: Collection[str], since: datetime) -> dict[str, datetime]:
        """The newest `not_before` per chat among messages due after `since`, in one query.

        The chats are picked out here, not in SQL: the rows due after `since` are the window's
        few (ix_outbox_not_before finds them), and a fan-out's thousands of chats as an IN list
        would run into the drivers' limits on bound parameters.
        """
        o = db.outbox
        query = (
            select(o.c.chat_id, func.max(o.c.not_before))
            .where(o.c.not_before > to_epoch(since), o.c.kind != str(TransitionKind.RESOLVED))
            .group_by(o.c.chat_id)
        )
        wanted = set(chats)
        rows = await self._fetch(query)
        return {chat: from_epoch(newest) for chat, newest in rows if chat in wanted}

    async def transitions(self, limit: int = 50) -> list[Transition]:
        """Return the most recent transitions, newest first."""
        t = db.transitions
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        rows = await self._fetch(query)
        return [
            Transition(
                r.rule_id,
                TransitionKind(r.kind),
                from_epoch(r.at),
                r.value,
                r.message,
                r.severity,
                r.reason,
                when(r.fired_at),
            )
            for r in rows
        ]


def _outbox_columns(
    transitions: Sequence[Transition], ids: list[int], deliveries: Sequence[Delivery], at: int
) -> dict[str, list[Any]]:
    """The outbox rows the deliveries owe, column by column (a fan-out has 100k of them)."""
    epochs = {d.not_before: 0 for d in deliveries}  # a fan-out's rows share a few due moments
    for moment in epochs:
        epochs[moment] = to_epoch(moment)
    tr = [transitions[d.transition_index] for d in deliveries]
    tid = [ids[d.transition_index] for d in deliveries]
    chats = [str(d.chat_id) for d in deliveries]
    n = len(deliveries)
    return {
        "key": [f"{i}:{chat}" for i, chat in zip(tid, chats, strict=True)],
        "transition_id": tid,
        "chat_id": chats,
        "rule_id": [t.rule_id for t in tr],
        "kind": [str(t.kind) for t in tr],
        "text": [d.text for d in deliveries],
        "status": [PENDING] * n,
        "attempts": [0] * n,
        "not_before": [epochs[d.not_before] for d in deliveries],
        "error": [""] * n,
        "created_at": [at] * n,
    }


def _state_row(state: AlertState, at: int) -> dict[str, Any]:
    detail = {
        "pending_count": state.pending_count,
        "cleared_at": epoch(state.cleared_at),
        "last_fired_at": epoch(state.last_fired_at),
        "notified_at": epoch(state.notified_at),
        "reminders": state.reminders,
    }
    return {
        "rule_id": state.rule_id,
        "status": str(state.status),
        "since": epoch(state.since),
        "value": state.value,
        "last_ts": epoch(state.last_ts),
        "fingerprint": state.fingerprint,
        "updated_at": at,
        "detail": json.dumps(detail),
    }


def _state_from(r: Any) -> AlertState:
    """Rebuild an AlertState, tolerating rows written before the detail column existed."""
    detail = json.loads(r.detail or "{}")
    return AlertState(
        r.rule_id,
        AlertStatus(r.status),
        when(r.since),
        r.value,
        when(r.last_ts),
        r.fingerprint,
        pending_count=int(detail.get("pending_count", 0)),
        cleared_at=when(detail.get("cleared_at")),
        last_fired_at=when(detail.get("last_fired_at")),
        notified_at=when(detail.get("notified_at")),
        reminders=int(detail.get("reminders", 0)),
    )


def _transition_row(tr: Transition, at: int) -> dict[str, Any]:
    return {
        "rule_id": tr.rule_id,
        "kind": str(tr.kind),
        "at": to_epoch(tr.at),
        "value": tr.value,
        "message": tr.message,
        "severity": tr.severity,
        "reason": tr.reason,
        "fired_at": epoch(tr.fired_at),
        "created_at": at,
    }
