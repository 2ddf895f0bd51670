"""Wiring and start/stop order: store → rules → notifier → sources → scheduler."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from bot.alerts.pipeline import evaluate_series
from bot.config import Settings
from bot.delivery.console import ConsoleNotifier
from bot.delivery.notifier import DeliveryError, Notifier
from bot.delivery.outbox import OutboxWorker
from bot.derive_job import derive_and_store
from bot.digest.job import DigestJob, DigestRun
from bot.engine.rules import RuleSet, load_rules
from bot.model import Clock, system_clock
from bot.polling import poll_source
from bot.rules_watch import RulesWatcher
from bot.scheduler import Scheduler
from bot.sources import Source, build_sources
from bot.sources.derived import VENUES
from bot.sources.http import HttpClient, backoff_delay
from bot.store import Store, open_store

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)
DELIVERY_INTERVAL = timedelta(seconds=5)
TICK_INTERVAL = timedelta(minutes=5)
"""How often every rule is evaluated on the clock alone: no_data, composite windows, removals."""
RELOAD_INTERVAL = timedelta(seconds=2)
DIGEST_INTERVAL = timedelta(seconds=30)
"""How often due digests are looked for: each goes out within this of its local time."""
CONSOLE = "console"


class StartupError(Exception):
    """The bot cannot start (bad token, unreachable store); the message is one line."""


class Runtime:
    """One running bot: owns the store, HTTP session, scheduler, notifier and Telegram app."""

    def __init__(
        self, settings: Settings, clock: Clock = system_clock, console: TextIO | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.console = console
        self.rules = RuleSet()
        self.scheduler = Scheduler()
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}"
        self._deliver_lock = asyncio.Lock()
        self._started = time.monotonic()
        self._first_poll_logged = False
        self._store: Store | None = None
        self._closing = AsyncExitStack()  # closes what start opened (the store)
        self._session: aiohttp.ClientSession | None = None
        self._telegram: Any = None
        self._notifier: Notifier | None = None
        self._outbox: OutboxWorker | None = None
        self._digests: DigestJob | None = None
        self._http: HttpClient | None = None
        self._watcher = RulesWatcher(settings.rules.dir)
        self.sources: dict[str, Source] = {}

    @property
    def store(self) -> Store:
        """The open store; only valid between start and stop."""
        assert self._store is not None, "runtime not started"
        return self._store

    def _load_rules(self) -> None:
        """Load the rule files; a broken file is logged and the others still run."""
        self.rules = load_rules(self.settings.rules.dir)
        for issue in self.rules.issues:
            log.error("rules: %s", issue)
        log.info("loaded %d rule(s) from %s", len(self.rules.rules), self.settings.rules.dir)

    async def _start_notifier(self) -> None:
        """Telegram when a token is set, else the console, said in one line."""
        token = self.settings.telegram.token.get_secret_value()
        if not token:
            log.info("no telegram.token set: alerts and digests go to the console")
            self._notifier = ConsoleNotifier(self.console)
            return
        from bot.telegram.app import TelegramStartError, build_application, start_telegram
        from bot.telegram.notifier import TelegramNotifier

        app = build_application(self.settings.telegram, self.store, self.clock, service=self)
        try:
            await start_telegram(app)
        except TelegramStartError as exc:
            raise StartupError(str(exc)) from None
        self._telegram = app
        self._notifier = TelegramNotifier(app.bot)
        log.info("telegram: polling as @%s", app.bot.username)

    @property
    def channels(self) -> list[str]:
        """Where every alert goes besides subscribed chats (the console when there is no token)."""
        if isinstance(self._notifier, ConsoleNotifier):
            return [CONSOLE]
        return list(self.settings.telegram.channels)

    async def start(self) -> None:
        """Open everything and schedule the first poll of every source right away."""
        import aiohttp

        try:
            opening = open_store(self.settings.store.url)
            self._store = await self._closing.enter_async_context(opening)
        except Exception as exc:
            raise StartupError(f"store.url: cannot open the store: {exc}") from None
        self._load_rules()
        # SQLite is one process by design: whatever an earlier (killed) run had claimed but not
        # sent goes back in the queue. On PostgreSQL, claims expire instead (see claim_outbox).
        single = self.settings.store.url.startswith("sqlite")
        await self.store.release_claims("*" if single else self.worker_id)
        await self._start_notifier()
        assert self._notifier is not None
        self._outbox = OutboxWorker(
            self.store, self._notifier, self.clock, self.worker_id, self.settings.delivery
        )
        self._digests = DigestJob(
            self.store,
            self._notifier,
            self.clock,
            self.settings.markets.assets,
            self.settings.digest,
            lambda: self.channels,
            self._outbox.pacer,  # digests and alerts share one set of rate limits
            self.rule_set,
        )
        self._session = aiohttp.ClientSession(headers={"User-Agent": "stablewatch/0.1"})
        http = self._http = HttpClient(self._session)
        for source in build_sources(self.settings.sources.enabled(), self.settings):
            self.sources[source.name] = source
            cfg = getattr(self.settings.sources, source.name)
            self.scheduler.every(
                f"poll:{source.name}",
                cfg.interval,
                self._poll_job(source, http),
                first=datetime.now(UTC),  # the scheduler runs on the wall clock
            )
        self.scheduler.every("deliver", DELIVERY_INTERVAL, self.deliver)
        self.scheduler.every("tick", TICK_INTERVAL, self.tick)
        self.scheduler.every("reload", RELOAD_INTERVAL, self.reload_rules)
        # first run at once: a digest that fell due while the bot was down goes out on start
        self.scheduler.every("digest", DIGEST_INTERVAL, self.send_digests, first=datetime.now(UTC))
        self.scheduler.start()

    def _poll_job(self, source: Source, http: HttpClient) -> Any:
        """Build the job that polls a source, evaluates what changed and delivers at once."""

        async def job() -> None:
            await self.poll(source, http)

        return job

    async def poll(self, source: Source, http: HttpClient) -> None:
        """Poll (backfilling on first sight), evaluate, deliver; schedule a retry on failure."""
        cfg = getattr(self.settings.sources, source.name)
        first = source.name not in await self.store.source_health()
        result = await poll_source(
            source, http, self.store, self.clock(), backfill=first and cfg.backfill
        )
        if not self._first_poll_logged:
            self._first_poll_logged = True
            elapsed = time.monotonic() - self._started
            log.info("first poll (%s) done %.0f ms after start", source.name, elapsed * 1000)
        if not result.ok:
            retry = min(cfg.interval.total_seconds(), 30 + backoff_delay(result.failures, 30, 900))
            self.scheduler.once(
                f"retry:{source.name}", timedelta(seconds=retry), self._poll_job(source, http)
            )
        series = set(result.series)
        if result.ok and source.name in VENUES:
            series |= await self._derive()
        outcome = await evaluate_series(
            self.store, self.rules, series, self.clock(), self.channels, self.settings.delivery
        )
        if outcome.enqueued:
            await self.deliver()

    async def _derive(self) -> set[str]:
        """Cross-venue series from the venues' newest points; fresh means within 3 intervals."""
        venues = [v for v in VENUES if v in self.sources]
        interval = max(getattr(self.settings.sources, v).interval for v in venues)
        return await derive_and_store(
            self.store, self.settings.markets.assets, venues, self.clock(), 3 * interval
        )

    async def tick(self) -> None:
        """Evaluate every rule against the clock, even without new data."""
        outcome = await evaluate_series(
            self.store, self.rules, None, self.clock(), self.channels, self.settings.delivery
        )
        if outcome.enqueued:
            await self.deliver()

    async def reload_rules(self) -> bool:
        """Pick up saved rule files; a bad edit keeps the running set and tells the admins."""
        result = self._watcher.check()
        if result.rules is not None:
            self.rules = result.rules
            log.info("rules reloaded: %d rule(s)", len(self.rules.rules))
            await self.tick()
            return True
        if result.problems:
            text = "Rule files not reloaded; the previous rules keep running:\n" + "\n".join(
                result.problems
            )
            log.error("%s", text)
            await self._tell_admins(text)
        return False

    async def _tell_admins(self, text: str) -> None:
        """Best effort: a message to each admin; the console notifier prints it."""
        import html

        if self._notifier is None:
            return
        targets = [str(a) for a in self.settings.telegram.admin_ids] or (
            [CONSOLE] if isinstance(self._notifier, ConsoleNotifier) else []
        )
        for chat in targets:
            try:
                await self._notifier.send(chat, f"<b>⚠️ Rules</b>\n<pre>{html.escape(text)}</pre>")
            except DeliveryError as exc:
                log.warning("could not tell admin %s: %s", chat, exc)

    async def poll_now(self, name: str) -> None:
        """Poll one source at once, outside its schedule (tests, admin commands)."""
        assert self._http is not None, "runtime not started"
        await self.poll(self.sources[name], self._http)

    async def deliver(self) -> None:
        """Drain the outbox; one drain at a time per process."""
        if self._outbox is None:
            return
        async with self._deliver_lock:
            await self._outbox.drain()

    async def send_digests(self) -> DigestRun:
        """Send every daily digest that is due now (each chat at its local time)."""
        if self._digests is None:
            return DigestRun()
        return await self._digests.run()

    async def stop(self) -> None:
        """Stop in reverse order; running jobs finish (or are cancelled after a grace period)."""
        await self.scheduler.stop()
        if self._telegram is not None:
            from bot.telegram.app import stop_telegram

            await stop_telegram(self._telegram)
        if self._session is not None:
            await self._session.close()
        if self._store is not None:
            await self._store.release_claims(self.worker_id)
        await self._closing.aclose()

    def rule_set(self) -> RuleSet:
        """The rules running now (the `Service` protocol, for chat commands)."""
        return self.rules

    def now(self) -> datetime:
        """The runtime clock (the `Service` protocol)."""
        return self.clock()

    async def reload(self) -> tuple[bool, list[str]]:
        """Load the rule files now (/reload); a set with issues is refused and the old one kept."""
        loaded = load_rules(self.settings.rules.dir)
        if loaded.issues:
            return False, [str(issue) for issue in loaded.issues]
        self.rules = loaded
        log.info("rules reloaded on request: %d rule(s)", len(loaded.rules))
        await self.tick()
        return True, []


async def run(settings: Settings, stop: asyncio.Event, clock: Clock = system_clock) -> None:
    """Run the bot until `stop` is set."""
    runtime = Runtime(settings, clock)
    try:
        await runtime.start()
        gc.collect()
        gc.freeze()  # start-up objects live forever: keep them out of full collections' pauses
        log.info("stablewatch running; Ctrl-C stops")
        await stop.wait()
        log.info("stopping")
    finally:
        await runtime.stop()
