"""Digest benchmark: composing a digest on a year of data, then sending it to many chats.

Part one fills a real SQLite store with a year of hourly funding and OI for two assets, daily
ETF flows and fear & greed, and times `Composer.compose` (queries, scorecard, chart in a thread)
for the first zone and for each further zone. Part two sends due digests (text and PNG) to many
chats through the real DigestJob, PTB application and TelegramNotifier into the fake Bot API,
which enforces Telegram's overall flood limit, and counts what arrived. Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import DeliverySettings, DigestSettings, TelegramSettings
from bot.delivery.pacer import Pacer
from bot.digest.job import Composer, DigestJob
from bot.digest.schedule import schedule_new_digests
from bot.model import ChatKind, Observation
from bot.store import Store, open_store
from bot.telegram.app import build_application, start_telegram, stop_telegram
from bot.telegram.notifier import TelegramNotifier
from tests.harness.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TOKEN = "123:DIGEST"
AT = datetime(2025, 11, 21, 8, 0, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")


async def fill(store: Store) -> int:
    """A year of synthetic but realistically shaped series, ending at AT."""
    start = AT - timedelta(days=365)
    points: list[Observation] = []
    hours = 365 * 24
    for asset, oi in (("btc", 3.0e10), ("eth", 1.2e10)):
        for h in range(hours):
            ts = start + timedelta(hours=h)
            wave = ((h % 240) - 120) / 120
            points.append(Observation(f"oi.{asset}.total", ts, oi * (1 + 0.1 * wave)))
            if h % 8 == 0:
                points.append(Observation(f"funding.{asset}.oi_weighted", ts, 1e-4 * wave))
                points.append(Observation(f"funding.{asset}.binance", ts, 1.1e-4 * wave))
        for d in range(365):
            day = start + timedelta(days=d)
            if day.weekday() < 5:
                flow = 3e8 * (((d * 7919) % 200) - 100) / 100
                points.append(Observation(f"etf.{asset}.net_flow", day, flow))
    for d in range(365):
        points.append(Observation("fear_greed", start + timedelta(days=d), 10 + (d * 37) % 80))
    return await store.upsert_observations(points)


async def compose_times(store: Store) -> dict[str, float]:
    """Seconds for the first zone (data and chart) and the mean of each further zone."""
    composer = Composer(store, ["btc", "eth"], AT)
    started = time.perf_counter()
    await composer.compose(ZONES[0])
    first = time.perf_counter() - started
    started = time.perf_counter()
    for tz in ZONES[1:]:
        await composer.compose(tz)
    further = (time.perf_counter() - started) / (len(ZONES) - 1)
    return {"first_zone_seconds": round(first, 3), "further_zone_seconds": round(further, 4)}


async def fan_out(store: Store, chats: int, limit: float, rate: float) -> dict[str, object]:
    """Send every chat's due digest through the real stack into a rate-limited fake API."""
    ids = list(range(2_000_001, 2_000_001 + chats))
    for chat in ids:
        await store.subscribe(chat, ChatKind.PRIVATE, f"user {chat}", AT - timedelta(days=1))
    digest = DigestSettings(time="08:00", timezone="UTC")
    await schedule_new_digests(store, digest.time, digest.timezone, AT - timedelta(hours=1))
    async with FakeTelegram(token=TOKEN) as tg:
        settings = TelegramSettings.model_validate({"token": TOKEN, "api_url": tg.api_url})
        pacer = Pacer.from_settings(DeliverySettings(global_rate=rate))
        app = build_application(settings, store, lambda: AT, pacer=pacer)
        await start_telegram(app, poll_timeout=1.0)
        job = DigestJob(store, TelegramNotifier(app.bot), lambda: AT, ["btc", "eth"], digest, list)
        tg.rate_limit(per_second=limit)
        started = time.perf_counter()
        run = await job.run()
        wall = time.perf_counter() - started
        await stop_telegram(app)
        received = Counter((str(s.chat_id), s.method) for s in tg.sent())
        throttled = tg.throttled
    delivered = sum(received.values())
    return {
        "chats": chats,
        "telegram_limit_per_second": limit,
        "pacer_global_rate": rate,
        "digests_sent": run.sent,
        "messages_delivered": delivered,
        "messages_per_second": round(delivered / wall, 2),
        "fraction_of_limit": round(delivered / wall / limit, 3),
        "http_429": throttled,
        "lost": sum(
            1 for c in ids for m in ("sendMessage", "sendPhoto") if received[(str(c), m)] == 0
        ),
        "duplicated": sum(max(0, n - 1) for n in received.values()),
        "wall_seconds": round(wall, 2),
    }


async def measure(chats: int, limit: float, rate: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store(f"sqlite+aiosqlite:///{tmp}/digest.db") as store:
            points = await fill(store)
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            compose = await compose_times(store)
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            sending = await fan_out(store, chats, limit, rate)
    return {
        "benchmark": "digest",
        "points_in_store": points,
        **compose,
        "peak_rss_growth_mb_for_first_chart": round((rss_after - rss_before) / 1024, 1),
        "fan_out": sending,
        "goal": {
            "first_zone_seconds": 2.0,
            "fan_out": {"fraction_of_limit": 0.9, "http_429": 0, "lost": 0, "duplicated": 0},
        },
    }


def main() -> None:
    """Run the benchmark and write bench/results/digest.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--limit", type=float, default=30.0, help="the fake's messages a second")
    parser.add_argument("--rate", type=float, default=DeliverySettings().global_rate)
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(measure(args.chats, args.limit, args.rate))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "digest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
