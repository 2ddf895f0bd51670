"""Poll one source: write its points and `source.<name>.up`, log failure and recovery once each."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.keys import FUTURE_SLACK, source_up_key
from bot.model import Observation, SourceHealth
from bot.sources import Source, SourceError
from bot.sources.http import HttpClient
from bot.store import Observations, SourceHealthLog

log = logging.getLogger(__name__)


class PollStore(Observations, SourceHealthLog, Protocol):
    """What a poll touches: the points and the source's health."""


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll did, so the caller knows which series to evaluate."""

    source: str
    ok: bool
    points: int = 0
    series: frozenset[str] = field(default_factory=frozenset)
    error: str = ""
    failures: int = 0
    last_success: datetime | None = None
    """The newest successful poll, this one included (the `last_success` metric)."""


async def _failed(
    store: PollStore, name: str, prev: SourceHealth | None, now: datetime, error: str
) -> PollResult:
    """Record a failed poll: health 0, the error kept for `status`, no other observation."""
    failures = (prev.failures if prev else 0) + 1
    if prev is None or prev.up:
        log.warning("source %s is failing: %s", name, error)
    else:
        log.debug("source %s still failing (%d): %s", name, failures, error)
    await store.upsert_observations([Observation(source_up_key(name), now, 0.0)])
    await store.save_source_health(
        SourceHealth(name, False, prev.last_success if prev else None, error, now, failures)
    )
    last = prev.last_success if prev else None
    return PollResult(name, False, 0, frozenset({source_up_key(name)}), error, failures, last)


async def _trusted(
    store: Observations, name: str, points: list[Observation], now: datetime
) -> list[Observation]:
    """Drop points from the future, and series whose newest point is older than what we hold
    (a stale cache answering): both are logged with the source, neither becomes data."""
    future = [p for p in points if p.ts > now + FUTURE_SLACK]
    for p in future[:3]:
        log.warning("source %s: %s at %s is in the future; dropped", name, p.series, p.ts)
    kept = [p for p in points if p.ts <= now + FUTURE_SLACK]
    newest: dict[str, datetime] = {}
    for p in kept:
        newest[p.series] = max(newest.get(p.series, p.ts), p.ts)
    backwards = set()
    for series, ts in newest.items():
        held = await store.latest(series)
        if held is not None and ts < held.ts:
            backwards.add(series)
            log.warning(
                "source %s: %s went backwards (newest %s, stored %s); dropped",
                name,
                series,
                ts.isoformat(),
                held.ts.isoformat(),
            )
    return [p for p in kept if p.series not in backwards]


async def poll_source(
    source: Source,
    http: HttpClient,
    store: PollStore,
    now: datetime,
    *,
    backfill: bool = False,
    since: datetime | None = None,
) -> PollResult:
    """Fetch (or backfill, from `since` or all) one source and store the result; never raises
    for a source's fault."""
    now = now.replace(microsecond=0)
    prev = (await store.source_health()).get(source.name)
    try:
        if backfill:
            points = await source.backfill(http, now, since)
        else:
            points = await source.poll(http, now)
    except SourceError as exc:
        return await _failed(store, source.name, prev, now, str(exc))
    except Exception as exc:  # a bug in a source must not stop the bot
        log.exception("source %s crashed", source.name)
        return await _failed(store, source.name, prev, now, f"internal error: {exc!r}")
    points = await _trusted(store, source.name, points, now)
    await store.upsert_observations([*points, Observation(source_up_key(source.name), now, 1.0)])
    if prev is not None and not prev.up:
        log.info("source %s recovered after %d failed polls", source.name, prev.failures)
    await store.save_source_health(
        SourceHealth(
            source.name,
            True,
            now,
            prev.last_error if prev else "",
            prev.last_error_at if prev else None,
            0,
        )
    )
    series = frozenset({p.series for p in points} | {source_up_key(source.name)})
    return PollResult(source.name, True, len(points), series, last_success=now)
