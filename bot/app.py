"""Composition root: build the running parts in order, schedule the jobs, stop in reverse.

Start order: store → rules → notifier (Telegram or console) → HTTP session and sources → the
job pipeline → Telegram polling → scheduler (docs/architecture.md, "Data flow").
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from bot.config import Settings
from bot.delivery.console import ConsoleNotifier
from bot.delivery.notifier import Notifier
from bot.delivery.outbox import OutboxWorker
from bot.delivery.pacer import Pacer
from bot.digest.job import DigestJob
from bot.engine.ruleset import RuleSet
from bot.jobs import Pipeline
from bot.model import Clock, system_clock
from bot.rules_watch import LiveRules
from bot.scheduler import JobFn, Scheduler
from bot.sources import Source, build_sources
from bot.sources.http import HttpClient
from bot.store import Store, open_store

if TYPE_CHECKING:
    from bot.telegram.app import TelegramApp

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
    """One running bot: builds its parts in `start`, hands the work to a `Pipeline`."""

    jobs: Pipeline
    """The job bodies; exists from `start` on."""

    def __init__(
        self, settings: Settings, clock: Clock = system_clock, console: TextIO | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.console = console
        self.rules = LiveRules(settings.rules.dir)
        self.scheduler = Scheduler()
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}"
        self._stack = contextlib.AsyncExitStack()

    @property
    def store(self) -> Store:
        """The open store (from `start` on)."""
        return self.jobs.store

    async def start(self) -> None:
        """Open everything and schedule the first poll of every source right away."""
        try:
            await self._assemble()
        except BaseException:
            await self._stack.aclose()
            raise
        self._schedule()

    async def _assemble(self) -> None:
        """Build the parts whole, in dependency order; each one's undo goes on the exit stack."""
        import aiohttp

        try:
            store = await self._stack.enter_async_context(open_store(self.settings.store.url))
        except Exception as exc:
            raise StartupError(f"store.url: cannot open the store: {exc}") from None
        # SQLite is one process by design: whatever an earlier (killed) run had claimed but not
        # sent goes back in the queue. On PostgreSQL, claims expire instead (see claim_outbox).
        single = self.settings.store.url.startswith("sqlite")
        await store.release_claims("*" if single else self.worker_id)
        self._stack.push_async_callback(store.release_claims, self.worker_id)
        self.rules.load()
        notifier, telegram = self._notifier(store)
        console = isinstance(notifier, ConsoleNotifier)
        channels = [CONSOLE] if console else list(self.settings.telegram.channels)
        admins = [str(a) for a in self.settings.telegram.admin_ids] or (
            [CONSOLE] if console else []
        )
        session = aiohttp.ClientSession(headers={"User-Agent": "stablewatch/0.1"})
        self._stack.push_async_callback(session.close)
        outbox = OutboxWorker(store, notifier, self.clock, self.worker_id, self.settings.delivery)
        digests = DigestJob(
            store,
            notifier,
            self.clock,
            self.settings.markets.assets,
            self.settings.digest,
            lambda: channels,
            self.rule_set,
            max_retry_wait=self.settings.delivery.max_retry_wait.total_seconds(),
        )
        sources = build_sources(self.settings.sources.enabled(), self.settings)
        self.jobs = Pipeline(
            self.settings,
            self.clock,
            store,
            self.rules,
            outbox.stage,
            outbox,
            digests,
            HttpClient(session),
            {source.name: source for source in sources},
            channels,
            admins,
            self._retry,
        )
        if telegram is not None:
            await self._start_telegram(telegram)

    def _notifier(self, store: Store) -> tuple[Notifier, TelegramApp | None]:
        """Telegram when a token is set, else the console, said in one line."""
        if not self.settings.telegram.token.get_secret_value():
            log.info("no telegram.token set: alerts and digests go to the console")
            return ConsoleNotifier(self.console), None
        from bot.telegram.app import build_application
        from bot.telegram.notifier import TelegramNotifier

        pacer = Pacer.from_settings(self.settings.delivery)
        app = build_application(
            self.settings.telegram, store, self.clock, service=self, pacer=pacer
        )
        paid = self.settings.delivery.paid_broadcast
        return TelegramNotifier(app.bot, paid_broadcast=paid), app

    async def _start_telegram(self, app: TelegramApp) -> None:
        """Check the token and start polling; a refusal stops the start with one line."""
        from bot.telegram.app import TelegramStartError, start_telegram, stop_telegram

        try:
            await start_telegram(app)
        except TelegramStartError as exc:
            raise StartupError(str(exc)) from None
        self._stack.push_async_callback(stop_telegram, app)
        log.info("telegram: polling as @%s", app.bot.username)

    def _schedule(self) -> None:
        """Every source at once and then on its interval; delivery, ticks, reloads, digests."""
        jobs = self.jobs
        for name, source in jobs.sources.items():
            cfg = getattr(self.settings.sources, name)
            first = datetime.now(UTC)  # the scheduler runs on the wall clock
            self.scheduler.every(f"poll:{name}", cfg.interval, self._poll(source), first=first)
        self.scheduler.every("deliver", DELIVERY_INTERVAL, jobs.deliver)
        self.scheduler.every("tick", TICK_INTERVAL, jobs.tick)
        self.scheduler.every("reload", RELOAD_INTERVAL, jobs.watch_rules)
        # first run at once: a digest that fell due while the bot was down goes out on start
        self.scheduler.every("digest", DIGEST_INTERVAL, jobs.send_digests, first=datetime.now(UTC))
        self.scheduler.start()

    def _poll(self, source: Source) -> JobFn:
        """The job that polls one source."""

        async def job() -> None:
            await self.jobs.poll(source)

        return job

    def _retry(self, source: Source, delay: timedelta) -> None:
        """One extra poll after a failure, before the source's next regular turn."""
        self.scheduler.once(f"retry:{source.name}", delay, self._poll(source))

    async def stop(self) -> None:
        """Stop in reverse order; running jobs finish (or are cancelled after a grace period)."""
        await self.scheduler.stop()
        await self._stack.aclose()

    # the chat commands' `Service` -----------------------------------------------------------
    def rule_set(self) -> RuleSet:
        """The rules running now."""
        return self.rules.current

    def now(self) -> datetime:
        """The runtime clock, so commands and alerts agree on time."""
        return self.clock()

    async def reload(self) -> tuple[bool, list[str]]:
        """`/reload`: a set with issues is refused and the old one kept."""
        return await self.jobs.reload()


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
