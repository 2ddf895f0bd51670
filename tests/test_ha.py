"""Replicas on one PostgreSQL database: one leader, failover after SIGKILL, SQLite refused twice.

Real `stablewatch run` processes, the fake Bot API and a fake source on loopback, and the real
PostgreSQL server; the lease is shortened to 6 s so a takeover takes seconds.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import open_store
from tests.harness.bot_app import TOKEN
from tests.harness.fake_source import FakeSource
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.files import fixture_json
from tests.harness.replica import LEADS, STANDS_BY, Replica, enqueue_alert, replica_env
from tests.harness.store_backends import (
    PostgresUnavailableError,
    postgres_database,
    postgres_missing,
)

pytestmark = pytest.mark.slow
LEASE = 6.0
"""Short for quick takeovers, long enough that a loaded 2-core CI machine renews in time
(a renewal may take up to a third of it)."""


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    try:
        async with postgres_database() as url:
            yield url
    except PostgresUnavailableError as exc:
        postgres_missing(exc)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeSource, FakeTelegram]]:
    async with FakeSource() as src, FakeTelegram(token=TOKEN) as tg:
        src.route("GET", "/fng/", body=fixture_json("fear_greed", "latest.json"))
        yield src, tg


def env(url: str, src: FakeSource, tg: FakeTelegram, **extra: str) -> dict[str, str]:
    return replica_env(
        url,
        STABLEWATCH_TELEGRAM__TOKEN=TOKEN,
        STABLEWATCH_TELEGRAM__API_URL=tg.api_url,
        STABLEWATCH_SOURCES__FEAR_GREED__BASE_URL=src.base_url,
        STABLEWATCH_HA__LEASE=f"{LEASE:.0f}s",
        **extra,
    )


def leader_gauge(exposition: str) -> float:
    """`stablewatch_leader` as Prometheus' own parser reads it."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        if family.name == "stablewatch_leader":
            return float(family.samples[0].value)
    raise AssertionError("no stablewatch_leader in the scrape")


async def the_leader(replicas: list[Replica], timeout: float = 30) -> Replica:
    """Wait until exactly one replica has said it leads; fail if two ever do."""
    async with asyncio.timeout(timeout):
        while True:
            leading = [r for r in replicas if r.count(LEADS)]
            assert len(leading) <= 1, "\n\n".join(r.log for r in replicas)
            if leading:
                return leading[0]
            await asyncio.sleep(0.1)


async def test_one_leader_among_three_replicas_and_no_overlapping_polls(
    pg_url: str, fakes: tuple[FakeSource, FakeTelegram], tmp_path: Path
) -> None:
    src, tg = fakes
    replicas = [await Replica(f"r{i}", env(pg_url, src, tg), tmp_path).start() for i in range(3)]
    try:
        leader = await the_leader(replicas)
        for replica in replicas:
            if replica is not leader:
                await replica.wait_for(STANDS_BY)
        await asyncio.sleep(2 * LEASE)  # several renewals and standby tries
        assert sum(r.count(LEADS) for r in replicas) == 1
        assert tg.conflicts == 0
        for replica in replicas:
            status, body = await replica.get("/readyz")
            assert (status, body) == ((200, "ready") if replica is leader else (503, "standby"))
            assert await replica.get("/healthz") == (200, "ok")
            _, text = await replica.get("/metrics")
            assert leader_gauge(text) == (1.0 if replica is leader else 0.0)
        tg.inject_message(7, "/help")
        await tg.wait_for(1, chat_id=7)
        await asyncio.sleep(1)
        assert len(tg.sent(7)) == 1
        assert len(src.requests_to("/fng/")) >= 1
    finally:
        codes = [await r.stop() for r in replicas]
    assert codes == [0, 0, 0]
    assert all("Traceback" not in r.log for r in replicas)


async def test_failover_after_sigkill_serves_every_chat_and_the_old_leader_stands_by(
    pg_url: str, fakes: tuple[FakeSource, FakeTelegram], tmp_path: Path
) -> None:
    src, tg = fakes
    slow = env(pg_url, src, tg, STABLEWATCH_DELIVERY__GLOBAL_RATE="4")
    first = await Replica("first", slow, tmp_path).start()
    second: Replica | None = None
    again: Replica | None = None
    chats = list(range(5001, 5031))
    try:
        await first.wait_for(LEADS)
        second = await Replica("second", slow, tmp_path).start()
        await second.wait_for(STANDS_BY)
        async with open_store(pg_url) as store:
            await enqueue_alert(store, chats)
        await tg.wait_for(6)  # the fan-out is under way
        first.kill()
        await second.wait_for(LEADS, timeout=4 * LEASE)
        async with asyncio.timeout(10):
            while (await second.get("/readyz"))[0] != 200:  # noqa: ASYNC110 - asks over HTTP
                await asyncio.sleep(0.2)
        for chat in chats:
            await tg.wait_for(1, chat_id=chat, timeout=60)
        per_chat = [len(tg.sent(chat)) for chat in chats]
        assert min(per_chat) >= 1
        assert sum(per_chat) - len(chats) <= 3  # only what was in flight at the kill repeats
        again = await Replica("first, restarted", slow, tmp_path).start()
        await again.wait_for(STANDS_BY)
        await asyncio.sleep(2 * LEASE)
        assert again.count(LEADS) == 0
        tg.inject_message(7, "/help")
        await tg.wait_for(1, chat_id=7)
    finally:
        for replica in (first, second, again):
            if replica is not None:
                await replica.stop()
    assert second.count(LEADS) == 1, second.log


