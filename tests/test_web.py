"""The operations server over real loopback HTTP: liveness, readiness, metrics, a stuck loop."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bot.metrics import Metrics
from bot.store import open_store
from bot.store.sql import SqlStore
from bot.web.ops import LoopWatchdog, Readiness, first_problem, mount_operations, store_problem
from bot.web.server import WebServer
from tests.harness.store_backends import (
    PostgresUnavailableError,
    postgres_database,
    postgres_missing,
)


async def ready() -> str | None:
    return None


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def serve(
    metrics: Metrics, readiness: Readiness = ready, **kw: float | LoopWatchdog
) -> WebServer:
    server = WebServer("127.0.0.1", 0)
    mount_operations(server, metrics, readiness, **kw)  # type: ignore[arg-type]
    await server.start()
    return server


async def test_port_zero_binds_a_free_port_and_routes_are_one_line(
    http: aiohttp.ClientSession,
) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.match_info['name']}")

    server = WebServer("127.0.0.1", 0)
    server.add("GET", "/hello/{name}", hello)
    async with server:
        assert server.port > 0
        async with http.get(f"{server.url}/hello/you") as response:
            assert (response.status, await response.text()) == (200, "hello you")
        with pytest.raises(RuntimeError, match="already running"):
            server.add("GET", "/late", hello)
    assert not server.running


async def test_healthz_answers_get_and_head(http: aiohttp.ClientSession) -> None:
    server = await serve(Metrics())
    try:
        async with http.get(f"{server.url}/healthz") as response:
            assert (response.status, await response.text()) == (200, "ok")
        async with http.head(f"{server.url}/healthz") as response:
            assert response.status == 200
    finally:
        await server.stop()


async def test_readyz_says_why_not(http: aiohttp.ClientSession) -> None:
    answers: list[str | None] = [None, "standby"]

    async def readiness() -> str | None:
        return answers.pop(0)

    server = await serve(Metrics(), readiness)
    try:
        async with http.get(f"{server.url}/readyz") as response:
            assert (response.status, await response.text()) == (200, "ready")
        async with http.get(f"{server.url}/readyz") as response:
            assert (response.status, await response.text()) == (503, "standby")
    finally:
        await server.stop()


async def test_a_hung_readiness_check_answers_503_not_a_hung_probe(
    http: aiohttp.ClientSession,
) -> None:
    async def hangs() -> str | None:
        await asyncio.Event().wait()
        return None

    server = await serve(Metrics(), hangs, readiness_timeout=0.05)
    try:
        async with http.get(f"{server.url}/readyz") as response:
            assert response.status == 503
            assert await response.text() == "readiness check timed out"
    finally:
        await server.stop()


async def test_store_check_names_an_unreachable_store(tmp_path: Path) -> None:
    async with open_store(f"sqlite+aiosqlite:///{tmp_path}/t.db") as store:
        assert await store_problem(store) is None
    # nothing listens on port 1: the store cannot be reached
    async with asyncio.timeout(10):
        gone = SqlStore("postgresql+asyncpg://u:p@127.0.0.1:1/none")
        try:
            assert await store_problem(gone) == "store unreachable"
        finally:
            await gone.close()

    async def standby() -> str | None:
        return "standby"

    assert await first_problem(ready, standby, ready)() == "standby"
    assert await first_problem(ready)() is None


async def test_metrics_parse_with_the_right_content_type(http: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    metrics.polled("fear_greed", True, datetime(2025, 11, 1, tzinfo=UTC))
    metrics.polled("farside", False, None)
    metrics.transitioned("extreme-fear", "firing")
    metrics.sent("firing", "sent", 2)
    metrics.delivered_after(4.0)
    metrics.firing(["extreme-fear", "calm"], ["extreme-fear"])
    metrics.set_leader(True)
    server = await serve(metrics)
    try:
        async with http.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            content_type = response.headers["Content-Type"]
            body = await response.text()
    finally:
        await server.stop()
    assert content_type.startswith("text/plain; version=")
    assert "charset=utf-8" in content_type
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert samples[("stablewatch_source_up", (("source", "fear_greed"),))] == 1
    assert samples[("stablewatch_source_up", (("source", "farside"),))] == 0
    assert samples[("stablewatch_polls_total", (("outcome", "error"), ("source", "farside")))] == 1
    assert samples[("stablewatch_messages_sent_total", (("kind", "firing"), ("outcome", "sent")))]
    assert samples[("stablewatch_alerts_firing", (("rule", "calm"),))] == 0
    assert samples[("stablewatch_leader", ())] == 1
    assert samples[("stablewatch_delivery_seconds_count", ())] == 1
    assert not [name for name, _ in samples if name.endswith("_created")]


async def test_openmetrics_is_served_when_asked(http: aiohttp.ClientSession) -> None:
    server = await serve(Metrics())
    try:
        accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with http.get(f"{server.url}/metrics", headers=accept) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await response.text()).endswith("# EOF\n")
    finally:
        await server.stop()


def test_two_registries_never_collide() -> None:
    first, second = Metrics(), Metrics()
    first.firing(["a", "b"], ["a"])
    first.firing(["a"], [])  # b was removed from the rule files: its series goes
    body = first.render()[0].decode()
    assert 'stablewatch_alerts_firing{rule="a"} 0.0' in body
    assert 'rule="b"' not in body
    assert "stablewatch_alerts_firing{" not in second.render()[0].decode()


def fetch_in_thread(url: str, timeout: float, into: list[object]) -> threading.Thread:
    """A probe from outside the loop, as Docker or Kubernetes would send it."""

    def probe() -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                into.append(response.status)
        except urllib.error.HTTPError as exc:
            into.append(exc.code)
        except (TimeoutError, urllib.error.URLError) as exc:
            into.append(exc)

    thread = threading.Thread(target=probe)
    thread.start()
    return thread


def block_the_loop(seconds: float) -> None:
    """A synchronous call in the event loop: what a bug would do."""
    time.sleep(seconds)


@pytest.mark.slow
async def test_a_stuck_loop_fails_the_probe_then_a_starved_one_answers_503() -> None:
    dog = LoopWatchdog(interval=0.02, threshold=0.3, window=60)
    server = await serve(Metrics(), watchdog=dog)
    url = f"{server.url}/healthz"
    try:
        await asyncio.sleep(0.05)  # the watchdog is beating
        seen: list[object] = []
        thread = fetch_in_thread(url, 0.2, seen)
        block_the_loop(0.8)  # the loop cannot answer: the probe times out
        thread.join()
        assert len(seen) == 1
        assert isinstance(seen[0], TimeoutError | urllib.error.URLError)
        await asyncio.sleep(0.05)  # the watchdog wakes up, late
        after: list[object] = []
        await asyncio.to_thread(lambda: fetch_in_thread(url, 5, after).join())
        assert after == [503]
        async with (
            aiohttp.ClientSession() as http,
            http.get(url) as response,
        ):
            assert (await response.text()).startswith("event loop lagged")
    finally:
        await server.stop()


@pytest.mark.slow
@pytest.mark.postgres
async def test_a_hung_store_is_unreachable_for_readiness_not_a_hung_probe(
    http: aiohttp.ClientSession,
) -> None:
    try:
        async with postgres_database() as url, open_store(url) as store:
            engine = cast(SqlStore, store).engine
            async with engine.connect() as other:
                # another session holds the table: every read of it waits
                await other.execute(text("LOCK TABLE source_health IN ACCESS EXCLUSIVE MODE"))

                async def readiness() -> str | None:
                    return await store_problem(store, timeout=0.2)

                server = await serve(Metrics(), readiness)
                try:
                    async with http.get(f"{server.url}/readyz") as response:
                        assert response.status == 503
                        assert await response.text() == "store unreachable"
                finally:
                    await server.stop()
                await other.rollback()
    except PostgresUnavailableError as exc:
        postgres_missing(exc)
