"""The bodies of the scheduled jobs: poll, evaluate, deliver, digests, reload rules, heartbeat.

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
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from bot.alerts.pipeline import evaluate_series
from bot.config import Settings
from bot.delivery.notifier import Sent, Text, outcome
from bot.delivery.outbox import OutboxWorker
from bot.delivery.stage import Stage
from bot.derive_job import derive_and_store
from bot.digest.job import DigestJob, DigestRun
from bot.durations import format_duration
from bot.keys import VENUES
from bot.metrics import Metrics
from bot.model import Clock, SourceHealth
from bot.polling import PollResult, poll_source
from bot.rules_watch import LiveRules
from bot.sources import Source, SourceError
from bot.sources.http import HttpClient, backoff_delay
from bot.store import Store

log = logging.getLogger(__name__)
DOWN_NOTICE_AFTER = timedelta(hours=1)
"""A source without a successful poll for this long is told to the admins, once."""
FRESH_INTERVALS = 3
"""The heartbeat wants a successful poll of some source within this many of its intervals."""
HEARTBEAT_TIMEOUT = 10.0
STORE_TIMEOUT = 2.0
"""How long the store gets to answer the heartbeat's check."""
CATCH_UP_AFTER = 3
"""Intervals without a successful poll after which the next poll backfills the gap."""
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
    metrics: Metrics = field(default_factory=Metrics)
    """The bot's metrics; the outbox worker and digest job count there unless given their own."""
    _deliver_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _evaluate_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One evaluation at a time: two polls stepping a composite from the same stored state
    would both fire it."""
    _started: float = field(default_factory=time.monotonic)
    _first_poll_logged: bool = False
    _down_since: dict[str, datetime] = field(default_factory=dict)
    """First failure seen by this process of sources that never succeeded (no `last_success`)."""
    _heartbeat_skipped: str | None = None
    """Why the last heartbeat was skipped, so the reason is logged once, not every interval."""

    def __post_init__(self) -> None:
        if self.outbox.metrics is None:
            self.outbox.metrics = self.metrics
        if self.digests.metrics is None:
            self.digests.metrics = self.metrics
        self.metrics.rules_loaded(len(self.rules.current.rules))

    async def poll(self, source: Source) -> None:
        """Poll (backfilling on first sight), evaluate, deliver; schedule a retry on failure."""
        cfg = getattr(self.settings.sources, source.name)
        prev = (await self.store.source_health()).get(source.name)
        now = self.clock()
        # first sight: the whole history; after a gap (bot or store down, source failing): the
        # gap, so what was missed is not a hole in the series
        last = prev.last_success if prev is not None else None
        since = last if last is not None and now - last > CATCH_UP_AFTER * cfg.interval else None
        result = await poll_source(
            source,
            self.http,
            self.store,
            now,
            backfill=cfg.backfill and (prev is None or since is not None),
            since=since,
        )
        self.metrics.polled(source.name, result.ok, result.last_success)
        if result.ok and not self._first_poll_logged:
            self._first_poll_logged = True
            elapsed = time.monotonic() - self._started
            log.info("first poll (%s) done %.0f ms after start", source.name, elapsed * 1000)
        if not result.ok:
            retry = min(cfg.interval.total_seconds(), 30 + backoff_delay(result.failures, 30, 900))
            self.retry(source, timedelta(seconds=retry))
        await self._tell_down_or_back(prev, result)
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
        async with self._evaluate_lock:
            rules = self.rules.current
            started = time.perf_counter()
            done = await evaluate_series(
                self.store, rules, series, self.clock(), self.channels, self.settings.delivery
            )
            self.metrics.evaluated(time.perf_counter() - started)
        for transition in done.transitions:
            self.metrics.transitioned(transition.rule_id, transition.kind.value)
        self.metrics.firing([rule.id for rule in rules.rules], done.firing)
        if done.enqueued:
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
        self._count_reload(result.rules is not None, bool(result.problems))
        if result.rules is not None:
            await self.tick()
            return True
        if result.problems:
            text = "Rule files not reloaded; the previous rules keep running:\n"
            text += "\n".join(result.problems)
            await self._tell_admins(f"<b>⚠️ Rules</b>\n<pre>{html.escape(text)}</pre>")
        return False

    async def reload(self) -> tuple[bool, list[str]]:
        """`/reload`: load the files now; (accepted, problems) go back to whoever asked."""
        result = self.rules.reload(force=True)
        self._count_reload(result.rules is not None, bool(result.problems))
        if result.rules is not None:
            await self.tick()
        return result.rules is not None, list(result.problems)

    def _count_reload(self, accepted: bool, refused: bool) -> None:
        if accepted:
            self.metrics.reloaded(True)
            self.metrics.rules_loaded(len(self.rules.current.rules))
        elif refused:
            self.metrics.reloaded(False)

    async def _tell_down_or_back(self, prev: SourceHealth | None, result: PollResult) -> None:
        """Tell the admins once when a source has failed for an hour, and once when it is back.

        The store's compare-and-set marker makes it once across restarts and replicas.
        """
        name, now = result.source, self.clock()
        if result.ok:
            self._down_since.pop(name, None)
            told = prev.down_notified_at if prev is not None else None
            if told is not None and await self.store.clear_down_notified(name):
                down = (prev.last_success if prev else None) or told - DOWN_NOTICE_AFTER
                await self._tell_admins(
                    f"<b>✅ Source back</b>\n{html.escape(name)} answers again after "
                    f"{format_duration(now - down)} without a successful poll."
                )
            return
        since = result.last_success or self._down_since.setdefault(name, now)
        if now - since < DOWN_NOTICE_AFTER or (prev is not None and prev.down_notified_at):
            return
        if await self.store.mark_down_notified(name, now):
            await self._tell_admins(
                f"<b>⚠️ Source down</b>\n{html.escape(name)}: no successful poll for "
                f"{format_duration(now - since)} ({result.failures} failed).\n"
                f"Last error: <code>{html.escape(result.error)}</code>"
            )

    async def heartbeat(self) -> bool:
        """Ping `heartbeat.url` if the store answers and some source polled fine lately.

        The runtime schedules this every `heartbeat.interval` on the leader only; a skipped or
        failed ping lets the dead man's switch fire. Returns whether it pinged.
        """
        url = self.settings.heartbeat.url
        if not url:
            return False
        problem = await self._heartbeat_problem()
        if problem is not None:
            if problem != self._heartbeat_skipped:
                log.warning("heartbeat not sent: %s", problem)
            self._heartbeat_skipped = problem
            return False
        try:
            await self.http.get_text(url, timeout=HEARTBEAT_TIMEOUT, retries=1)
        except SourceError as exc:  # the URL holds the check's secret: log only its host
            log.warning("heartbeat to %s failed: %s", urlsplit(url).hostname, exc)
            return False
        if self._heartbeat_skipped is not None:
            log.info("heartbeat sent again")
            self._heartbeat_skipped = None
        return True

    async def _heartbeat_problem(self) -> str | None:
        """Why the bot is not healthy enough to say so: the store, or no fresh poll."""
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                health = await self.store.source_health()
        except Exception as exc:
            log.debug("heartbeat: store check failed: %r", exc)
            return "store unreachable"
        now = self.clock()
        for name in self.sources:
            last = health[name].last_success if name in health else None
            window = FRESH_INTERVALS * getattr(self.settings.sources, name).interval
            if last is not None and now - last <= window:
                return None
        return f"no source polled successfully within {FRESH_INTERVALS} of its intervals"

    async def _tell_admins(self, body: str) -> None:
        """Best effort: one HTML message to each admin."""
        for chat in self.admins:
            done = await self.stage.deliver(chat, Text(body))
            self.metrics.sent("notice", outcome(done.verdict))
            if not isinstance(done.verdict, Sent):
                log.warning("could not tell admin %s: %s", chat, done.verdict)
