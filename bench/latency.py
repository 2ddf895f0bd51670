"""Data-to-chat latency for a lone alert: the whole bot, a source answering in 300 ms, Telegram.

The real runtime polls a fake Fear & Greed API that adds 300 ms to each answer, evaluates the
shipped rules, enqueues the alert and delivers it to the fake Bot API. Measured from the start
of the poll to the moment the fake received the message; best and median of several alerts, each
sent more than a second after the chat's previous message (a private chat gets one a second).
Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app import Runtime
from bot.config import Settings
from bot.model import ChatKind
from bot.store import open_store
from tests.harness.env import OTHER_SOURCES
from tests.harness.fake_source import FakeSource
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.files import ROOT

RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = "123:LATENCY"
LATENCY = 0.3
CHAT = 7


def fng(points: list[tuple[datetime, int]]) -> dict[str, Any]:
    """An /fng/ answer, newest first, with strings for numbers as the real API sends."""
    data = [{"value": str(v), "timestamp": str(int(ts.timestamp()))} for ts, v in points]
    return {"name": "Fear and Greed Index", "data": data[::-1], "metadata": {"error": None}}


async def measure(alerts: int) -> dict[str, object]:
    """Fire and resolve the extreme-fear rule `alerts` times; time each firing's delivery."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=2 * alerts + 2 - i) for i in range(2 * alerts + 2)]
    history = [(day, 40) for day in days[:2]]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/latency.db"
        async with open_store(url) as store:
            await store.subscribe(CHAT, ChatKind.PRIVATE, "reader", datetime.now(UTC))
        async with FakeSource(latency=LATENCY) as src, FakeTelegram(token=TOKEN) as tg:
            src.route("GET", "/fng/", body=fng(history))
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                http={"port": 0},  # a free port: tests run side by side
                store={"url": url},
                rules={"dir": str(ROOT / "rules")},
                telegram={"token": tg.token, "api_url": tg.api_url},
                sources={
                    "fear_greed": {"base_url": src.base_url, "interval": "1h", "retries": 0},
                    **{name: {"enabled": False} for name in OTHER_SOURCES},
                },
            )
            runtime = Runtime(settings)
            await runtime.start()
            try:
                source = runtime.jobs.sources["fear_greed"]
                await runtime.jobs.poll(source)  # the start-up backfill, out of the way
                seconds = []
                for n in range(alerts):
                    fear, calm = days[2 + 2 * n], days[3 + 2 * n]
                    src.route("GET", "/fng/", body=fng([*history, (fear, 15)]))
                    before = len(tg.sent(CHAT))
                    started = time.perf_counter()
                    await runtime.jobs.poll(source)
                    await tg.wait_for(before + 1, chat_id=CHAT, timeout=60)
                    seconds.append(time.perf_counter() - started)
                    history += [(fear, 15), (calm, 40)]
                    src.route("GET", "/fng/", body=fng(history))
                    await runtime.jobs.poll(source)  # resolved: the next alert is lone again
                    await tg.wait_for(before + 2, chat_id=CHAT, timeout=60)
                    await asyncio.sleep(1.1)  # past the chat's 1/s pace, so the next is lone
            finally:
                await runtime.stop()
    return {
        "benchmark": "latency",
        "alerts": alerts,
        "source_latency_ms": LATENCY * 1000,
        "best_ms": round(min(seconds) * 1000, 1),
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "worst_ms": round(max(seconds) * 1000, 1),
        "goal": {"median_ms": 1000 + LATENCY * 1000},
        "met": statistics.median(seconds) <= 1 + LATENCY,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(measure(args.alerts))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
