"""The leader lease: compare-and-set terms, fencing of late writes, and the election loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.leadership import LEASE, Leadership
from bot.model import SourceHealth
from bot.store import Deposed
from bot.store.sql import SqlStore
from tests.harness.clock import SteppingClock
from tests.harness.store_backends import (
    PostgresUnavailableError,
    make_sqlite_store,
    postgres_database,
    postgres_missing,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    """Two store handles on one database, as two replicas would have."""
    if request.param == "sqlite":
        first = await make_sqlite_store(tmp_path)
        second = SqlStore(str(first.engine.url))
        try:
            yield first, second
        finally:
            await first.close()
            await second.close()
        return
    try:
        async with postgres_database() as url:
            first, second = SqlStore(url), SqlStore(url)
            await first.migrate()
            try:
                yield first, second
            finally:
                await first.close()
                await second.close()
    except PostgresUnavailableError as exc:
        postgres_missing(exc)


async def test_one_holder_at_a_time_and_renewal_keeps_the_epoch(
    pair: tuple[SqlStore, SqlStore],
) -> None:
    a, b = pair
    epoch = await a.hold_lease(LEASE, "a", None, 30)
    assert epoch == 1
    assert await b.hold_lease(LEASE, "b", None, 30) is None
    assert await a.hold_lease(LEASE, "a", epoch, 30) == epoch
    view = await b.lease(LEASE)
    assert view is not None and view.holder == "a" and view.epoch == 1 and 29 < view.left <= 30


async def test_a_lapsed_lease_goes_to_the_next_asker_with_a_new_epoch(
    pair: tuple[SqlStore, SqlStore],
) -> None:
    a, b = pair
    old = await a.hold_lease(LEASE, "a", None, 0.2)
    await asyncio.sleep(0.3)
    new = await b.hold_lease(LEASE, "b", None, 30)
    assert old == 1 and new == 2
    # the old holder's renewal of its term is refused: it must stand by
    assert await a.hold_lease(LEASE, "a", old, 30) is None


async def test_released_lease_is_taken_at_once(pair: tuple[SqlStore, SqlStore]) -> None:
    a, b = pair
    epoch = await a.hold_lease(LEASE, "a", None, 30)
    assert epoch is not None
    assert await b.release_lease(LEASE, "b", epoch) is False  # not b's to release
    assert await a.release_lease(LEASE, "a", epoch)
    assert await b.hold_lease(LEASE, "b", None, 30) == epoch + 1


async def test_a_deposed_leaders_late_write_is_refused(pair: tuple[SqlStore, SqlStore]) -> None:
    a, b = pair
    old = await a.hold_lease(LEASE, "a", None, 0.2)
    assert old is not None
    a.fence(LEASE, old)
    await a.save_source_health(SourceHealth("farside", True))  # inside its term: accepted
    await asyncio.sleep(0.3)
    new = await b.hold_lease(LEASE, "b", None, 30)
    assert new is not None
    b.fence(LEASE, new)
    with pytest.raises(Deposed):
        await a.save_source_health(SourceHealth("farside", False, last_error="late"))
    await b.save_source_health(SourceHealth("binance", True))
    health = await b.source_health()
    assert health["farside"].up and "binance" in health


async def test_same_holder_after_a_stall_gets_a_new_term(pair: tuple[SqlStore, SqlStore]) -> None:
    a, _ = pair
    old = await a.hold_lease(LEASE, "a", None, 0.1)
    await asyncio.sleep(0.2)
    assert old is not None
    assert await a.hold_lease(LEASE, "a", old, 30) == old + 1


async def test_handled_update_ids_are_seen_once(
    pair: tuple[SqlStore, SqlStore], clock: SteppingClock
) -> None:
    a, b = pair
    assert await a.first_sight(501, clock())
    assert not await b.first_sight(501, clock())
    clock.advance(timedelta(days=2))
    assert await a.forget_updates(clock() - timedelta(days=1)) == 1
    assert await b.first_sight(501, clock())


class _Roles:
    """Records what the election loop asked this replica to do."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def lead(self, epoch: int) -> None:
        self.events.append(f"lead {epoch}")

    async def lose(self, reason: str) -> None:
        self.events.append(f"lose {reason}")


async def test_election_loop_steps_down_when_renewals_fail(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    roles = _Roles()
    ship = Leadership(store, "a", timedelta(seconds=3), roles.lead, roles.lose)
    try:
        await ship.step()
        assert ship.leading and roles.events == ["lead 1"]
        await ship.step()  # a renewal: nothing changes
        assert roles.events == ["lead 1"]
        await store.close()
        store._engine = None  # type: ignore[assignment]  # every call now fails at once
        ship._renewed -= ship.deadline  # the last good renewal is a deadline ago
        await ship.step()
        assert not ship.leading and not ship.store_ok
        assert roles.events[-1] == "lose cannot renew the lease: the store does not answer"
    finally:
        if store._engine is not None:
            await store.close()


async def test_election_loop_hands_over_on_resign(tmp_path: Path) -> None:
    first = await make_sqlite_store(tmp_path)
    second = SqlStore(str(first.engine.url))
    a_roles, b_roles = _Roles(), _Roles()
    a = Leadership(first, "a", timedelta(seconds=30), a_roles.lead, a_roles.lose)
    b = Leadership(second, "b", timedelta(seconds=30), b_roles.lead, b_roles.lose)
    try:
        await a.step()
        await b.step()
        assert a.leading and not b.leading and b_roles.events == []
        await a.resign()
        await b.step()
        assert b.epoch == 2 and a_roles.events == ["lead 1", "lose stopping"]
        assert b_roles.events == ["lead 2"]
        await a.step()  # the old leader stands by
        assert not a.leading and a_roles.events[-1] == "lose stopping"
    finally:
        await first.close()
        await second.close()


async def test_a_leader_past_its_renew_deadline_is_no_longer_trusted(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    now = [100.0]
    roles = _Roles()
    ship = Leadership(
        store, "a", timedelta(seconds=15), roles.lead, roles.lose, monotonic=lambda: now[0]
    )
    try:
        assert not ship.trusted()
        await ship.step()
        assert ship.trusted()
        now[0] += 9.9  # a stalled loop: no renewal for most of the deadline
        assert ship.trusted()
        now[0] += 0.2
        assert not ship.trusted() and ship.leading  # not stepped down yet, but sends stop
    finally:
        await store.close()


def test_store_and_lease_failures_are_named_in_a_line_and_bugs_are_not() -> None:
    from asyncpg import exceptions as pg  # type: ignore[import-untyped]

    from bot.app import expected_failure

    assert expected_failure(Deposed("epoch 3, ours 2")) is not None
    assert expected_failure(pg.CannotConnectNowError("the database system is shutting down"))
    assert expected_failure(pg.ConnectionDoesNotExistError("connection was closed"))
    assert expected_failure(ConnectionRefusedError("refused"))
    assert expected_failure(ValueError("a bug")) is None
    assert expected_failure(KeyError("a bug")) is None
