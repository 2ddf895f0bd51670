"""Venues to derived series: four exchanges polled over HTTP, then OI-weighted funding, total OI
and `price.btc` written by the running bot."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import Runtime
from bot.config import Settings
from bot.model import Observation
from tests.harness.clock import SteppingClock
from tests.harness.fake_source import FakeSource
from tests.harness.files import ROOT, fixture_json
from tests.harness.payloads import VENUE_ROUTES

pytestmark = pytest.mark.slow

VENUES = ("binance", "bybit", "okx", "hyperliquid")


def settings_for(tmp_path: Path, src: FakeSource) -> Settings:
    off = ("fear_greed", "farside", "sosovalue", "coinglass", "http_json")
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        http={"port": 0},  # a free port: tests run side by side
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'sw.db'}"},
        rules={"dir": str(ROOT / "rules")},
        markets={"assets": ["btc"]},
        sources={
            **{
                v: {"base_url": src.base_url, "retries": 0, "backfill": False, "interval": "5m"}
                for v in VENUES
            },
            **{name: {"enabled": False} for name in off},
        },
    )


def route_all(src: FakeSource) -> None:
    """BTC answers on every path, however often the bot asks (its own first poll included)."""
    for venue, path, name in VENUE_ROUTES:
        src.route("GET", path, body=fixture_json(venue, name))
    src.route("POST", "/info", body=fixture_json("hyperliquid", "meta_and_asset_ctxs.json"))


async def latest(runtime: Runtime, series: str) -> Observation:
    point = await runtime.store.latest(series)
    assert point is not None, f"{series} was not written"
    return point


async def test_derived_series_follow_the_venues(tmp_path: Path, clock: SteppingClock) -> None:
    async with FakeSource() as src:
        route_all(src)
        runtime = Runtime(settings_for(tmp_path, src), clock)
        await runtime.start()
        try:
            for venue in VENUES:
                await runtime.jobs.poll(runtime.jobs.sources[venue])
            rates = {v: (await latest(runtime, f"funding.btc.{v}")).value for v in VENUES}
            ois = {v: (await latest(runtime, f"oi.btc.{v}")).value for v in VENUES}
            weighted = await latest(runtime, "funding.btc.oi_weighted")
            total = await latest(runtime, "oi.btc.total")
            assert total.value == pytest.approx(sum(ois.values()))
            expected = sum(rates[v] * ois[v] for v in VENUES) / sum(ois.values())
            assert weighted.value == pytest.approx(expected)
            assert min(rates.values()) <= weighted.value <= max(rates.values())
            price = await latest(runtime, "price.btc")
            assert price.value == (await latest(runtime, "price.btc.binance")).value
        finally:
            await runtime.stop()


async def test_a_venue_going_quiet_withholds_the_total(tmp_path: Path) -> None:
    """A missing venue must not read as an open-interest flush; a long-gone one stops counting."""
    from datetime import UTC, datetime, timedelta

    from bot.derive_job import derive_and_store
    from tests.harness.store_backends import make_sqlite_store

    now = datetime(2025, 11, 1, 12, tzinfo=UTC)
    store = await make_sqlite_store(tmp_path)

    def venue(name: str, at: datetime, oi: float) -> list[Observation]:
        return [
            Observation(f"funding.btc.{name}", at, 0.0001),
            Observation(f"oi.btc.{name}", at, oi),
        ]

    try:
        fresh, quiet, gone = (
            now - timedelta(minutes=2),
            now - timedelta(hours=1),
            now - timedelta(days=2),
        )
        await store.upsert_observations(venue("bybit", fresh, 5e9) + venue("okx", quiet, 3e9))
        await store.upsert_observations(venue("binance", gone, 9e9))
        written = await derive_and_store(store, ["btc"], VENUES, now, timedelta(minutes=15))
        assert written == {"funding.btc.oi_weighted"}  # okx is expected but quiet: no total
        await store.upsert_observations(venue("okx", fresh, 3e9))
        written = await derive_and_store(store, ["btc"], VENUES, now, timedelta(minutes=15))
        total = await store.latest("oi.btc.total")
        assert total is not None and total.value == 8e9  # binance, silent for days, is not expected
    finally:
        await store.close()
