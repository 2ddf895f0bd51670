"""Polling shell: future points and series going backwards never become data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.model import Observation
from bot.polling import poll_source
from bot.sources.http import HttpClient
from tests.harness.store_backends import make_sqlite_store

NOW = datetime(2025, 11, 1, 12, tzinfo=UTC)


class Recorded:
    """A source that answers with fixed points, as a recorded payload would after parsing."""

    name = "recorded"

    def __init__(self, points: list[Observation]) -> None:
        self.points = points

    async def poll(self, http: HttpClient, now: datetime) -> list[Observation]:
        return self.points

    async def backfill(
        self, http: HttpClient, now: datetime, since: datetime | None
    ) -> list[Observation]:
        return self.points


@pytest.fixture
async def http() -> HttpClient:
    async with aiohttp.ClientSession() as session:
        yield HttpClient(session)  # type: ignore[misc]


async def test_future_points_are_dropped(tmp_path: Path, http: HttpClient) -> None:
    store = await make_sqlite_store(tmp_path)
    try:
        good = Observation("x", NOW - timedelta(hours=1), 1.0)
        future = Observation("x", NOW + timedelta(days=2), 2.0)
        result = await poll_source(Recorded([good, future]), http, store, NOW)
        assert result.ok
        assert [p.value for p in await store.observations("x")] == [1.0]
    finally:
        await store.close()


async def test_series_going_backwards_is_dropped_but_others_kept(
    tmp_path: Path, http: HttpClient
) -> None:
    store = await make_sqlite_store(tmp_path)
    try:
        await store.upsert_observations([Observation("x", NOW - timedelta(hours=1), 5.0)])
        stale = Observation("x", NOW - timedelta(hours=3), 9.0)
        fresh = Observation("y", NOW, 1.0)
        await poll_source(Recorded([stale, fresh]), http, store, NOW)
        assert [p.value for p in await store.observations("x")] == [5.0]
        assert [p.value for p in await store.observations("y")] == [1.0]
    finally:
        await store.close()


async def test_revision_of_an_older_day_is_kept_when_the_poll_also_has_newer(
    tmp_path: Path, http: HttpClient
) -> None:
    store = await make_sqlite_store(tmp_path)
    try:
        day = datetime(2025, 10, 30, tzinfo=UTC)
        await store.upsert_observations([Observation("etf.btc.net_flow", day, -100.0)])
        revised = Observation("etf.btc.net_flow", day, -186.5)
        newer = Observation("etf.btc.net_flow", day + timedelta(days=1), 20.0)
        await poll_source(Recorded([revised, newer]), http, store, NOW)
        assert [p.value for p in await store.observations("etf.btc.net_flow")] == [-186.5, 20.0]
    finally:
        await store.close()
