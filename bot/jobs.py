"""The bodies of the scheduled jobs: poll, derive, evaluate, deliver, send digests, reload rules.

`Pipeline` is built whole from running parts by `bot.app.Runtime` and holds no scheduling of
its own, so a test can drive a job directly (docs/architecture.md, "Data flow").
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from bot.alerts.pipeline import evaluate_series
from bot.config import Settings
from bot.delivery.notifier import Sent, Text
from bot.delivery.outbox import OutboxWorker
from bot.delivery.stage import Stage
from bot.derive_job import derive_and_store
from bot.digest.job import DigestJob, DigestRun
from bot.keys import VENUES
from bot.model import Clock
from bot.polling import poll_source
from bot.rules_watch import LiveRules
from bot.sources import Source
from bot.sources.http import HttpClient, backoff_delay
from bot.store import Store

log = logging.getLogger(__name__)
Retry = Callable[[Source, timedelta], None]
"""Schedules one extra poll of a source after a delay (the runtime's scheduler)."""


@dataclass
class Pipeline:
    """One running bot's work, each step a method the scheduler (or a test) calls."""

    settings: Settings
    clock: Clock
    store: Store
    rules: LiveRules
    stage: Stage
    """For messages outside the outbox: admin notices."""
    outbox: OutboxWorker
    digests: DigestJob
    http: HttpClient
    sources: Mapping[str, Source]
    channels: Sequence[str]
    """Where every alert goes besides subscribed chats (`console` without a token)."""
    admins: Sequence[str]
    """Who hears about a broken rule edit (`console` without a token and without admins)."""
    retry: Retry
    _deliver_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _started: float = field(default_factory=time.monotonic)
    _first_poll_logged: bool = False

    async def poll(self, source: Source) -> None:
        """Poll (backfilling on first sight), evaluate, deliver; schedule a retry on failure."""
        cfg = getattr(self.settings.sources, source.name)
        first = source.name not in await self.store.source_health()
        result = await poll_source(
            source, self.http, self.store, self.clock(), backfill=first and cfg.backfill
        )
        if not self._first_poll_logged:
            self._first_poll_logged = True
            elapsed = time.monotonic() - self._started
            log.info("first poll (%s) done %.0f ms after start", source.name, elapsed * 1000)
        if not result.ok:
            retry = min(cfg.interval.total_seconds(), 30 + backoff_delay(result.failures, 30, 900))
            self.retry(source, timedelta(seconds=retry))
        series = set(result.series)
        if result.ok and source.name in VENUES:
            series |= await self._derive()
        await self._evaluate(series)

    async def _derive(self) -> set[str]:
        """Cross-venue series from the venues' newest points; fresh means within 3 intervals."""
        venues = [v for v in VENUES if v in self.sources]
        interval = max(getattr(self.settings.sources, v).interval for v in venues)
        return await derive_and_store(
            self.store, self.settings.markets.assets, venues, self.clock(), 3 * interval
        )

    async def _evaluate(self, series: set[str] | None) -> None:
        """Evaluate the rules reading `series` (None: every rule) and deliver what they owe."""
        outcome = await evaluate_series(
            self.store,
            self.rules.current,
            series,
            self.clock(),
            self.channels,
            self.settings.delivery,
        )
        if outcome.enqueued:
            await self.deliver()

    async def tick(self) -> None:
        """Evaluate every rule against the clock, even without new data."""
        await self._evaluate(None)

    async def deliver(self) -> None:
        """Drain the outbox; one drain at a time per process."""
        async with self._deliver_lock:
            await self.outbox.drain()

    async def send_digests(self) -> DigestRun:
        """Send every daily digest that is due now (each chat at its local time)."""
        return await self.digests.run()

    async def watch_rules(self) -> bool:
        """The file watcher's job: pick up a saved edit; a bad one is told to the admins."""
        result = self.rules.reload()
        if result.rules is not None:
            await self.tick()
            return True
        if result.problems:
            await self._tell_admins(
                "Rule files not reloaded; the previous rules keep running:\n"
                + "\n".join(result.problems)
            )
        return False

    async def reload(self) -> tuple[bool, list[str]]:
        """`/reload`: load the files now; (accepted, problems) go back to whoever asked."""
        result = self.rules.reload(force=True)
        if result.rules is not None:
            await self.tick()
        return result.rules is not None, list(result.problems)

    async def _tell_admins(self, text: str) -> None:
        """Best effort: one message to each admin."""
        body = f"<b>⚠️ Rules</b>\n<pre>{html.escape(text)}</pre>"
        for chat in self.admins:
            done = await self.stage.deliver(chat, Text(body))
            if not isinstance(done.verdict, Sent):
                log.warning("could not tell admin %s: %s", chat, done.verdict)
