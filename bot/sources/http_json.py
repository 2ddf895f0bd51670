"""The generic JSON source: a user adds a metric by configuration alone (`sources.http_json`).

Each endpoint is one request; each of its series is a JMESPath into the answer, giving a number
or a list of numbers aligned with the list its `timestamp` path gives. Paths are compiled once;
`validate` reports bad ones for `stablewatch check` before anything is polled.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from bot.config import HttpJsonEndpoint, HttpJsonSettings, Settings, SourceSettings
from bot.keys import SERIES_KEY
from bot.model import Observation
from bot.sources import ParseError, SourceError
from bot.sources._numbers import EpochUnit, checked_time, epoch, floor_minute, number, shown
from bot.sources.http import HttpClient

NAME = "http_json"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TEXT_FORMATS = {"iso": "an ISO-8601 time", "date": "a YYYY-MM-DD date"}
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
"""A configured metric may be macro data with a long past, unlike exchange payloads."""

Stamps = datetime | list[datetime] | None
"""One time, a list aligned with list values, or None for "the poll's minute"."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """An endpoint with its paths compiled, so a poll never parses an expression again."""

    endpoint: HttpJsonEndpoint
    series: dict[str, ParsedResult]
    timestamp: ParsedResult | None


def _one_line(exc: Exception) -> str:
    """JMESPath errors draw a caret under the expression across lines; keep them on one."""
    return " ".join(str(exc).split())


def _path_problem(path: str) -> str | None:
    """Why a JMESPath expression does not compile, or None if it does."""
    try:
        jmespath.compile(path)
    except JMESPathError as exc:
        return _one_line(exc)
    return None


def validate(endpoint: HttpJsonEndpoint) -> list[str]:
    """Every configuration mistake in one endpoint, one readable line each; empty when sound."""
    label = f"sources.http_json endpoint {endpoint.name!r}"
    problems = [] if endpoint.series else [f"{label}: no series configured"]
    for key, path in endpoint.series.items():
        if not SERIES_KEY.fullmatch(key):
            problems.append(
                f"{label}: series key {key!r}: expected dotted lower-case words like "
                "'stablecoin.usdt.supply'"
            )
        if problem := _path_problem(path):
            problems.append(f"{label}: series {key!r}: bad JMESPath {path!r}: {problem}")
    if endpoint.timestamp and (problem := _path_problem(endpoint.timestamp)):
        problems.append(f"{label}: timestamp: bad JMESPath {endpoint.timestamp!r}: {problem}")
    if not math.isfinite(endpoint.scale) or endpoint.scale == 0:
        problems.append(
            f"{label}: scale: expected a finite non-zero number, found {endpoint.scale}"
        )
    return problems


def validate_all(endpoints: Sequence[HttpJsonEndpoint]) -> list[str]:
    """Validate every endpoint, and refuse two endpoints (or names) writing the same series."""
    problems = [problem for endpoint in endpoints for problem in validate(endpoint)]
    owners: dict[str, str] = {}
    names: set[str] = set()
    for endpoint in endpoints:
        if endpoint.name in names:
            problems.append(f"sources.http_json: endpoint name {endpoint.name!r} is used twice")
        names.add(endpoint.name)
        for key in endpoint.series:
            if key in owners and owners[key] != endpoint.name:
                problems.append(
                    f"sources.http_json: series {key!r} is written by both "
                    f"{owners[key]!r} and {endpoint.name!r}"
                )
            owners.setdefault(key, endpoint.name)
    return problems


def compile_endpoint(endpoint: HttpJsonEndpoint) -> Compiled:
    """Compile an endpoint's paths; call `validate` first, this raises on a bad one."""
    series = {key: jmespath.compile(path) for key, path in endpoint.series.items()}
    stamp = jmespath.compile(endpoint.timestamp) if endpoint.timestamp else None
    return Compiled(endpoint, series, stamp)


def _search(path: ParsedResult, payload: Any, where: str) -> Any:
    """Apply a path; a runtime JMESPath error (a function given the wrong type) is a parse error."""
    try:
        found = path.search(payload)
    except JMESPathError as exc:
        raise ParseError(f"{where}: {_one_line(exc)}") from None
    if found is None:
        raise ParseError(f"{where}: the path matched nothing")
    return found


def _time(value: Any, fmt: str, where: str, now: datetime) -> datetime:
    """Read one timestamp in the configured format; UTC is assumed when an ISO time has no zone."""
    if fmt in ("epoch_s", "epoch_ms"):
        unit: EpochUnit = "s" if fmt == "epoch_s" else "ms"
        return epoch(value, where, now, unit=unit, earliest=_EARLIEST)
    expected = f"{where}: expected {_TEXT_FORMATS[fmt]}, found {shown(value)}"
    if not isinstance(value, str) or (fmt == "date" and not _DATE.fullmatch(value)):
        raise ParseError(expected)
    try:
        ts = datetime.fromisoformat(value)
        seconds = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):  # year 1 at +14:00 falls off the calendar
        raise ParseError(expected) from None
    return checked_time(seconds, where, now, earliest=_EARLIEST)


