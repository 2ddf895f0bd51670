"""A fake data-source server that answers a share of all requests with HTTP 500, at random."""

from __future__ import annotations

import random

from aiohttp import web

from tests.harness.fake_source import FakeSource


class FaultySource(FakeSource):
    """`FakeSource` whose every request fails with 500 at probability `error_rate` (seeded)."""

    def __init__(self, *, error_rate: float, seed: int = 0, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.error_rate = error_rate
        self.errors = 0
        """Requests answered with an injected 500."""
        self._random = random.Random(seed)

    async def _handle(self, request: web.Request) -> web.Response:
        if self._random.random() < self.error_rate:
            self.errors += 1
            return web.Response(status=500, text="injected fault")
        return await super()._handle(request)
