"""The `Store` on SQLAlchemy Core: SQLite by default, PostgreSQL when several replicas share one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Executable,
    Row,
    Select,
    Table,
    and_,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.digest.schedule import DIGEST_LEASE, next_digest_at
from bot.model import (
    CHANNELS_ROW,
    OFF,
    AlertState,
    AlertStatus,
    ChatKind,
    Clock,
    DigestSchedule,
    Observation,
    OutboxItem,
    SourceHealth,
    Subscription,
    Transition,
    TransitionKind,
    from_epoch,
    system_clock,
    to_epoch,
)
from bot.store import migrations
from bot.store import schema as db
from bot.timezones import zone

PENDING, SENT, FAILED = "pending", "sent", "failed"
CLAIM_LEASE_SECONDS = 600
CHUNK = 500
"""Rows per executemany call, so a huge import never builds one giant batch of parameters."""
SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "stablewatch_begin"

Upsert = sqlite.Insert | postgresql.Insert


def _epoch(ts: datetime | None) -> int | None:
    return None if ts is None else to_epoch(ts)


def _when(seconds: int | None) -> datetime | None:
    return None if seconds is None else from_epoch(seconds)


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def _prepare_sqlite(url: URL, engine: AsyncEngine) -> None:
    """Create the database's folder; make SQLite wait for locks and emit our own BEGIN."""
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's implicit transactions skip DDL and SELECTs; we BEGIN ourselves instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


