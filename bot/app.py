"""Composition root: build the running parts in order, lead or stand by, stop in reverse.

Start order: store → rules → notifier (Telegram or console) → HTTP session and sources → the
job pipeline → Telegram (opened, not yet receiving) → scheduler → leadership. Only the leader
schedules jobs and receives updates; SQLite is one process and always leads
(docs/architecture.md, "Data flow" and "High availability").
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
from bot.leadership import Leadership
from bot.model import Clock, system_clock
from bot.rules_watch import LiveRules
from bot.scheduler import JobFn, Scheduler
from bot.sources import Source, build_sources
from bot.sources.http import HttpClient
from bot.store import Deposed, Store, open_store
from bot.store.solo import StoreInUseError, single_process

if TYPE_CHECKING:
    from bot.telegram.app import TelegramApp
    from bot.telegram.link import Link

log = logging.getLogger(__name__)
DELIVERY_INTERVAL = timedelta(seconds=5)
TICK_INTERVAL = timedelta(minutes=5)
"""How often every rule is evaluated on the clock alone: no_data, composite windows, removals."""
RELOAD_INTERVAL = timedelta(seconds=2)
DIGEST_INTERVAL = timedelta(seconds=30)
"""How often due digests are looked for: each goes out within this of its local time."""
FORGET_INTERVAL = timedelta(hours=1)
UPDATE_MEMORY = timedelta(days=2)
"""Handled update ids kept this long: Telegram keeps an unconfirmed update 24 hours."""
CONSOLE = "console"


def expected_failure(exc: Exception) -> str | None:
    """Name a job failure that is the store's or the lease's, not a bug: no traceback."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, Deposed):
        return f"another replica leads now ({exc})"
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
    ):
        return "the store connection was lost"
    if isinstance(exc, (OSError, TimeoutError)):
        return f"the store does not answer ({type(exc).__name__})"
    try:  # asyncpg's own errors while (re)connecting are not wrapped by SQLAlchemy
        from asyncpg import exceptions as pg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return None
    lost = (pg.PostgresConnectionError, pg.OperatorInterventionError, pg.InterfaceError)
    if isinstance(exc, lost):
        return f"the store connection was lost ({type(exc).__name__})"
    return None


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
        self.scheduler = Scheduler(quiet=expected_failure)
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}"
        self.single = settings.store.url.startswith("sqlite")
        """SQLite: one process, always the leader; PostgreSQL: replicas elect one."""
        self.leadership: Leadership | None = None
        self.leading = False
        self.telegram: TelegramApp | None = None
        self.link: Link | None = None
        self.http_port: int | None = None
        """The HTTP server's port once it serves (`http.port` 0 picks one)."""
        self._stack = contextlib.AsyncExitStack()

    @property
    def store(self) -> Store:
        """The open store (from `start` on)."""
        return self.jobs.store

    async def start(self) -> None:
        """Open everything and schedule the first poll of every source right away."""
        try:
            await self._assemble()
            self.scheduler.start()
            if self.single:
                await self._lead(0)
            else:
                self._elect()
        except BaseException:
            await self._stack.aclose()
            raise

    def _elect(self) -> None:
        """Stand by and compete for the lease in the background; the exit stack resigns."""
        self.leadership = Leadership(
            self.store, self.worker_id, self.settings.ha.lease, self._lead, self._follow
        )
        task = asyncio.create_task(self.leadership.run(), name="leadership")
        log.info(
            "standing by for the leader lease (%.0f s)", self.settings.ha.lease.total_seconds()
        )

        async def resign() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self.leadership is not None:
                await self.leadership.resign()

        self._stack.push_async_callback(resign)

    async def _lead(self, epoch: int) -> None:
        """Become the replica that polls, evaluates, sends and receives updates."""
        if epoch:  # the previous leader is fenced off: its claimed rows are ours to send
            released = await self.store.release_claims("*")
            if released:
                log.info("took over %d outbox row(s) the previous leader had claimed", released)
        self.leading = True
        self.jobs.metrics.set_leader(True)
        self._schedule()
        if self.telegram is not None:
            from bot.telegram.app import TelegramStartError, lead_telegram

            try:
                await lead_telegram(self.telegram, link=self.link)
            except TelegramStartError as exc:
                raise StartupError(str(exc)) from None
            mode = self.settings.telegram.mode
            log.info("telegram: receiving updates (%s) as @%s", mode, self.telegram.bot.username)

    async def _follow(self, reason: str) -> None:
        """Stop everything only the leader does, at once: jobs, then receiving updates."""
        self.leading = False
        self.jobs.metrics.set_leader(False)
        await self.scheduler.clear()
        if self.telegram is not None:
            from bot.telegram.app import follow_telegram

            await follow_telegram(self.telegram)

    async def _assemble(self) -> None:
        """Build the parts whole, in dependency order; each one's undo goes on the exit stack."""
        import aiohttp

        try:
            self._stack.enter_context(single_process(self.settings.store.url))
        except StoreInUseError as exc:
            raise StartupError(str(exc)) from None
        try:
            store = await self._stack.enter_async_context(open_store(self.settings.store.url))
        except Exception as exc:
            raise StartupError(f"store.url: cannot open the store: {exc}") from None
        # SQLite is one process by design: whatever an earlier (killed) run had claimed but not
        # sent goes back in the queue. On PostgreSQL the next leader releases them (`_lead`).
        await store.release_claims("*" if self.single else self.worker_id)
        self._stack.push_async_callback(self._hand_back_claims, store)
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
            sources=self.settings.sources,
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
        await self._serve_http(telegram)
        if telegram is not None:
            await self._start_telegram(telegram)

    async def _serve_http(self, telegram: TelegramApp | None) -> None:
        """Health, readiness, metrics and (webhook mode) Telegram's posts, on one server."""
        if not self.settings.http.enabled:
            return
        from bot.web.ops import mount_operations
        from bot.web.server import WebServer

        server = WebServer(self.settings.http.host, self.settings.http.port)
        mount_operations(server, self.jobs.metrics, self.readiness)
        tg = self.settings.telegram
        if telegram is not None and tg.mode == "webhook":
            from bot.telegram.link import WEBHOOK_PATH, queue_update, webhook_route

            accept = queue_update(telegram.bot, telegram.update_queue)
            secret = tg.webhook_secret.get_secret_value()
            server.add("POST", WEBHOOK_PATH, webhook_route(secret, lambda: self.leading, accept))
        try:
            await server.start()
        except OSError as exc:
            raise StartupError(
                f"http.port: cannot serve on {self.settings.http.host}:"
                f"{self.settings.http.port}: {exc.strerror or exc}"
            ) from None
        self._stack.push_async_callback(server.stop)
        self.http_port = server.port

    async def _hand_back_claims(self, store: Store) -> None:
        """On the way out, put what this process claimed but never sent back in the queue."""
        try:
            await store.release_claims(self.worker_id)
        except Exception as exc:  # deposed or store gone: the next leader releases them
            log.info("outbox claims left to the next leader: %s", expected_failure(exc) or exc)

    def _notifier(self, store: Store) -> tuple[Notifier, TelegramApp | None]:
        """Telegram when a token is set, else the console, said in one line."""
        if not self.settings.telegram.token.get_secret_value():
            log.info("no telegram.token set: alerts and digests go to the console")
            return ConsoleNotifier(self.console), None
        from bot.telegram.app import build_application
        from bot.telegram.link import Link
        from bot.telegram.notifier import TelegramNotifier

        pacer = Pacer.from_settings(self.settings.delivery)
        self.link = Link()
        app = build_application(
            self.settings.telegram,
            store,
            self.clock,
            service=self,
            pacer=pacer,
            link=self.link,
            gate=self.send_gate,
        )
        paid = self.settings.delivery.paid_broadcast
        return TelegramNotifier(app.bot, paid_broadcast=paid), app

    async def _start_telegram(self, app: TelegramApp) -> None:
        """Check the token and start the application; a refusal stops the start with one line."""
        from bot.telegram.app import TelegramStartError, open_telegram, stop_telegram

        try:
            await open_telegram(app)
        except TelegramStartError as exc:
            raise StartupError(str(exc)) from None
        self._stack.push_async_callback(stop_telegram, app)
        self.telegram = app

    def _schedule(self) -> None:
        """Every source at once and then on its interval; delivery, ticks, reloads, digests."""
        jobs = self.jobs
        for name, source in jobs.sources.items():
            cfg = getattr(self.settings.sources, name)
            first = datetime.now(UTC)  # the scheduler runs on the wall clock
            self.scheduler.every(f"poll:{name}", cfg.interval, self._poll(source), first=first)
        # at once too: a new leader sends what the old one left in the outbox without waiting
        self.scheduler.every("deliver", DELIVERY_INTERVAL, jobs.deliver, first=datetime.now(UTC))
        self.scheduler.every("tick", TICK_INTERVAL, jobs.tick)
        self.scheduler.every("reload", RELOAD_INTERVAL, jobs.watch_rules)
        # first run at once: a digest that fell due while the bot was down goes out on start
        self.scheduler.every("digest", DIGEST_INTERVAL, jobs.send_digests, first=datetime.now(UTC))
        if self.telegram is not None:
            self.scheduler.every("forget-updates", FORGET_INTERVAL, self._forget_updates)
        if self.settings.heartbeat.url:
            self.scheduler.every("heartbeat", self.settings.heartbeat.interval, jobs.heartbeat)

    async def _forget_updates(self) -> None:
        """Drop handled update ids Telegram can no longer send again."""
        await self.store.forget_updates(self.clock() - UPDATE_MEMORY)

    def send_gate(self) -> str | None:
        """Why this replica must not send now, or None: only a leader inside its term sends."""
        if self.leadership is None or self.leadership.trusted():
            return None
        return "this replica is not (or may no longer be) the leader"

    async def readiness(self) -> str | None:
        """None when this replica leads, its store answers and Telegram is reachable; else why."""
        from bot.web.ops import store_problem

        if not self.leading:
            return "standby"
        if (problem := await store_problem(self.store)) is not None:
            return problem
        if self.link is not None and not self.link.connected:
            return self.link.reason
        return None

    def _poll(self, source: Source) -> JobFn:
        """The job that polls one source."""

        async def job() -> None:
            await self.jobs.poll(source)

        return job

    def _retry(self, source: Source, delay: timedelta) -> None:
        """One extra poll after a failure, before the source's next regular turn."""
        self.scheduler.once(f"retry:{source.name}", delay, self._poll(source))

    async def stop(self) -> None:
        """Hand the lease back, stop the jobs (running ones get a grace period), close the rest."""
        if self.leadership is not None:
            await self.leadership.resign()
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
