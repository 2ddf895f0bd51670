"""The one APScheduler 3 `AsyncIOScheduler`, with jobs whose in-flight work survives shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

JobFn = Callable[[], Awaitable[Any]]


class Scheduler:
    """Owns the scheduler and the set of running jobs, so stop can let them finish."""

    def __init__(self, quiet: Callable[[Exception], str | None] = lambda _exc: None) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._inflight: set[asyncio.Task[Any]] = set()
        self._quiet = quiet
        """Names an expected failure (store down, replica deposed) in a line, without traceback."""

    def _tracked(self, name: str, fn: JobFn) -> JobFn:
        """Run the job in its own task, shielded, so a scheduler shutdown cannot cut it midway."""

        async def guarded() -> None:
            try:
                await fn()
            except Exception as exc:
                expected = self._quiet(exc)
                if expected is None:
                    log.exception("job %s failed", name)
                else:
                    log.debug("job %s stopped: %s", name, expected)

        async def run() -> None:
            task = asyncio.ensure_future(guarded())
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
                log.debug("job %s cancelled", name)  # by stop or clear: not an error

        return run

    def every(
        self, name: str, interval: timedelta, fn: JobFn, *, first: datetime | None = None
    ) -> None:
        """Add an interval job: one instance at a time, missed runs coalesced, generous grace.

        APScheduler reads an explicit `next_run_time=None` as "paused", so it is only passed when
        a first run is wanted.
        """
        first_run = {"next_run_time": first} if first is not None else {}
        self._scheduler.add_job(
            self._tracked(name, fn),
            "interval",
            seconds=interval.total_seconds(),
            id=name,
            name=name,
            **first_run,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(60, int(interval.total_seconds())),
            replace_existing=True,
        )

    def once(self, name: str, delay: timedelta, fn: JobFn) -> None:
        """Add (or move) a one-shot job `delay` from now on the wall clock, e.g. a poll retry."""
        self._scheduler.add_job(
            self._tracked(name, fn),
            "date",
            run_date=datetime.now(UTC) + delay,
            id=name,
            name=name,
            max_instances=1,
            misfire_grace_time=60,
            replace_existing=True,
        )

    def has_job(self, name: str) -> bool:
        """Whether a job is scheduled under this name."""
        return self._scheduler.get_job(name) is not None

    async def clear(self, grace: float = 0.0) -> int:
        """Remove every job and cancel running ones after `grace` seconds (a replica deposed)."""
        self._scheduler.remove_all_jobs()
        return await self._drain(grace)

    def start(self) -> None:
        """Start inside the running loop (APScheduler 3.11 requires it)."""
        self._scheduler.start()

    async def stop(self, grace: float = 10.0) -> int:
        """Stop scheduling, give running jobs `grace` seconds, then cancel what is left."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        return await self._drain(grace)

    async def _drain(self, grace: float) -> int:
        """Give running jobs `grace` seconds, then cancel what is left; return how many."""
        pending = [t for t in self._inflight if not t.done()]
        if not pending:
            return 0
        log.info("waiting for %d running job(s) to finish", len(pending))
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=2)
        return len(late)