async def test_a_second_run_on_one_sqlite_file_exits_2_naming_file_and_process(
    fakes: tuple[FakeSource, FakeTelegram], tmp_path: Path
) -> None:
    src, _ = fakes
    db = tmp_path / "var" / "sw.db"
    solo = replica_env(
        f"sqlite+aiosqlite:///{db}", STABLEWATCH_SOURCES__FEAR_GREED__BASE_URL=src.base_url
    )
    first = await Replica("first", solo, tmp_path).start()
    try:
        await first.wait_for("stablewatch running")
        second = await Replica("second", solo, tmp_path).start()
        assert second.proc is not None
        async with asyncio.timeout(30):
            code = await second.proc.wait()
        await second.stop()
        assert code == 2
        last = second.lines[-1]
        assert last.startswith("stablewatch: ") and str(db) in last
        assert first.proc is not None and f"process {first.proc.pid}" in last
        assert "Traceback" not in second.log
    finally:
        assert await first.stop() == 0


def restart_postgres() -> None:
    """Restart the PostgreSQL server every test shares (fast shutdown: sessions are cut)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
        capture_output=True,
    )


async def test_a_postgres_restart_is_survived_lost_nothing_and_logged_once(
    pg_url: str, fakes: tuple[FakeSource, FakeTelegram], tmp_path: Path
) -> None:
    src, tg = fakes
    quick = env(pg_url, src, tg, STABLEWATCH_SOURCES__FEAR_GREED__INTERVAL="2s")
    one = await Replica("one", quick, tmp_path).start()
    try:
        await one.wait_for(LEADS)
        tg.inject_message(7, "/start")
        await tg.wait_for(1, chat_id=7, timeout=15)
        async with open_store(pg_url) as store:
            stored = len(await store.observations("fear_greed"))
        assert stored >= 2
        await asyncio.to_thread(restart_postgres)
        polls = len(src.requests_to("/fng/"))
        async with asyncio.timeout(60):  # polling goes on after the restart
            while len(src.requests_to("/fng/")) < polls + 3:  # noqa: ASYNC110 - counts requests
                await asyncio.sleep(0.5)
        tg.inject_message(8, "/start")
        await tg.wait_for(1, chat_id=8, timeout=30)
        async with open_store(pg_url) as store:
            assert len(await store.observations("fear_greed")) >= stored
            assert {s.chat_id for s in await store.subscriptions()} == {7, 8}
    finally:
        code = await one.stop()
    assert code == 0, one.log
    assert one.count("store: unreachable") <= 1
    assert one.count("store: reachable again") == one.count("store: unreachable")
    assert "Traceback" not in one.log, one.log


async def test_only_the_leaders_scheduler_has_jobs_and_a_resigning_leader_hands_over(
    pg_url: str, fakes: tuple[FakeSource, FakeTelegram], tmp_path: Path
) -> None:
    from bot.app import Runtime
    from bot.config import Settings
    from tests.harness.env import OTHER_SOURCES
    from tests.harness.files import ROOT

    src, _ = fakes
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        http={"port": 0},
        store={"url": pg_url},
        rules={"dir": str(ROOT / "rules")},
        ha={"lease": "3s"},
        heartbeat={"url": f"{src.base_url}/ping"},
        sources={
            "fear_greed": {"base_url": src.base_url, "retries": 0},
            **{name: {"enabled": False} for name in OTHER_SOURCES},
        },
    )
    first, second = Runtime(settings), Runtime(settings)
    first.worker_id, second.worker_id = "first", "second"
    await first.start()
    await second.start()
    try:
        async with asyncio.timeout(10):
            while not (first.leading or second.leading):  # noqa: ASYNC110 - the election runs
                await asyncio.sleep(0.05)
        leader, standby = (first, second) if first.leading else (second, first)
        for job in ("poll:fear_greed", "deliver", "tick", "digest", "heartbeat"):
            assert leader.scheduler.has_job(job) and not standby.scheduler.has_job(job)
        assert await standby.readiness() == "standby" and await leader.readiness() is None
        await leader.stop()  # resigns: the lease is handed over at once, not after 3 s
        async with asyncio.timeout(2.5):
            while not standby.leading:  # noqa: ASYNC110 - the election runs
                await asyncio.sleep(0.05)
        assert standby.scheduler.has_job("poll:fear_greed")
    finally:
        await first.stop()
        await second.stop()
