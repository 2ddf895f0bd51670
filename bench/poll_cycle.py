"""Poll-cycle benchmark: every source at once against a fake server adding 300 ms to each answer.

If sources and their requests run concurrently, one cycle costs about one latency; run one
after another it would cost the number of requests times the latency.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bot.config import Settings
from bot.sources import build_sources
from bot.sources.http import HttpClient
from tests.harness.fake_source import FakeSource
from tests.harness.recorded import route_everything

RESULTS = Path(__file__).resolve().parent / "results"
LATENCY = 0.3
NOW = datetime(2025, 11, 29, 12, tzinfo=UTC)  # after the newest fixture day


async def cycle() -> dict[str, object]:
    """Time one concurrent poll of every source, best of three."""
    async with FakeSource(latency=LATENCY) as src:
        route_everything(src)
        keyed = {"base_url": src.base_url, "api_key": "bench-key", "enabled": True, "retries": 0}
        names = (
            "fear_greed",
            "farside",
            "sosovalue",
            "coinglass",
            "binance",
            "bybit",
            "okx",
            "hyperliquid",
        )
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            sources={**{n: keyed for n in names}, "http_json": {"enabled": False}},
        )
        sources = build_sources(settings.sources.enabled(), settings)
        walls = []
        async with aiohttp.ClientSession() as session:
            http = HttpClient(session)
            for _ in range(3):
                before = len(src.requests)
                start = time.perf_counter()
                results = await asyncio.gather(*(s.poll(http, NOW) for s in sources))
                walls.append(time.perf_counter() - start)
                requests = len(src.requests) - before
        points = sum(len(r) for r in results)
    wall = min(walls)
    return {
        "benchmark": "poll_cycle",
        "sources": len(sources),
        "requests_per_cycle": requests,
        "latency_seconds": LATENCY,
        "wall_seconds": round(wall, 3),
        "wall_in_latencies": round(wall / LATENCY, 2),
        "sequential_would_take_seconds": round(requests * LATENCY, 1),
        "points": points,
        "goal": "wall close to one latency",
    }


def main() -> None:
    """Run and write bench/results/poll_cycle.json."""
    result = asyncio.run(cycle())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "poll_cycle.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