class SqlStore:
    """The one `Store` implementation; dialect differences stay inside this class."""

    def __init__(self, url: str, *, clock: Clock = system_clock) -> None:
        parsed = make_url(url)
        self._dialect = parsed.get_backend_name()
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self._dialect!r}: use sqlite or postgresql")
        self._clock = clock
        self._engine = create_async_engine(parsed)
        # Writers take SQLite's write lock up front: a deferred transaction that reads and then
        # writes fails with "database is locked" instead of waiting when another writer got there.
        self._writer = self._engine
        if self._dialect == "sqlite":
            _prepare_sqlite(parsed, self._engine)
            self._writer = self._engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})

    @property
    def engine(self) -> AsyncEngine:
        """Expose the engine for jobs that need the database directly (leader lease, digests)."""
        return self._engine

    def _upsert(self, table: Table) -> Upsert:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _replace(self, table: Table, keys: Sequence[str]) -> Upsert:
        """INSERT … ON CONFLICT (keys) DO UPDATE every other column from the new row."""
        stmt = self._upsert(table)
        new = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=new)

    async def _fetch(self, query: Executable) -> Sequence[Row[Any]]:
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).all()

    async def _count(self, query: Select[tuple[int]]) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def _write(self, stmt: Executable) -> int:
        async with self._writer.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    async def migrate(self) -> int:
        """Bring the schema to the newest version; return that version."""
        async with self._writer.begin() as conn:
            return await migrations.migrate(conn)

    async def close(self) -> None:
        """Release connections."""
        await self._engine.dispose()

    # observations -------------------------------------------------------------------------------
    async def upsert_observations(self, observations: Sequence[Observation]) -> int:
        """Insert points in one transaction; a later point at the same (series, ts) wins."""
        rows = [{"series": o.series, "ts": to_epoch(o.ts), "value": o.value} for o in observations]
        if not rows:
            return 0
        stmt = self._replace(db.observations, ("series", "ts"))
        async with self._writer.begin() as conn:
            for chunk in _chunks(rows):
                await conn.execute(stmt, chunk)
        return len(rows)

    async def observations(
        self, series: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Observation]:
        """Return one series' points in time order, optionally within [since, until]."""
        t = db.observations
        query = select(t.c.ts, t.c.value).where(t.c.series == series).order_by(t.c.ts)
        if since is not None:
            query = query.where(t.c.ts >= to_epoch(since))
        if until is not None:
            query = query.where(t.c.ts <= to_epoch(until))
        rows = await self._fetch(query)
        return [Observation(series, from_epoch(r.ts), r.value) for r in rows]

    async def series_arrays(
        self, series: str, since: datetime | None = None
    ) -> tuple[list[int], list[float]]:
        """Epoch seconds and values as plain lists: the evaluation hot path skips datetimes."""
        t = db.observations
        query = select(t.c.ts, t.c.value).where(t.c.series == series).order_by(t.c.ts)
        if since is not None:
            query = query.where(t.c.ts >= to_epoch(since))
        rows = await self._fetch(query)
        return [r[0] for r in rows], [r[1] for r in rows]

    async def latest(self, series: str) -> Observation | None:
        """Return the newest point of a series."""
        t = db.observations
        query = (
            select(t.c.ts, t.c.value).where(t.c.series == series).order_by(t.c.ts.desc()).limit(1)
        )
        rows = await self._fetch(query)
        return Observation(series, from_epoch(rows[0].ts), rows[0].value) if rows else None

    async def series_names(self) -> list[str]:
        """Every series with at least one point, sorted (to suggest names in `/chart`)."""
        t = db.observations
        return [
            r.series for r in await self._fetch(select(t.c.series).distinct().order_by(t.c.series))
        ]

    async def count_observations(self, series: str | None = None) -> int:
        """Count points, of one series or all."""
        t = db.observations
        query = select(func.count()).select_from(t)
        if series is not None:
            query = query.where(t.c.series == series)
        return await self._count(query)

    async def iter_observations(self) -> AsyncIterator[Observation]:
        """Stream every point ordered by series then time, without loading them all."""
        t = db.observations
        query = select(t.c.series, t.c.ts, t.c.value).order_by(t.c.series, t.c.ts)
        async with self._engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=CHUNK))
            async for row in result:
                yield Observation(row.series, from_epoch(row.ts), row.value)

    # subscriptions ------------------------------------------------------------------------------
    async def subscribe(self, chat_id: int, kind: ChatKind, title: str, now: datetime) -> bool:
        """Activate a chat's subscription, keeping its settings; True if it was not active."""
        t, at = db.subscriptions, to_epoch(now)
        fresh = self._upsert(t).values(
            chat_id=chat_id, kind=str(kind), title=title, active=True, created_at=at, updated_at=at
        )
        async with self._writer.begin() as conn:
            if (await conn.execute(fresh.on_conflict_do_nothing())).rowcount == 1:
                return True
            changes = {"kind": str(kind), "title": title, "active": True, "updated_at": at}
            where = t.c.chat_id == chat_id
            revive = update(t).where(where, t.c.active.is_(False)).values(**changes)
            if (await conn.execute(revive)).rowcount == 1:
                return True
            await conn.execute(update(t).where(where).values(**changes))
            return False

    async def unsubscribe(self, chat_id: int) -> bool:
        """Deactivate a chat's subscription, keeping the row; True if it was active."""
        t = db.subscriptions
        stmt = (
            update(t)
            .where(t.c.chat_id == chat_id, t.c.active.is_(True))
            .values(active=False, updated_at=to_epoch(self._clock()), next_digest_at=None)
        )
        return await self._write(stmt) == 1

    async def move_subscription(self, old_chat_id: int, new_chat_id: int) -> bool:
        """A group became a supergroup: its subscription (and mutes) follow the new id."""
        t, m = db.subscriptions, db.mutes
        async with self._writer.begin() as conn:
            taken = (
                await conn.execute(select(t.c.chat_id).where(t.c.chat_id == new_chat_id))
            ).first()
            if taken is not None:
                await conn.execute(update(t).where(t.c.chat_id == old_chat_id).values(active=False))
            else:
                await conn.execute(
                    update(t).where(t.c.chat_id == old_chat_id).values(chat_id=new_chat_id)
                )
            for table in (m, db.chat_filters):
                await conn.execute(
                    update(table)
                    .where(table.c.chat_id == str(old_chat_id))
                    .values(chat_id=str(new_chat_id))
                )
            moved = await conn.execute(
                update(db.outbox)
                .where(db.outbox.c.chat_id == str(old_chat_id), db.outbox.c.status == PENDING)
                .values(chat_id=str(new_chat_id))
            )
        return bool(moved.rowcount) or taken is None

    async def mute(self, chat_id: str, target: str, until: datetime, reason: str = "") -> None:
        """Mute a rule id, `tag:<tag>` or `all` for a chat until a moment (replacing any mute)."""
        m = db.mutes
        row = {"chat_id": chat_id, "target": target, "until": to_epoch(until), "reason": reason}
        await self._write(self._replace(m, ("chat_id", "target")).values(**row))

    async def unmute(self, chat_id: str, target: str | None = None) -> int:
        """Lift one mute, or all of a chat's mutes; return how many were lifted."""
        m = db.mutes
        stmt = delete(m).where(m.c.chat_id == chat_id)
        if target is not None:
            stmt = stmt.where(m.c.target == target)
        return await self._write(stmt)

    async def mutes(self, now: datetime) -> dict[str, dict[str, datetime]]:
        """Active mutes: chat id → target → until."""
        m = db.mutes
        rows = await self._fetch(select(m).where(m.c.until > to_epoch(now)))
        out: dict[str, dict[str, datetime]] = {}
        for r in rows:
            out.setdefault(r.chat_id, {})[r.target] = from_epoch(r.until)
        return out

    async def set_filter(self, chat_id: str, targets: Sequence[str]) -> None:
        """Replace a chat's filter in one transaction; no targets means every alert."""
        f = db.chat_filters
        rows = [{"chat_id": chat_id, "target": t} for t in dict.fromkeys(targets)]
        async with self._writer.begin() as conn:
            await conn.execute(delete(f).where(f.c.chat_id == chat_id))
            if rows:
                await conn.execute(insert(f), rows)

    async def filters(self) -> dict[str, set[str]]:
        """Chats with a filter: chat id → the rule ids and `tag:<tag>` it receives."""
        out: dict[str, set[str]] = {}
        for r in await self._fetch(select(db.chat_filters)):
            out.setdefault(r.chat_id, set()).add(r.target)
        return out

    async def sent_counts(self, rule_id: str, since: datetime) -> dict[str, int]:
        """Messages enqueued per chat for a rule since a moment, in one query (fan-outs)."""
        o = db.outbox
        query = (
            select(o.c.chat_id, func.count())
            .where(o.c.rule_id == rule_id, o.c.created_at >= to_epoch(since))
            .group_by(o.c.chat_id)
        )
        return {r[0]: int(r[1]) for r in await self._fetch(query)}

    async def notified(self, rule_id: str) -> dict[str, datetime]:
        """When each chat was last told about a rule (the notification log), in one query."""
        n = db.notification_log
        rows = await self._fetch(select(n.c.chat_id, n.c.sent_at).where(n.c.rule_id == rule_id))
        return {r[0]: from_epoch(r[1]) for r in rows}

    async def sent_count(self, rule_id: str, chat_id: str, since: datetime) -> int:
        """Messages enqueued for (rule, chat) since a moment: the storm breaker's count."""
        o = db.outbox
        query = select(func.count()).where(
            o.c.rule_id == rule_id, o.c.chat_id == chat_id, o.c.created_at >= to_epoch(since)
        )
        rows = await self._fetch(query)
        return int(rows[0][0])

    async def subscriptions(self, active_only: bool = True) -> list[Subscription]:
        """Return subscriptions, ordered by chat id."""
        t = db.subscriptions
        query = select(t).order_by(t.c.chat_id)
        if active_only:
            query = query.where(t.c.active.is_(True))
        rows = await self._fetch(query)
        return [
            Subscription(
                r.chat_id, ChatKind(r.kind), r.title, bool(r.active), from_epoch(r.created_at)
            )
            for r in rows
        ]

    # daily digest schedule (design §6) --------------------------------------------------------
    async def digest_schedule(self, chat_id: int) -> DigestSchedule | None:
        """A chat's digest time, zone and next due moment; None if it never subscribed."""
        t = db.subscriptions
        rows = await self._fetch(select(t).where(t.c.chat_id == chat_id))
        return _schedule(rows[0]) if rows else None

    async def set_digest(
        self, chat_id: int, time: str | None, timezone: str | None, next_at: datetime | None
    ) -> bool:
        """Store a chat's digest settings and next due moment; False if the chat has no row."""
        t = db.subscriptions
        values = {"digest_time": time, "timezone": timezone, "next_digest_at": _epoch(next_at)}
        return await self._write(update(t).where(t.c.chat_id == chat_id).values(**values)) == 1

    async def schedule_new_digests(
        self, time: str, timezone: str, now: datetime, *, with_channels: bool = False
    ) -> int:
        """Give active chats without a schedule the default one (once, by compare-and-set).

        `with_channels` keeps the channels' row (chat id 0, inactive so no alert goes to it)
        at the default time.
        """
        t = db.subscriptions
        async with self._writer.begin() as conn:
            if with_channels:
                await self._keep_channels_row(conn, time, timezone, now)
            wanted = or_(t.c.active.is_(True), t.c.chat_id == CHANNELS_ROW)
            unset = and_(
                t.c.next_digest_at.is_(None), or_(t.c.digest_time.is_(None), t.c.digest_time != OFF)
            )
            rows = (await conn.execute(select(t).where(wanted, unset))).all()
            done = 0
            for r in rows:
                hhmm, tz = r.digest_time or time, _zone_or(r.timezone, timezone)
                values = {
                    "digest_time": hhmm,
                    "timezone": tz,
                    "next_digest_at": to_epoch(next_digest_at(hhmm, tz, now)),
                }
                stmt = update(t).where(t.c.chat_id == r.chat_id, t.c.next_digest_at.is_(None))
                done += (await conn.execute(stmt.values(**values))).rowcount
        return done

    async def _keep_channels_row(
        self, conn: AsyncConnection, time: str, timezone: str, now: datetime
    ) -> None:
        """Create the channels' schedule row, or move it when the default time changed."""
        t, at = db.subscriptions, to_epoch(now)
        row = {
            "chat_id": CHANNELS_ROW,
            "kind": str(ChatKind.CHANNEL),
            "title": "telegram.channels",
            "active": False,
            "created_at": at,
            "updated_at": at,
        }
        await conn.execute(self._upsert(t).values(**row).on_conflict_do_nothing())
        moved = or_(
            t.c.digest_time.is_(None),
            t.c.digest_time != time,
            t.c.timezone.is_(None),
            t.c.timezone != timezone,
        )
        values = {
            "digest_time": time,
            "timezone": timezone,
            "next_digest_at": to_epoch(next_digest_at(time, timezone, now)),
        }
        await conn.execute(update(t).where(t.c.chat_id == CHANNELS_ROW, moved).values(**values))

    async def claim_due_digests(
        self, now: datetime, lease: timedelta = DIGEST_LEASE, limit: int = 200
    ) -> list[DigestSchedule]:
        """Take due digests by moving `next_at` to the end of a lease, compare-and-set on the old.

        The returned schedules carry the lease's end as `next_at`: `finish_digest` moves it to
        the next local day once sent; a sender killed meanwhile leaves it due again when the
        lease ends. A digest missed for days is returned once, and two workers never both win.
        """
        t, at = db.subscriptions, to_epoch(now)
        wanted = or_(t.c.active.is_(True), t.c.chat_id == CHANNELS_ROW)
        due = select(t).where(wanted, t.c.next_digest_at <= at, t.c.digest_time != OFF)
        until = now + lease
        claimed: list[DigestSchedule] = []
        async with self._writer.begin() as conn:
            rows = (await conn.execute(due.order_by(t.c.next_digest_at).limit(limit))).all()
            for r in rows:
                stmt = update(t).where(
                    t.c.chat_id == r.chat_id, t.c.next_digest_at == r.next_digest_at
                )
                if (await conn.execute(stmt.values(next_digest_at=to_epoch(until)))).rowcount == 1:
                    tz = _zone_or(r.timezone, "UTC")
                    claimed.append(DigestSchedule(r.chat_id, r.digest_time, tz, until))
        return claimed

    async def finish_digest(self, claimed: DigestSchedule, now: datetime) -> bool:
        """A claimed digest went out: schedule the next local day, unless the chat changed it."""
        t = db.subscriptions
        if claimed.digest_time is None or claimed.digest_time == OFF:
            return False
        later = next_digest_at(claimed.digest_time, _zone_or(claimed.timezone, "UTC"), now)
        stmt = update(t).where(
            t.c.chat_id == claimed.chat_id, t.c.next_digest_at == _epoch(claimed.next_at)
        )
        return await self._write(stmt.values(next_digest_at=to_epoch(later))) == 1

    async def release_digest(self, claimed: DigestSchedule, retry_at: datetime) -> bool:
        """Make a claimed digest due again at `retry_at` (delivery failed), unless it changed."""
        t = db.subscriptions
        stmt = update(t).where(
            t.c.chat_id == claimed.chat_id, t.c.next_digest_at == _epoch(claimed.next_at)
        )
        return await self._write(stmt.values(next_digest_at=to_epoch(retry_at))) == 1

    # alert state and transitions ----------------------------------------------------------------
    async def alert_states(self) -> dict[str, AlertState]:
        """Return the persisted state of every rule that has one."""
        rows = await self._fetch(select(db.alert_states))
        return {r.rule_id: _state_from(r) for r in rows}

    async def record_evaluation(
        self,
        states: Sequence[AlertState],
        transitions: Sequence[Transition],
        deliveries: Sequence[tuple[int, str, str]],
        now: datetime,
        not_before: datetime | None = None,
    ) -> int:
        """In one transaction: save states, log transitions, enqueue outbox rows; count the rows."""
        at = to_epoch(now)
        state_rows = [_state_row(s, at) for s in states]
        transition_rows = [_transition_row(tr, at) for tr in transitions]
        async with self._writer.begin() as conn:
            for chunk in _chunks(state_rows):
                await conn.execute(self._replace(db.alert_states, ("rule_id",)), chunk)
            ids: list[int] = []
            for chunk in _chunks(transition_rows):
                stmt = insert(db.transitions).returning(
                    db.transitions.c.id, sort_by_parameter_order=True
                )
                ids.extend((await conn.execute(stmt, chunk)).scalars())
            outbox_rows: list[dict[str, Any]] = []
            for index, chat_id, text in deliveries:
                if not 0 <= index < len(ids):  # raising here rolls back the states and transitions
                    raise IndexError(f"delivery refers to transition {index} of {len(ids)}")
                tr = transitions[index]
                outbox_rows.append(
                    {
                        "key": f"{ids[index]}:{chat_id}",
                        "transition_id": ids[index],
                        "chat_id": str(chat_id),
                        "rule_id": tr.rule_id,
                        "kind": str(tr.kind),
                        "text": text,
                        "status": PENDING,
                        "attempts": 0,
                        "not_before": to_epoch(not_before) if not_before else at,
                        "error": "",
                        "created_at": at,
                    }
                )
            for chunk in _chunks(outbox_rows):
                await conn.execute(insert(db.outbox), chunk)
        return len(outbox_rows)

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
                _when(r.fired_at),
            )
            for r in rows
        ]

    # outbox -------------------------------------------------------------------------------------
    async def claim_outbox(self, worker: str, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Claim due, unsent rows by compare-and-set so two senders never take the same row."""
        if limit <= 0:
            return []
        o, log, at = db.outbox, db.notification_log, to_epoch(now)
        # a claim older than the lease belongs to a sender that died: take the row over
        free = or_(o.c.claimed_by.is_(None), o.c.claimed_at < at - CLAIM_LEASE_SECONDS)
        due = (
            select(o.c.id)
            .where(o.c.status == PENDING, free, o.c.not_before <= at)
            .order_by(o.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite has one writer anyway
        )
        claim = update(o).values(claimed_by=worker, claimed_at=at)
        async with self._writer.begin() as conn:
            ids = list((await conn.execute(due)).scalars())
            if not ids:
                return []
            await conn.execute(claim.where(o.c.id.in_(ids), free, o.c.status == PENDING))
            joined = o.outerjoin(
                log, and_(log.c.rule_id == o.c.rule_id, log.c.chat_id == o.c.chat_id)
            )
            mine = (
                select(o, log.c.message_id.label("logged_message_id"))
                .select_from(joined)
                .where(o.c.id.in_(ids), o.c.claimed_by == worker)
                .order_by(o.c.id)
            )
            rows = (await conn.execute(mine)).all()
        return [_outbox_item(r) for r in rows]

    async def mark_sent(self, item_id: int, message_id: int | None, now: datetime) -> None:
        """Record a delivery and its Telegram message id in the notification log."""
        o, at = db.outbox, to_epoch(now)
        async with self._writer.begin() as conn:
            query = select(o.c.rule_id, o.c.chat_id, o.c.kind).where(o.c.id == item_id)
            row = (await conn.execute(query)).first()
            if row is None:
                raise KeyError(f"no outbox row {item_id}")
            sent = {"status": SENT, "sent_at": at, "message_id": message_id}
            await conn.execute(
                update(o).where(o.c.id == item_id).values(claimed_by=None, claimed_at=None, **sent)
            )
            logged = self._replace(db.notification_log, ("rule_id", "chat_id")).values(
                rule_id=row.rule_id,
                chat_id=row.chat_id,
                message_id=message_id,
                kind=row.kind,
                sent_at=at,
            )
            await conn.execute(logged)

    async def mark_failed(
        self, item_id: int, error: str, now: datetime, retry_at: datetime | None
    ) -> None:
        """Release a claimed row for a retry at `retry_at`, or give it up when that is None."""
        o = db.outbox
        changes: dict[str, Any] = {"attempts": o.c.attempts + 1, "error": error}
        changes |= {"claimed_by": None, "claimed_at": None}
        if retry_at is None:
            changes["status"] = FAILED
        else:
            changes["not_before"] = to_epoch(retry_at)
        if await self._write(update(o).where(o.c.id == item_id).values(**changes)) != 1:
            raise KeyError(f"no outbox row {item_id}")

    async def release_claims(self, worker: str) -> int:
        """Put rows a worker claimed but never finished back in the queue; "*" releases all."""
        o = db.outbox
        stmt = (
            update(o)
            .where(o.c.status == PENDING, o.c.claimed_by.is_not(None))
            .values(claimed_by=None, claimed_at=None)
        )
        if worker != "*":
            stmt = stmt.where(o.c.claimed_by == worker)
        return await self._write(stmt)

    async def pending_outbox(self) -> int:
        """Count rows not yet sent nor given up."""
        o = db.outbox
        query = select(func.count()).select_from(o).where(o.c.status == PENDING)
        return await self._count(query)

    async def notification(self, rule_id: str, chat_id: str) -> tuple[int | None, datetime] | None:
        """Return the last message id and time sent for (rule, chat), from the notification log."""
        log = db.notification_log
        query = select(log.c.message_id, log.c.sent_at).where(
            log.c.rule_id == rule_id, log.c.chat_id == str(chat_id)
        )
        rows = await self._fetch(query)
        return (rows[0].message_id, from_epoch(rows[0].sent_at)) if rows else None

    # source health ------------------------------------------------------------------------------
    async def source_health(self) -> dict[str, SourceHealth]:
        """Return the last known health of every source."""
        rows = await self._fetch(select(db.source_health))
        return {
            r.name: SourceHealth(
                r.name,
                bool(r.up),
                _when(r.last_success),
                r.last_error,
                _when(r.last_error_at),
                r.failures,
            )
            for r in rows
        }

    async def save_source_health(self, health: SourceHealth) -> None:
        """Persist a source's health after each poll."""
        stmt = self._replace(db.source_health, ("name",)).values(
            name=health.name,
            up=health.up,
            last_success=_epoch(health.last_success),
            last_error=health.last_error,
            last_error_at=_epoch(health.last_error_at),
            failures=health.failures,
        )
        await self._write(stmt)


def _schedule(r: Any) -> DigestSchedule:
    return DigestSchedule(
        r.chat_id, r.digest_time, r.timezone, _when(r.next_digest_at), bool(r.active)
    )


def _zone_or(name: str | None, fallback: str) -> str:
    """A stored zone that no longer exists (tzdata changed) falls back rather than failing."""
    return name if name and zone(name) is not None else fallback


def _state_row(state: AlertState, at: int) -> dict[str, Any]:
    detail = {
        "pending_count": state.pending_count,
        "cleared_at": _epoch(state.cleared_at),
        "last_fired_at": _epoch(state.last_fired_at),
        "notified_at": _epoch(state.notified_at),
        "reminders": state.reminders,
    }
    return {
        "rule_id": state.rule_id,
        "status": str(state.status),
        "since": _epoch(state.since),
        "value": state.value,
        "last_ts": _epoch(state.last_ts),
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
        _when(r.since),
        r.value,
        _when(r.last_ts),
        r.fingerprint,
        pending_count=int(detail.get("pending_count", 0)),
        cleared_at=_when(detail.get("cleared_at")),
        last_fired_at=_when(detail.get("last_fired_at")),
        notified_at=_when(detail.get("notified_at")),
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
        "fired_at": _epoch(tr.fired_at),
        "created_at": at,
    }


def _outbox_item(row: Any) -> OutboxItem:
    kind = TransitionKind(row.kind)
    return OutboxItem(
        id=row.id,
        key=row.key,
        chat_id=row.chat_id,
        text=row.text,
        rule_id=row.rule_id,
        kind=kind,
        attempts=row.attempts,
        created_at=from_epoch(row.created_at),
        reply_to=row.logged_message_id if kind is TransitionKind.RESOLVED else None,
    )
