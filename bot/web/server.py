"""One aiohttp server in the bot's event loop; a route is one `add` line before `start`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from aiohttp import web

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Background = Callable[[], Coroutine[Any, Any, None]]
SHUTDOWN_TIMEOUT = 2.0
"""Seconds open requests get to finish at stop: probes and scrapes are short."""


class WebServer:
    """Collects routes, then serves them from `start` to `stop` (aiohttp freezes its router)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._routes: list[tuple[str, str, Handler]] = []
        self._background: list[Background] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

    def add(self, method: str, path: str, handler: Handler) -> None:
        """Serve `method path` with `handler`; a GET answers HEAD too."""
        if self._runner is not None:
            raise RuntimeError(f"cannot add {method} {path}: the server is already running")
        self._routes.append((method.upper(), path, handler))

    def background(self, run: Background) -> None:
        """Run a task for as long as the server runs (a watchdog); cancelled at stop."""
        if self._runner is not None:
            raise RuntimeError("cannot add a background task: the server is already running")
        self._background.append(run)

    @property
    def port(self) -> int:
        """The port listened on: the one picked when configured as 0, once started."""
        return self._port

    @property
    def url(self) -> str:
        """The server's own address, for logs and tests."""
        return f"http://{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        """Between `start` and `stop`."""
        return self._runner is not None

    async def start(self) -> None:
        """Register the routes, listen, start the background tasks; log the address once."""
        if self._runner is not None:
            return
        app = web.Application()
        for method, path, handler in self._routes:
            if method == "GET":
                app.router.add_get(path, handler)  # allow_head: probes may use HEAD
            else:
                app.router.add_route(method, path, handler)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner = runner
        self._tasks = [asyncio.create_task(run()) for run in self._background]
        paths = " ".join(sorted({path for _, path, _ in self._routes}))
        log.info("http: serving on %s (%s)", self.url, paths or "no routes")

    async def stop(self) -> None:
        """Stop listening and cancel the background tasks; safe to call twice."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