def _stamps(payload: Any, compiled: Compiled, now: datetime) -> Stamps:
    """Read the endpoint's timestamp path: one time, a list of times, or None (no path)."""
    endpoint = compiled.endpoint
    if compiled.timestamp is None:
        return None
    where = f"http_json: endpoint {endpoint.name!r}: timestamp ({endpoint.timestamp})"
    found = _search(compiled.timestamp, payload, where)
    fmt = endpoint.timestamp_format
    if isinstance(found, list):
        return [_time(item, fmt, f"{where}[{i}]", now) for i, item in enumerate(found)]
    return _time(found, fmt, where, now)


def _value(raw: Any, scale: float, where: str) -> float:
    """A number from the payload, scaled; scaling must not overflow."""
    value = number(raw, where) * scale
    if not math.isfinite(value):
        raise ParseError(f"{where}: {shown(raw)} × {scale} is out of range")
    return value


def _series(
    key: str, found: Any, stamps: Stamps, scale: float, where: str, now: datetime
) -> list[Observation]:
    """Pair a path's value(s) with the time(s): scalar with one time, list with an equal list."""
    if isinstance(found, list):
        if not isinstance(stamps, list):
            raise ParseError(f"{where}: a list of values needs a `timestamp` path giving a list")
        if len(stamps) != len(found):
            raise ParseError(f"{where}: {len(found)} values but {len(stamps)} timestamps")
        return [
            Observation(key, ts, _value(raw, scale, f"{where}[{i}]"))
            for i, (raw, ts) in enumerate(zip(found, stamps, strict=True))
        ]
    if isinstance(stamps, list):
        raise ParseError(f"{where}: one value but a list of {len(stamps)} timestamps")
    return [Observation(key, stamps or floor_minute(now), _value(found, scale, where))]


def parse(payload: Any, compiled: Compiled, now: datetime) -> list[Observation]:
    """Turn one endpoint's answer into observations; any doubt is a ParseError naming the path."""
    endpoint = compiled.endpoint
    stamps = _stamps(payload, compiled, now)
    points = []
    for key, path in compiled.series.items():
        where = f"http_json: endpoint {endpoint.name!r}: series {key!r} ({path.expression})"
        found = _search(path, payload, where)
        points.extend(_series(key, found, stamps, endpoint.scale, where, now))
    return points


class HttpJsonSource:
    """Polls every configured endpoint; one failing endpoint fails the poll, naming itself."""

    name = NAME

    def __init__(self, settings: SourceSettings, app: Settings) -> None:
        self.settings = settings
        configured = settings if isinstance(settings, HttpJsonSettings) else app.sources.http_json
        self.problems = validate_all(configured.endpoints)
        self.endpoints = (
            [] if self.problems else [compile_endpoint(e) for e in configured.endpoints]
        )

    def writes(self) -> list[str]:
        """The series keys configured on the endpoints."""
        return [key for compiled in self.endpoints for key in compiled.endpoint.series]

    async def _fetch(
        self, http: HttpClient, compiled: Compiled, now: datetime
    ) -> list[Observation]:
        """Request one endpoint and parse it; errors are prefixed with the endpoint's name."""
        endpoint = compiled.endpoint
        try:
            payload = await http.request_json(
                endpoint.method,
                endpoint.url,
                headers=endpoint.headers or None,
                json_body=endpoint.body,
                timeout=self.settings.timeout.total_seconds(),
                retries=self.settings.retries,
            )
        except SourceError as exc:
            raise type(exc)(f"endpoint {endpoint.name!r}: {exc}", permanent=exc.permanent) from exc
        return parse(payload, compiled, now)

    async def poll(self, http: HttpClient, now: datetime) -> list[Observation]:
        """Fetch every endpoint; a configuration mistake is a permanent failure, said plainly."""
        if self.problems:
            raise SourceError("; ".join(self.problems), permanent=True)
        parts = await asyncio.gather(*(self._fetch(http, c, now) for c in self.endpoints))
        return [point for part in parts for point in part]

    async def backfill(
        self, http: HttpClient, now: datetime, since: datetime | None
    ) -> list[Observation]:
        """Endpoints that answer with lists are their own history: keep what is after `since`."""
        points = await self.poll(http, now)
        return [p for p in points if since is None or p.ts >= since]
