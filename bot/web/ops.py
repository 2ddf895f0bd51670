"""Operations routes: `/healthz` (liveness), `/readyz` (readiness), `/metrics` (Prometheus).

Liveness checks only this process and its event loop, never the store or Telegram, so a
database blip does not restart every replica at once; readiness may check them, bounded in
time (docs/architecture.md, "Operations: HTTP server and metrics").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.metrics import Metrics
from bot.store import SourceHealthLog
from bot.web.server import WebServer

log = logging.getLogger(__name__)
Readiness = Callable[[], Awaitable[str | None]]
"""None when ready, else one line saying why not (`standby`, `store unreachable` …)."""
READINESS_TIMEOUT = 3.0
"""A readiness check that takes longer answers 503: a probe must never hang."""
STORE_TIMEOUT = 1.0
"""How long the store gets to answer a readiness or heartbeat check."""
TEXT = "text/plain; charset=utf-8"


class LoopWatchdog:
    """Measures how late the event loop wakes a sleeper; starved lately means unhealthy."""

    def __init__(self, interval: float = 0.5, threshold: float = 5.0, window: float = 30.0) -> None:
        self.interval = interval
        self.threshold = threshold
        """Lag that counts as starved (a stuck loop does not answer at all: the probe times out)."""
        self.window = window
        """How long a starved moment keeps `/healthz` failing, so a periodic probe sees it."""
        self._beat = time.monotonic()
        self._lags: deque[tuple[float, float]] = deque()

    async def run(self) -> None:
        """Sleep `interval` again and again and note how late each wake-up was."""
        self._beat = time.monotonic()  # the server may start long after it was built
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.interval)
            self._beat = time.monotonic()
            lag = self._beat - start - self.interval
            if lag >= self.threshold:
                log.warning("event loop was blocked for %.1f s", lag)
                self._lags.append((self._beat, lag))

    def worst_lag(self) -> float:
        """The longest lag within the window, counting a wake-up that is overdue right now."""
        now = time.monotonic()
        while self._lags and self._lags[0][0] < now - self.window:
            self._lags.popleft()
        overdue = now - self._beat - self.interval
        return max([overdue, *(lag for _, lag in self._lags)])

    def problem(self) -> str | None:
        """Why the loop is unhealthy, or None."""
        lag = self.worst_lag()
        return f"event loop lagged {lag:.1f} s" if lag >= self.threshold else None


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body.encode(), headers={"Content-Type": TEXT})


async def bounded(check: Readiness, timeout: float, reason: str) -> str | None:
    """Run a check; `reason` if it does not answer within `timeout` or raises."""
    try:
        async with asyncio.timeout(timeout):
            return await check()
    except TimeoutError:
        return reason
    except Exception as exc:
        log.debug("readiness check failed: %r", exc)
        return reason


async def store_problem(store: SourceHealthLog, timeout: float = STORE_TIMEOUT) -> str | None:
    """`store unreachable` unless a small read answers within `timeout`."""

    async def read() -> None:
        await store.source_health()

    return await bounded(read, timeout, "store unreachable")


def first_problem(*checks: Readiness) -> Readiness:
    """One readiness of several, in order: the first reason found is the answer."""

    async def check() -> str | None:
        for one in checks:
            if (reason := await one()) is not None:
                return reason
        return None

    return check


def mount_operations(
    server: WebServer,
    metrics: Metrics,
    readiness: Readiness,
    *,
    watchdog: LoopWatchdog | None = None,
    readiness_timeout: float = READINESS_TIMEOUT,
) -> LoopWatchdog:
    """Add `/healthz`, `/readyz` and `/metrics` to a server not yet started; return its watchdog."""
    dog = watchdog or LoopWatchdog()
    server.background(dog.run)

    async def healthz(_request: web.Request) -> web.Response:
        problem = dog.problem()
        return _text("ok") if problem is None else _text(problem, 503)

    async def readyz(_request: web.Request) -> web.Response:
        reason = await bounded(readiness, readiness_timeout, "readiness check timed out")
        return _text("ready") if reason is None else _text(reason, 503)

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = metrics.render(request.headers.get("Accept", ""))
        # set as a header: aiohttp refuses a content_type= argument with a charset in it
        return web.Response(body=body, headers={"Content-Type": content_type})

    server.add("GET", "/healthz", healthz)
    server.add("GET", "/readyz", readyz)
    server.add("GET", "/metrics", scrape)
    return dog
