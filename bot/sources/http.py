"""One shared aiohttp session with timeouts and bounded, jittered retries."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from bot.sources import ParseError, SourceError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
Sleep = Callable[[float], Awaitable[None]]


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff, so many pollers never retry in lockstep."""
    return random.uniform(0, min(cap, base * 2**attempt))


def _describe_status(status: int, body: str) -> str:
    """Name the well-known refusals plainly: geo blocks and Cloudflare challenges."""
    lowered = body.lower()  # challenge pages open with long inline styles
    if status == 451:
        return "HTTP 451: unavailable from this location (geo-blocked)"
    if status == 403 and ("cloudflare" in lowered or "cf-chl" in lowered):
        return "HTTP 403: Cloudflare challenge page"
    if status == 403 and "cloudfront" in lowered:
        return "HTTP 403: CloudFront refused this location"
    if status == 429:
        return "HTTP 429: rate limited"
    said = _provider_message(body)
    return f"HTTP {status}: {said}" if said else f"HTTP {status}"


def _provider_message(body: str) -> str:
    """The provider's own words from a JSON error body (`msg`, `message`, `retMsg`), shortened."""
    try:
        payload = json.loads(body[:4000])
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    for key in ("msg", "message", "retMsg", "error", "description"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            code = payload.get("code")
            prefix = (
                f"{code} " if isinstance(code, int | str) and str(code) not in {"", "0"} else ""
            )
            return (prefix + " ".join(value.split()))[:160]
    return ""


class HttpClient:
    """Wraps the one aiohttp session every source shares, with the retry policy in one place."""

    def __init__(self, session: aiohttp.ClientSession, sleep: Sleep = asyncio.sleep) -> None:
        self._session = session
        self._sleep = sleep

    async def request_text(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        timeout: float = 10.0,
        retries: int = 3,
    ) -> str:
        """Send a request; retry 5xx, 429 and network errors with backoff; never other 4xx."""
        last: SourceError | None = None
        for attempt in range(retries + 1):
            if attempt:
                await self._sleep(backoff_delay(attempt - 1))
            try:
                async with self._session.request(
                    method,
                    url,
                    params=params,
                    headers=headers,
                    json=json_body,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response:
                    body = await response.text(errors="replace")
                    if response.status < 400:
                        return body
                    last = SourceError(
                        _describe_status(response.status, body),
                        permanent=response.status not in RETRY_STATUSES,
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = SourceError(f"network error: {type(exc).__name__}: {exc}".rstrip(": "))
            if last.permanent:
                break
        assert last is not None
        raise last

    async def get_text(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        retries: int = 3,
    ) -> str:
        """GET a URL as text (HTML pages)."""
        return await self.request_text(
            "GET", url, params=params, headers=headers, timeout=timeout, retries=retries
        )

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        retries: int = 3,
    ) -> Any:
        """GET and decode JSON."""
        return await self.request_json(
            "GET", url, params=params, headers=headers, timeout=timeout, retries=retries
        )

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        timeout: float = 10.0,
        retries: int = 3,
    ) -> Any:
        """Send a request and decode JSON; an HTML page where JSON was expected is a parse error."""
        body = await self.request_text(
            method,
            url,
            params=params,
            headers=headers,
            json_body=json_body,
            timeout=timeout,
            retries=retries,
        )
        try:
            return json.loads(body)
        except ValueError:  # JSONDecodeError, or an integer too long to convert
            snippet = " ".join(body[:80].split())
            raise ParseError(f"expected JSON, got {snippet!r}") from None
