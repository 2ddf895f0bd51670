"""A `Pipeline` built from real parts, as the runtime builds it, minus Telegram and scheduler.

Sources point at a `FakeSource`, messages go to a console stream the test reads, and retries
the pipeline asks for are only recorded (the test polls again itself).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.config import Settings
from bot.delivery.console import ConsoleNotifier
from bot.delivery.outbox import OutboxWorker
from bot.digest.job import DigestJob
from bot.jobs import Pipeline
from bot.metrics import Metrics
from bot.model import Clock
from bot.rules_watch import LiveRules
from bot.sources import Source, build_sources
from bot.sources.http import HttpClient
from bot.store import Store
from tests.harness.env import OTHER_SOURCES

CONSOLE = "console"


def pipeline_settings(tmp_path: Path, base_url: str, **extra: Any) -> Settings:
    """Only fear_greed, at `base_url`, hourly and without retries; rules from `tmp_path/rules`."""
    (tmp_path / "rules").mkdir(exist_ok=True)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        rules={"dir": str(tmp_path / "rules")},
        delivery={"grouping_window": "0s"},
        sources={
            "fear_greed": {"base_url": base_url, "interval": "1h", "retries": 0},
            **{name: {"enabled": False} for name in OTHER_SOURCES},
        },
        **extra,
    )


@asynccontextmanager
async def pipeline(
    settings: Settings, clock: Clock, store: Store, console: io.StringIO
) -> AsyncIterator[Pipeline]:
    """A pipeline over `store`; a second one over the same store is a restart."""
    notifier = ConsoleNotifier(console)
    outbox = OutboxWorker(store, notifier, clock, "test", settings.delivery)
    digests = DigestJob(
        store, notifier, clock, settings.markets.assets, settings.digest, lambda: [CONSOLE]
    )
    rules = LiveRules(settings.rules.dir)
    rules.load()
    sources = build_sources(settings.sources.enabled(), settings)
    retries: list[tuple[Source, timedelta]] = []
    async with aiohttp.ClientSession() as session:
        yield Pipeline(
            settings,
            clock,
            store,
            rules,
            outbox.stage,
            outbox,
            digests,
            HttpClient(session),
            {source.name: source for source in sources},
            [CONSOLE],
            [CONSOLE],
            lambda source, delay: retries.append((source, delay)),
            Metrics(process=False),
        )


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels), parsed as Prometheus would."""
    body = metrics.render()[0].decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
