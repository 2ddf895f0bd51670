"""A fake data-source server on 127.0.0.1: recorded payloads over real HTTP, outages on demand.

Point a source's `base_url` at `src.base_url`, set answers per path, and the source's real
aiohttp code runs: statuses, content types, slow answers, and a server that goes away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

Body = str | bytes | Mapping[str, Any] | Sequence[Any]


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer; a dict or list body is served as JSON."""

    body: Body = b""
    status: int = 200
    content_type: str | None = None
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        """The body bytes and the content type that goes with them."""
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), self.content_type or "application/json"


@dataclass(frozen=True, slots=True)
class Request:
    """One request a source made, for asserting on paths, query strings and headers."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""


def _answer(item: Answer | Body) -> Answer:
    return item if isinstance(item, Answer) else Answer(item)


def _fields(query: dict[str, str], body: bytes) -> dict[str, str]:
    """Query parameters plus the top-level scalars of a JSON body, for `match`."""
    fields = dict(query)
    try:
        decoded = json.loads(body) if body else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        fields.update({k: str(v) for k, v in decoded.items() if not isinstance(v, dict | list)})
    return fields


class FakeSource:
    """`async with FakeSource() as src:`, then `src.route("GET", "/fng/", body={...})`."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.requests: list[Request] = []
        self.port = 0
        self._routes: dict[tuple[str, str], list[Answer]] = {}
        self._matched: list[tuple[str, str, dict[str, str], list[Answer]]] = []
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """Scheme and host, as a source's `base_url` setting wants it."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of a path on this server."""
        return self.base_url + path

    @property
    def is_up(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    async def __aenter__(self) -> Self:
        await self.up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.down()

    def route(
        self,
        method: str,
        path: str,
        *,
        match: Mapping[str, str] | None = None,
        body: Body = b"",
        status: int = 200,
        content_type: str | None = None,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer every `method path` request (any query string) with this, until re-routed."""
        answer = Answer(body, status, content_type, delay, dict(headers or {}))
        self._store(method, path, match, [answer])

    def route_sequence(
        self,
        path: str,
        answers: Sequence[Answer | Body],
        *,
        method: str = "GET",
        match: Mapping[str, str] | None = None,
    ) -> None:
        """Answer successive requests with successive answers; the last one then repeats."""
        if not answers:
            raise ValueError("route_sequence needs at least one answer")
        self._store(method, path, match, [_answer(item) for item in answers])

    def _store(
        self, method: str, path: str, match: Mapping[str, str] | None, answers: list[Answer]
    ) -> None:
        """`match` picks requests by query parameters or top-level JSON body fields, so
        concurrent requests to one path (one per asset) get their own answers."""
        key = (method.upper(), path)
        if match is None:  # a plain route replaces every answer for the path
            self._routes[key] = answers
            self._matched = [m for m in self._matched if (m[0], m[1]) != key]
            return
        wanted = {k: str(v) for k, v in match.items()}
        self._matched = [m for m in self._matched if (m[0], m[1], m[2]) != (*key, wanted)]
        self._matched.append((*key, wanted, answers))

    def _lookup(self, method: str, path: str, fields: dict[str, str]) -> list[Answer] | None:
        for m_method, m_path, wanted, answers in self._matched:
            if (m_method, m_path) == (method, path) and all(
                fields.get(k) == v for k, v in wanted.items()
            ):
                return answers
        return self._routes.get((method, path))

    def requests_to(self, path: str) -> list[Request]:
        """The requests made to one path, in order."""
        return [request for request in self.requests if request.path == path]

    async def down(self) -> None:
        """Stop listening and drop open connections, so clients see a refused connection."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def up(self) -> None:
        """Listen again, on the same port as before (a free one the first time)."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read() if request.can_read_body else b""
        self.requests.append(
            Request(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        answers = self._lookup(request.method, request.path, _fields(dict(request.query), body))
        if answers is None and request.method == "HEAD":
            answers = self._routes.get(("GET", request.path))
        if answers is None:
            return web.Response(status=404, text=f"no route for {request.method} {request.path}")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if wait := self.latency + answer.delay:
            await asyncio.sleep(wait)
        payload, content_type = answer.encoded()
        headers = {"Content-Type": content_type, **answer.headers}
        return web.Response(body=payload, status=answer.status, headers=headers)
