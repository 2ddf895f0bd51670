"""The `Store` contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, inspect, select, text, update

from bot.digest.schedule import DIGEST_LEASE, claim_due, schedule_new_digests, schedule_next_day
from bot.model import (
    CHANNELS_ROW,
    OFF,
    AlertState,
    AlertStatus,
    ChatKind,
    Delivery,
    DigestSchedule,
    Observation,
    SourceHealth,
    Transition,
    TransitionKind,
)
from bot.store import migrations
from bot.store import schema as db
from bot.store.sql import SqlStore
from bot.store.sql import base as sql_base
from tests.harness.store_backends import (
    PostgresUnavailableError,
    postgres_database,
    postgres_missing,
    sqlite_url,
)
from tests.harness.store_rows import notification, pending_outbox

T0 = datetime(2025, 11, 3, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]
)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database on each backend; PostgreSQL ones are dropped afterwards."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    try:
        async with postgres_database() as url:
            yield url
    except PostgresUnavailableError as exc:  # raised only while creating the database
        postgres_missing(exc)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    """A migrated store, closed before its database is dropped."""
    store = SqlStore(db_url)
    await store.migrate()
    yield store
    await store.close()


def obs(series: str, day: int, value: float) -> Observation:
    return Observation(series, T0 + day * DAY, value)


def firing(rule: str, at: datetime = T0, value: float = 1.0) -> Transition:
    return Transition(rule, TransitionKind.FIRING, at, value, f"{rule} fired", "critical", "x")


def resolved(rule: str, at: datetime = T0) -> Transition:
    return Transition(rule, TransitionKind.RESOLVED, at, None, f"{rule} ok", reason="cleared")


async def enqueue(store: SqlStore, chats: int, rules: int = 1, now: datetime = T0) -> int:
    transitions = [firing(f"r{i}") for i in range(rules)]
    deliveries = [
        Delivery(i, str(c), f"text {i}/{c}", now) for i in range(rules) for c in range(chats)
    ]
    return await store.record_evaluation([], transitions, deliveries, now)


# migrations -------------------------------------------------------------------------------------
async def test_migrate_is_idempotent_and_returns_newest_version(store: SqlStore) -> None:
    newest = migrations.newest_version()
    assert await store.migrate() == newest
    assert await store.migrate() == newest
    async with store.engine.connect() as conn:
        versions = (await conn.execute(select(db.schema_version.c.version))).scalars().all()
    assert versions == [newest]


async def test_database_with_newer_schema_is_refused(store: SqlStore, db_url: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(update(db.schema_version).values(version=99))
    other = SqlStore(db_url)
    try:
        with pytest.raises(migrations.SchemaTooNewError, match="version 99"):
            await other.migrate()
    finally:
        await other.close()


async def test_upgrade_applies_only_missing_migrations(store: SqlStore) -> None:
    applied: list[int] = []

    def add_table(conn: Connection) -> None:
        applied.append(2)
        conn.exec_driver_sql("CREATE TABLE extra (x INTEGER)")

    nxt = migrations.newest_version() + 1
    history = (*migrations.MIGRATIONS, migrations.Migration(nxt, "extra table", add_table))
    for _ in range(2):
        async with store.engine.begin() as conn:
            assert await conn.run_sync(migrations.upgrade, history) == nxt
    assert applied == [2]
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM extra"))).scalar_one() == 0


async def test_failed_migration_leaves_schema_untouched(store: SqlStore) -> None:
    def broken(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    nxt = migrations.newest_version() + 1
    history = (*migrations.MIGRATIONS, migrations.Migration(nxt, "broken", broken))
    with pytest.raises(RuntimeError, match="boom"):
        async with store.engine.begin() as conn:
            await conn.run_sync(migrations.upgrade, history)
    async with store.engine.connect() as conn:
        assert await conn.run_sync(migrations.current_version) == nxt - 1
        assert not await conn.run_sync(lambda c: c.dialect.has_table(c, "half_done"))


# observations -----------------------------------------------------------------------------------
async def test_revision_replaces_value(store: SqlStore) -> None:
    assert await store.upsert_observations([obs("etf.btc.net_flow", 0, -100.0)]) == 1
    await store.upsert_observations([obs("etf.btc.net_flow", 0, 250.5)])
    assert await store.observations("etf.btc.net_flow") == [obs("etf.btc.net_flow", 0, 250.5)]
    assert [p async for p in store.iter_observations()] == [obs("etf.btc.net_flow", 0, 250.5)]


async def test_later_duplicate_in_one_batch_wins(store: SqlStore) -> None:
    await store.upsert_observations([obs("fear_greed", 0, 10.0), obs("fear_greed", 0, 11.0)])
    assert await store.observations("fear_greed") == [obs("fear_greed", 0, 11.0)]


async def test_observations_in_time_order_within_inclusive_bounds(store: SqlStore) -> None:
    points = [obs("price.btc", day, 100.0 + day) for day in (4, 0, 3, 1, 2)]
    await store.upsert_observations([*points, obs("price.eth", 2, 5.0)])
    everything = await store.observations("price.btc")
    assert [p.ts for p in everything] == [T0 + d * DAY for d in range(5)]
    window = await store.observations("price.btc", since=T0 + DAY, until=T0 + 3 * DAY)
    assert window == [obs("price.btc", d, 100.0 + d) for d in (1, 2, 3)]
    assert await store.observations("price.btc", since=T0 + 4 * DAY) == [obs("price.btc", 4, 104)]
    assert await store.observations("price.btc", until=T0) == [obs("price.btc", 0, 100.0)]
    assert await store.observations("nope") == []


async def test_latest_is_the_newest_point_of_that_series(store: SqlStore) -> None:
    assert await store.latest("price.btc") is None
    await store.upsert_observations(
        [obs("price.btc", 2, 3.0), obs("price.btc", 5, 6.0), obs("price.eth", 9, 1.0)]
    )
    assert await store.latest("price.btc") == obs("price.btc", 5, 6.0)


async def test_points_per_series_and_in_total(store: SqlStore) -> None:
    assert [p async for p in store.iter_observations()] == []
    await store.upsert_observations([obs("a", d, 1.0) for d in range(3)] + [obs("b", 0, 1.0)])
    assert len([p async for p in store.iter_observations()]) == 4
    assert len(await store.observations("a")) == 3
    assert await store.observations("c") == []


async def test_series_names_are_each_series_once_sorted(store: SqlStore) -> None:
    assert await store.series_names() == []
    await store.upsert_observations([obs("b", d, 1.0) for d in range(3)] + [obs("a", 0, 1.0)])
    assert await store.series_names() == ["a", "b"]


async def test_values_keep_double_precision(store: SqlStore) -> None:
    await store.upsert_observations([obs("funding.btc.binance", 0, 0.000123456789012345)])
    assert (await store.observations("funding.btc.binance"))[0].value == 0.000123456789012345


async def test_iter_observations_streams_everything_in_series_then_time_order(
    store: SqlStore,
) -> None:
    points = [
        Observation(s, T0 + i * timedelta(hours=1), float(i)) for s in "cab" for i in range(700)
    ]
    assert await store.upsert_observations(points[::-1]) == 2100
    streamed = [p async for p in store.iter_observations()]
    assert streamed == sorted(points, key=lambda p: (p.series, p.ts))


async def test_timestamps_come_back_timezone_aware_utc(store: SqlStore) -> None:
    local = datetime(2025, 11, 3, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    await store.upsert_observations([Observation("x", local, 1.0)])
    (point,) = await store.observations("x")
    assert point.ts == local
    assert point.ts.tzinfo is UTC
    assert point.ts.hour == 7


async def test_naive_timestamp_is_rejected(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.upsert_observations([Observation("x", datetime(2025, 1, 1), 1.0)])


# subscriptions ----------------------------------------------------------------------------------
async def test_subscribe_unsubscribe_and_reactivate(store: SqlStore) -> None:
    assert await store.subscribe(42, ChatKind.PRIVATE, "Ann", T0) is True
    assert await store.subscribe(42, ChatKind.PRIVATE, "Ann B.", T0 + DAY) is False
    assert await store.unsubscribe(42) is True
    assert await store.unsubscribe(42) is False
    assert await store.unsubscribe(7) is False
    assert await store.subscriptions() == []
    (inactive,) = await store.subscriptions(active_only=False)
    assert (inactive.active, inactive.title) == (False, "Ann B.")
    assert await store.subscribe(42, ChatKind.PRIVATE, "Ann", T0 + 2 * DAY) is True
    (sub,) = await store.subscriptions()
    assert sub.active
    assert sub.created_at == T0  # reactivation keeps the original row


async def test_subscriptions_ordered_by_chat_id(store: SqlStore) -> None:
    for chat_id, kind in [(5, ChatKind.GROUP), (-1001234567890, ChatKind.SUPERGROUP)]:
        await store.subscribe(chat_id, kind, f"chat {chat_id}", T0)
    await store.subscribe(1, ChatKind.CHANNEL, "news", T0)
    await store.unsubscribe(5)
    assert [s.chat_id for s in await store.subscriptions()] == [-1001234567890, 1]
    assert await store.subscriber_ids() == [-1001234567890, 1]
    everyone = await store.subscriptions(active_only=False)
    assert [(s.chat_id, s.kind) for s in everyone] == [
        (-1001234567890, ChatKind.SUPERGROUP),
        (1, ChatKind.CHANNEL),
        (5, ChatKind.GROUP),
    ]


# alert state, transitions -----------------------------------------------------------------------
async def test_record_evaluation_writes_states_transitions_and_outbox(store: SqlStore) -> None:
    state = AlertState("flows", AlertStatus.FIRING, T0, -5.5, T0 + DAY, "fp1")
    tr = firing("flows", T0 + DAY, -5.5)
    later = T0 + DAY + timedelta(seconds=30)
    deliveries = [
        Delivery(0, "42", "<b>fired</b>", T0 + DAY),
        Delivery(0, "@channel", "fired", later),  # each row is due at its own moment
    ]
    assert await store.record_evaluation([state], [tr], deliveries, T0 + DAY) == 2
    assert await store.alert_states() == {"flows": state}
    assert await store.transitions() == [tr]
    assert await pending_outbox(store) == 2
    items = await store.claim_outbox("w", T0 + DAY)
    assert [(i.chat_id, i.text, i.kind, i.attempts) for i in items] == [
        ("42", "<b>fired</b>", TransitionKind.FIRING, 0),
    ]
    assert items[0].key.endswith(":42")
    assert items[0].created_at == T0 + DAY
    assert await store.claim_outbox("w", later - timedelta(seconds=1)) == []
    assert [i.chat_id for i in await store.claim_outbox("w", later)] == ["@channel"]


async def test_outbox_rows_keep_the_deliveries_order_across_batches(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_base, "ARRAY_CHUNK", 2)
    monkeypatch.setattr(sql_base, "CHUNK", 2)
    later = T0 + timedelta(seconds=30)
    deliveries = [
        Delivery(1, "7", "b to 7", T0),
        Delivery(0, "7", "a to 7", later),
        Delivery(0, "-5", "a to -5", T0),
        Delivery(1, "9", "🔔 b to 9", T0),
        Delivery(0, "9", "a to 9", T0),
    ]
    assert await store.record_evaluation([], [firing("a"), resolved("b")], deliveries, T0) == 5
    items = await store.claim_outbox("w", later)
    assert [(i.chat_id, i.text, i.rule_id, i.kind) for i in items] == [
        ("7", "b to 7", "b", TransitionKind.RESOLVED),
        ("7", "a to 7", "a", TransitionKind.FIRING),
        ("-5", "a to -5", "a", TransitionKind.FIRING),
        ("9", "🔔 b to 9", "b", TransitionKind.RESOLVED),
        ("9", "a to 9", "a", TransitionKind.FIRING),
    ]
    assert [i.id for i in items] == sorted(i.id for i in items)
    assert len({i.key for i in items}) == 5
    assert await store.newest_due(["7", "-5"], T0) == {"7": later}


async def test_alert_states_of_the_rules_named_and_the_firing_ones(store: SqlStore) -> None:
    a, b, c = (
        AlertState("a", AlertStatus.FIRING, T0),
        AlertState("b", AlertStatus.PENDING, T0),
        AlertState("c"),
    )
    await store.record_evaluation([a, b, c], [], [], T0)
    assert await store.alert_states(["b", "c", "gone"]) == {"b": b, "c": c}
    assert await store.alert_states([]) == {}
    assert await store.firing_rules() == {"a"}
    moved = AlertState("b", AlertStatus.FIRING, T0 + DAY)
    await store.record_evaluation([moved], [], [], T0 + DAY)
    assert await store.alert_states() == {"a": a, "b": moved, "c": c}
    assert await store.alert_states(["b"]) == {"b": moved}
    assert await store.firing_rules() == {"a", "b"}


async def test_new_state_replaces_old_one(store: SqlStore) -> None:
    await store.record_evaluation([AlertState("r", AlertStatus.PENDING, T0)], [], [], T0)
    await store.record_evaluation([AlertState("r"), AlertState("s", last_ts=T0)], [], [], T0)
    assert await store.alert_states() == {"r": AlertState("r"), "s": AlertState("s", last_ts=T0)}


async def test_states_read_again_see_every_writer_and_unchanged_rows_stay_equal(
    store: SqlStore, db_url: str
) -> None:
    same = AlertState("same", AlertStatus.FIRING, T0, 2.0, T0, "f", notified_at=T0)
    await store.record_evaluation([same, AlertState("r", AlertStatus.PENDING, T0)], [], [], T0)
    first = await store.alert_states()
    other = SqlStore(db_url)  # another replica: this store's earlier read must not hide its write
    try:
        edited = AlertState("r", AlertStatus.FIRING, T0, 1.0, T0 + DAY, "f", reminders=1)
        await other.record_evaluation([edited, AlertState("new")], [], [], T0)
    finally:
        await other.close()
    again = await store.alert_states()
    assert again == {"same": same, "r": edited, "new": AlertState("new")}
    assert again["same"] is first["same"]


@pytest.mark.parametrize("index", [1, -1])
async def test_failed_evaluation_writes_nothing(store: SqlStore, index: int) -> None:
    state = AlertState("r", AlertStatus.FIRING, T0)
    with pytest.raises(IndexError):
        await store.record_evaluation(
            [state], [firing("r")], [Delivery(0, "1", "a", T0), Delivery(index, "2", "b", T0)], T0
        )
    assert await store.alert_states() == {}
    assert await store.transitions() == []
    assert await pending_outbox(store) == 0


async def test_transitions_newest_first(store: SqlStore) -> None:
    for day in range(4):
        await store.record_evaluation([], [firing(f"r{day}", T0 + day * DAY)], [], T0 + day * DAY)
    await store.record_evaluation([], [resolved("r0", T0 + 9 * DAY)], [], T0 + 9 * DAY)
    recent = await store.transitions(limit=3)
    assert [t.rule_id for t in recent] == ["r0", "r3", "r2"]
    assert recent[0] == resolved("r0", T0 + 9 * DAY)


# outbox -----------------------------------------------------------------------------------------
async def test_concurrent_claimers_never_share_a_row(store: SqlStore) -> None:
    total = await enqueue(store, chats=20, rules=3)
    claimed: list[int] = []
    for _ in range(20):
        batches = await asyncio.gather(*(store.claim_outbox(f"w{n}", T0, 7) for n in range(4)))
        claimed += [item.id for batch in batches for item in batch]
        if not any(batches):
            break
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == total == 60


async def test_two_store_instances_never_share_a_row(store: SqlStore, db_url: str) -> None:
    total = await enqueue(store, chats=25, rules=2)
    other = SqlStore(db_url)
    try:
        claimed: list[int] = []
        for _ in range(20):
            a, b = await asyncio.gather(
                store.claim_outbox("a", T0, 9), other.claim_outbox("b", T0, 9)
            )
            claimed += [item.id for item in a + b]
            if not (a or b):
                break
    finally:
        await other.close()
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == total


async def test_claim_respects_not_before_and_limit(store: SqlStore) -> None:
    await enqueue(store, chats=3, now=T0 + DAY)
    assert await store.claim_outbox("w", T0) == []
    first = await store.claim_outbox("w", T0 + DAY, limit=2)
    assert [i.chat_id for i in first] == ["0", "1"]
    assert [i.chat_id for i in await store.claim_outbox("w", T0 + DAY)] == ["2"]
    assert await store.claim_outbox("w", T0 + DAY + timedelta(minutes=1)) == []  # still held
    assert await pending_outbox(store) == 3


async def test_mark_sent_logs_message_and_resolved_replies_to_it(store: SqlStore) -> None:
    await store.record_evaluation([], [firing("flows")], [Delivery(0, "42", "fired", T0)], T0)
    (item,) = await store.claim_outbox("w", T0)
    assert item.reply_to is None
    await store.mark_sent(item.id, 777, T0 + timedelta(seconds=1))
    assert await notification(store, "flows", "42") == (777, T0 + timedelta(seconds=1))
    assert await notification(store, "flows", "43") is None
    assert await pending_outbox(store) == 0
    assert await store.claim_outbox("w", T0 + DAY) == []

    ok = Delivery(0, "42", "ok", T0 + DAY)
    await store.record_evaluation([], [resolved("flows", T0 + DAY)], [ok], T0 + DAY)
    (done,) = await store.claim_outbox("w", T0 + DAY)
    assert (done.kind, done.reply_to) == (TransitionKind.RESOLVED, 777)
    await store.mark_sent(done.id, None, T0 + DAY)
    assert await notification(store, "flows", "42") == (None, T0 + DAY)


async def test_newest_due_per_chat_leaves_out_edits_and_older_rows(store: SqlStore) -> None:
    """Messages of every status count; resolves (edits), older rows and other chats do not."""
    since, second = T0 - timedelta(seconds=30), timedelta(seconds=1)
    rows = [
        ("1", TransitionKind.FIRING, T0),
        ("1", TransitionKind.REMINDER, T0 + 30 * second),
        ("1", TransitionKind.RESOLVED, T0 + 90 * second),  # an edit: not a message
        ("2", TransitionKind.FIRING, T0 - timedelta(hours=1)),  # before `since`
        ("3", TransitionKind.RESOLVED, T0),
        ("4", TransitionKind.FIRING, since),  # `since` itself is not after it
        ("5", TransitionKind.FIRING, T0 - 5 * second),  # sent below
        ("6", TransitionKind.FIRING, T0 - 4 * second),  # given up below
        ("7", TransitionKind.FIRING, T0),  # not asked about
    ]
    transitions = [Transition(f"r{n}", kind, T0, 1.0, "m") for n, (_, kind, _) in enumerate(rows)]
    deliveries = [Delivery(n, chat, "m", due) for n, (chat, _, due) in enumerate(rows)]
    await store.record_evaluation([], transitions, deliveries, T0 - timedelta(hours=1))
    claimed = {i.chat_id: i.id for i in await store.claim_outbox("w", T0 - 4 * second)}
    await store.mark_sent(claimed["5"], 1, T0)
    await store.mark_failed(claimed["6"], "400 Bad Request", T0, None)
    asked = ["1", "2", "3", "4", "5", "6", "404"]
    assert await store.newest_due(asked, since) == {
        "1": T0 + 30 * second,
        "5": T0 - 5 * second,
        "6": T0 - 4 * second,
    }
    assert await store.newest_due([], since) == {}


async def test_migration_5_indexes_not_before_of_a_version_4_database(store: SqlStore) -> None:
    def indexes(conn: Connection) -> set[str | None]:
        return {index["name"] for index in inspect(conn).get_indexes("outbox")}

    await enqueue(store, chats=2)
    async with store.engine.begin() as conn:
        await conn.execute(text("DROP INDEX ix_outbox_not_before"))
        await conn.execute(update(db.schema_version).values(version=4))
        assert "ix_outbox_not_before" not in await conn.run_sync(indexes)
    assert await store.migrate() == migrations.newest_version()
    async with store.engine.connect() as conn:
        assert {"ix_outbox_due", "ix_outbox_not_before"} <= await conn.run_sync(indexes)
    assert await store.newest_due(["0", "1"], T0 - DAY) == {"0": T0, "1": T0}


async def test_mark_sent_unknown_row_raises(store: SqlStore) -> None:
    with pytest.raises(KeyError):
        await store.mark_sent(12345, 1, T0)
    with pytest.raises(KeyError):
        await store.mark_failed(12345, "x", T0, None)


async def test_mark_failed_with_retry_requeues_after_retry_at(store: SqlStore) -> None:
    await enqueue(store, chats=1)
    (item,) = await store.claim_outbox("w", T0)
    await store.mark_failed(
        item.id, "429 Too Many Requests", T0, retry_at=T0 + timedelta(minutes=1)
    )
    assert await pending_outbox(store) == 1
    assert await store.claim_outbox("w", T0 + timedelta(seconds=59)) == []
    (again,) = await store.claim_outbox("w2", T0 + timedelta(minutes=1))
    assert (again.id, again.attempts) == (item.id, 1)


async def test_mark_failed_without_retry_gives_up(store: SqlStore) -> None:
    await enqueue(store, chats=1)
    (item,) = await store.claim_outbox("w", T0)
    await store.mark_failed(item.id, "400 Bad Request", T0, retry_at=None)
    assert await pending_outbox(store) == 0
    assert await store.claim_outbox("w", T0 + DAY) == []
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(db.outbox))).one()
    assert (row.status, row.error, row.attempts, row.claimed_by) == (
        "failed",
        "400 Bad Request",
        1,
        None,
    )


async def test_release_claims_requeues_a_crashed_workers_rows(store: SqlStore) -> None:
    await enqueue(store, chats=4)
    crashed = await store.claim_outbox("crashed", T0, limit=2)
    alive = await store.claim_outbox("alive", T0, limit=1)
    await store.mark_sent(alive[0].id, 1, T0)
    assert await store.claim_outbox("other", T0, limit=1) != []
    assert await store.release_claims("nobody") == 0
    assert await store.release_claims("crashed") == 2
    again = await store.claim_outbox("new", T0)
    assert [i.id for i in again] == [i.id for i in crashed]
    assert await store.release_claims("*") == 3  # "other" and "new" both still hold rows
    async with store.engine.connect() as conn:
        claimed = select(func.count()).where(db.outbox.c.claimed_by.is_not(None))
        assert (await conn.execute(claimed)).scalar_one() == 0


# source health ----------------------------------------------------------------------------------
async def test_source_health_roundtrip(store: SqlStore) -> None:
    assert await store.source_health() == {}
    down = SourceHealth("farside", False, T0, "HTTP 503", T0 + DAY, 3)
    await store.save_source_health(SourceHealth("farside", True, T0))
    await store.save_source_health(down)
    await store.save_source_health(SourceHealth("binance", True))
    health = await store.source_health()
    assert health["farside"] == SourceHealth("farside", False, T0, "HTTP 503", T0 + DAY, 3)
    assert health["binance"] == SourceHealth("binance", True)
    assert health["farside"].last_error_at is not None
    assert health["farside"].last_error_at.tzinfo is UTC


async def test_down_notice_marker_is_compare_and_set_and_survives_polls(store: SqlStore) -> None:
    assert not await store.mark_down_notified("farside", T0)  # no row yet
    await store.save_source_health(SourceHealth("farside", False, None, "HTTP 503", T0, 1))
    assert await store.mark_down_notified("farside", T0)
    assert not await store.mark_down_notified("farside", T0 + DAY)  # told once
    await store.save_source_health(SourceHealth("farside", False, None, "HTTP 503", T0 + DAY, 2))
    assert (await store.source_health())["farside"].down_notified_at == T0
    assert await store.clear_down_notified("farside")
    assert not await store.clear_down_notified("farside")
    assert (await store.source_health())["farside"].down_notified_at is None


async def test_pending_count_counts_rows_neither_sent_nor_given_up(store: SqlStore) -> None:
    assert await store.pending_count() == 0
    transition = Transition("r", TransitionKind.FIRING, T0, 1.0, "m")
    owed = [Delivery(0, chat, "m", T0 + DAY * (chat == "3")) for chat in ("1", "2", "3")]
    await store.record_evaluation([], [transition], owed, T0)
    assert await store.pending_count() == 3  # one not due yet still counts
    first, second = await store.claim_outbox("w", T0)
    await store.mark_sent(first.id, 1, T0)
    await store.mark_failed(second.id, "bad request", T0, None)
    assert await store.pending_count() == 1


# SQLite specifics -------------------------------------------------------------------------------
async def test_sqlite_creates_missing_folder_and_uses_wal(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'a' / 'b' / 'x.db'}")
    try:
        assert await store.migrate() == migrations.newest_version()
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() > 0
    finally:
        await store.close()
    assert (tmp_path / "a" / "b" / "x.db").exists()


async def test_version_1_database_gains_the_detail_column(tmp_path: Path) -> None:
    """A database left at schema 1 is upgraded in place and keeps its alert states."""
    from sqlalchemy import text as sql

    store = SqlStore(sqlite_url(tmp_path))
    await store.migrate()
    async with store.engine.begin() as conn:
        await conn.execute(sql("ALTER TABLE alert_states DROP COLUMN detail"))
        await conn.execute(update(db.schema_version).values(version=1))
        await conn.execute(
            sql(
                "INSERT INTO alert_states (rule_id, status, fingerprint, updated_at) "
                "VALUES ('r', 'firing', 'f', 0)"
            )
        )
    await store.close()
    store = SqlStore(sqlite_url(tmp_path))
    try:
        assert await store.migrate() == migrations.newest_version()
        state = (await store.alert_states())["r"]
        assert state.status.value == "firing" and state.pending_count == 0
    finally:
        await store.close()


async def test_series_arrays_match_observations(store: SqlStore) -> None:
    points = [obs("x", d, float(d) - 2.5) for d in (3, 0, 2, 1)] + [obs("y", 0, 9.0)]
    await store.upsert_observations(points)
    ts, values = await store.series_arrays("x")
    expected = await store.observations("x")
    assert ts == [int(p.ts.timestamp()) for p in expected]
    assert values == [p.value for p in expected] == [-2.5, -1.5, -0.5, 0.5]
    ts, values = await store.series_arrays("x", since=T0 + 2 * DAY)
    assert values == [-0.5, 0.5]


async def test_mutes_expire_and_can_be_lifted(store: SqlStore) -> None:
    await store.mute("7", "extreme-fear", T0 + DAY, "asked")
    await store.mute("7", "tag:etf", T0 + 2 * DAY)
    await store.mute("7", "extreme-fear", T0 + 3 * DAY)  # replaces the first
    assert (await store.mutes(T0))["7"] == {"extreme-fear": T0 + 3 * DAY, "tag:etf": T0 + 2 * DAY}
    assert (await store.mutes(T0 + 2 * DAY))["7"] == {"extreme-fear": T0 + 3 * DAY}
    assert await store.unmute("7", "extreme-fear") == 1
    assert await store.mutes(T0) == {"7": {"tag:etf": T0 + 2 * DAY}}
    assert await store.unmute("7") == 1


async def test_move_subscription_follows_a_migrated_group(store: SqlStore) -> None:
    await store.subscribe(-100, ChatKind.GROUP, "g", T0)
    await store.mute("-100", "all", T0 + DAY)
    assert await store.move_subscription(-100, -1001234)
    assert [s.chat_id for s in await store.subscriptions()] == [-1001234]
    assert "-1001234" in await store.mutes(T0)


async def test_sent_counts_count_rows_per_rule_and_chat(store: SqlStore) -> None:
    transition = Transition("r", TransitionKind.FIRING, T0, 1.0, "m")
    await store.record_evaluation(
        [],
        [transition, transition],
        [Delivery(0, "1", "a", T0), Delivery(1, "1", "b", T0), Delivery(1, "2", "c", T0)],
        T0,
    )
    assert await store.sent_counts("r", T0 - DAY) == {"1": 2, "2": 1}
    assert await store.sent_counts("r", T0) == {"1": 2, "2": 1}  # since is inclusive
    assert await store.sent_counts("r", T0 + DAY) == {}
    assert await store.sent_counts("other", T0 - DAY) == {}


async def test_a_claim_older_than_the_lease_is_taken_over(store: SqlStore) -> None:
    transition = Transition("r", TransitionKind.FIRING, T0, 1.0, "m")
    await store.record_evaluation([], [transition], [Delivery(0, "1", "a", T0)], T0)
    assert len(await store.claim_outbox("dead", T0)) == 1
    assert await store.claim_outbox("alive", T0 + timedelta(minutes=5)) == []
    taken = await store.claim_outbox("alive", T0 + timedelta(minutes=11))
    assert [i.chat_id for i in taken] == ["1"]


# chat filters -----------------------------------------------------------------------------------
async def test_set_filter_replaces_and_empty_clears(store: SqlStore) -> None:
    await store.set_filter("42", ["tag:etf", "extreme-fear", "tag:etf"])
    await store.set_filter("7", ["tag:health"])
    assert await store.filters() == {"42": {"tag:etf", "extreme-fear"}, "7": {"tag:health"}}
    await store.set_filter("42", [])
    assert await store.filters() == {"7": {"tag:health"}}


async def test_migration_4_adds_chat_filters_to_a_version_3_database(store: SqlStore) -> None:
    async with store.engine.begin() as conn:
        await conn.run_sync(lambda c: db.chat_filters.drop(c))
        await conn.execute(update(db.schema_version).values(version=3))
    assert await store.migrate() == migrations.newest_version()
    await store.set_filter("1", ["all-good"])
    assert await store.filters() == {"1": {"all-good"}}


async def test_filters_follow_a_migrated_group(store: SqlStore) -> None:
    await store.subscribe(-500, ChatKind.GROUP, "g", T0)
    await store.set_filter("-500", ["tag:etf"])
    await store.move_subscription(-500, -1001)
    assert await store.filters() == {"-1001": {"tag:etf"}}


# daily digest claims ----------------------------------------------------------------------------
async def test_digest_claims_never_twice_never_skipped(db_url: str, store: SqlStore) -> None:
    other = SqlStore(db_url)  # a second worker on the same database
    try:
        start = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
        await store.subscribe(7, ChatKind.PRIVATE, "", start)
        assert await schedule_new_digests(store, "08:00", "Europe/Berlin", start) == 1
        assert await schedule_new_digests(store, "08:00", "Europe/Berlin", start) == 0
        assert await claim_due(store, start) == []
        due = datetime(2025, 11, 2, 7, 0, tzinfo=UTC)  # 08:00 CET
        got = await asyncio.gather(claim_due(store, due), claim_due(other, due))
        assert sorted(len(g) for g in got) == [0, 1]
        won = next(g for g in got if g)[0]
        assert won.next_at == due + DIGEST_LEASE
        assert await schedule_next_day(store, won, due + timedelta(seconds=3))
        # down for three days: one digest on restart, then back to the daily time
        later = due + timedelta(days=3, hours=2)
        claimed = await claim_due(other, later)
        assert [c.chat_id for c in claimed] == [7]
        assert await claim_due(store, later) == []
        assert await store.release_digest(claimed[0], later)  # delivery failed: due again
        again = await claim_due(store, later + timedelta(minutes=1))
        assert len(again) == 1
        assert not await schedule_next_day(store, claimed[0], later)  # a stale claim: no change
        assert not await store.release_digest(claimed[0], later)
        assert await schedule_next_day(store, again[0], later)
        schedule = await store.digest_schedule(7)
        assert schedule is not None
        assert schedule.next_at == datetime(2025, 11, 6, 7, 0, tzinfo=UTC)
    finally:
        await other.close()


async def test_digest_claim_of_a_killed_sender_is_due_after_its_lease(store: SqlStore) -> None:
    start = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
    for chat in (1, 2, 3):
        await store.subscribe(chat, ChatKind.PRIVATE, "", start)
    await schedule_new_digests(store, "13:00", "UTC", start)
    due = datetime(2025, 11, 1, 13, 0, tzinfo=UTC)
    assert [c.chat_id for c in await claim_due(store, due, limit=2)] == [1, 2]
    # the sender dies without finishing: nothing is due until the lease ends, then both are
    assert [c.chat_id for c in await claim_due(store, due + timedelta(minutes=1))] == [3]
    assert await claim_due(store, due + DIGEST_LEASE - timedelta(seconds=1)) == []
    assert [c.chat_id for c in await claim_due(store, due + DIGEST_LEASE)] == [1, 2]


async def test_digest_off_and_unsubscribed_chats_are_never_claimed(store: SqlStore) -> None:
    start = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
    for chat in (1, 2):
        await store.subscribe(chat, ChatKind.PRIVATE, "", start)
    await store.set_digest(1, OFF, None, None)
    await store.unsubscribe(2)
    assert await store.unscheduled_digests() == []
    assert await schedule_new_digests(store, "13:00", "UTC", start) == 0
    assert await claim_due(store, start + timedelta(days=2)) == []


async def test_scheduling_sets_only_chats_still_unscheduled(store: SqlStore) -> None:
    start = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
    for chat in (1, 2, 3, 4):
        await store.subscribe(chat, ChatKind.PRIVATE, "", start)
    await store.set_digest(2, "09:30", "Asia/Tokyo", None)  # chosen while not yet scheduled
    await store.set_digest(3, OFF, None, None)
    unscheduled = await store.unscheduled_digests()
    assert [(u.chat_id, u.digest_time, u.timezone, u.next_at) for u in unscheduled] == [
        (1, None, None, None),
        (2, "09:30", "Asia/Tokyo", None),
        (4, None, None, None),
    ]
    first = start + timedelta(hours=1)
    assert await store.set_digest(1, "13:00", "UTC", first)  # another worker got there first
    await store.unsubscribe(4)  # and this chat left meanwhile
    plans = [DigestSchedule(c, "08:00", "UTC", start + DAY) for c in (1, 2, 3, 4)]
    assert await store.schedule_digests(plans) == 1
    assert await store.schedule_digests(plans) == 0
    assert await store.schedule_digests([]) == 0
    schedules = [await store.digest_schedule(c) for c in (1, 2, 3, 4)]
    assert [(s.digest_time, s.timezone, s.next_at) for s in schedules if s] == [
        ("13:00", "UTC", first),
        ("08:00", "UTC", start + DAY),
        (OFF, None, None),
        (None, None, None),
    ]


async def test_a_chats_own_time_and_zone_win_and_a_vanished_zone_falls_back(
    store: SqlStore,
) -> None:
    start = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
    for chat in (1, 2):
        await store.subscribe(chat, ChatKind.PRIVATE, "", start)
    await store.set_digest(1, "09:30", "Asia/Tokyo", None)
    await store.set_digest(2, None, "Mars/Olympus", None)  # a zone tzdata no longer has
    assert await schedule_new_digests(store, "08:00", "Europe/Berlin", start) == 2
    tokyo, berlin = await store.digest_schedule(1), await store.digest_schedule(2)
    assert tokyo == DigestSchedule(
        1, "09:30", "Asia/Tokyo", datetime(2025, 11, 2, 0, 30, tzinfo=UTC)
    )
    assert berlin == DigestSchedule(
        2, "08:00", "Europe/Berlin", datetime(2025, 11, 2, 7, tzinfo=UTC)
    )
    # a zone gone after scheduling: the claim and the next day are read in UTC
    due = datetime(2025, 11, 2, 7, 0, tzinfo=UTC)
    assert await store.set_digest(2, "08:00", "Mars/Olympus", due)
    tokyo_claim, claimed = await claim_due(store, due)
    assert (tokyo_claim.chat_id, tokyo_claim.timezone) == (1, "Asia/Tokyo")
    assert (claimed.chat_id, claimed.timezone) == (2, "UTC")
    assert await schedule_next_day(store, claimed, due)
    moved = await store.digest_schedule(2)
    assert moved is not None and moved.next_at == datetime(2025, 11, 2, 8, 0, tzinfo=UTC)


async def test_channels_row_follows_the_default_time(store: SqlStore) -> None:
    start = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
    assert await schedule_new_digests(store, "08:00", "UTC", start, with_channels=True) == 0
    row = await store.digest_schedule(CHANNELS_ROW)
    tomorrow = datetime(2025, 11, 2, 8, 0, tzinfo=UTC)
    assert row == DigestSchedule(CHANNELS_ROW, "08:00", "UTC", tomorrow, active=False)
    assert await store.subscriptions() == []  # the row is no subscriber: no alert goes to it
    # the same default keeps the row where it is; a new one moves it at once
    await store.keep_channels_row("08:00", "UTC", tomorrow + DAY, start + DAY)
    assert (await store.digest_schedule(CHANNELS_ROW)) == row
    await schedule_new_digests(store, "09:00", "Asia/Tokyo", start, with_channels=True)
    moved = await store.digest_schedule(CHANNELS_ROW)
    assert moved is not None
    assert (moved.digest_time, moved.timezone) == ("09:00", "Asia/Tokyo")
    assert moved.next_at == datetime(2025, 11, 2, 0, 0, tzinfo=UTC)
    (claimed,) = await claim_due(store, moved.next_at)
    assert claimed.chat_id == CHANNELS_ROW


async def test_a_digest_claim_must_last_past_now(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="must last past now"):
        await store.claim_due_digests(T0, T0)
