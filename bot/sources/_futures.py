"""What the perpetual-futures venues share: per-8-hour funding, snapshots, paging, history."""

from __future__ import annotations

import itertools
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from bot.config import Settings, SourceSettings
from bot.keys import funding_key, oi_key, price_key
from bot.model import Observation
from bot.sources import ParseError
from bot.sources._numbers import number, shown
from bot.sources.http import HttpClient

log = logging.getLogger(__name__)

BASE_HOURS = 8.0
"""Every funding series is stored per 8 hours, whatever the venue's own interval."""
MAX_RATE = 0.1
"""A rate beyond ±10 % per interval is a percent/fraction mix-up, not a market."""
GAP_HOURS = frozenset({1.0, 2.0, 4.0, 6.0, 8.0})
"""Intervals venues actually use; a longer gap between settlements means a missing row."""
MAX_PAGES = 10
"""History pages per series per backfill: bounded, so a huge `since` cannot hammer a venue."""
LOOKBACK = timedelta(days=90)
"""How far back a backfill without `since` reaches (OKX keeps three months of funding)."""

Cursor = TypeVar("Cursor")
Row = TypeVar("Row")


def funding_rate(value: Any, where: str) -> float:
    """Read a funding rate per interval as a fraction, refusing values no market produces."""
    rate = number(value, where)
    if abs(rate) > MAX_RATE:
        raise ParseError(f"{where}: funding rate {shown(value)} is beyond ±{MAX_RATE}")
    return rate


def interval_hours(value: Any, where: str, *, scale: float = 1.0) -> float:
    """Read a funding interval (hours, or minutes with scale=1/60) that a venue states itself."""
    hours = number(value, where) * scale
    if not 0 < hours <= 24:
        raise ParseError(f"{where}: expected a funding interval of 1–24 h, found {shown(value)}")
    return hours


def notional(amount: float, price: float, where: str) -> float:
    """Turn an amount in coins into USD at a price; an overflow is a broken payload, not data."""
    usd = amount * price
    if not math.isfinite(usd):
        raise ParseError(f"{where}: {amount} coins × {price} USD is out of range")
    return usd


def per_8h(rate: float, hours: float) -> float:
    """Normalise a per-interval rate to 8 h, so venues with 1 h or 4 h intervals compare."""
    return rate * BASE_HOURS / hours


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One venue's current state for one asset, as read in one poll."""

    asset: str
    venue: str
    ts: datetime
    rate: float
    interval_hours: float
    oi_usd: float
    mark: float

    def observations(self) -> list[Observation]:
        """The funding (per 8 h), open-interest and mark-price points this snapshot yields."""
        return [
            Observation(
                funding_key(self.asset, self.venue),
                self.ts,
                per_8h(self.rate, self.interval_hours),
            ),
            Observation(oi_key(self.asset, self.venue), self.ts, self.oi_usd),
            Observation(price_key(self.asset, self.venue), self.ts, self.mark),
        ]


@dataclass(frozen=True, slots=True)
class Settlement:
    """One settled funding rate, per the interval that ended at `ts`."""

    ts: datetime
    rate: float


def settlement_intervals(times: list[datetime], fallback: float) -> list[float]:
    """Each settlement's interval is the gap since the previous one; odd gaps use `fallback`."""
    if not times:
        return []
    gaps = [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(times)]
    known = [round(gap, 2) if round(gap, 2) in GAP_HOURS else fallback for gap in gaps]
    first = known[0] if known else fallback
    return [first, *known]


def funding_history(
    asset: str,
    venue: str,
    settlements: Iterable[Settlement],
    fallback_hours: float,
    *,
    fixed: bool = False,
) -> list[Observation]:
    """Settled rates as per-8-hour points at their settlement times, oldest first, one per time.

    Intervals come from the gaps between settlements, unless the venue's schedule is `fixed`.
    """
    unique = sorted({s.ts: s for s in settlements}.values(), key=lambda s: s.ts)
    times = [s.ts for s in unique]
    hours = [fallback_hours] * len(times) if fixed else settlement_intervals(times, fallback_hours)
    key = funding_key(asset, venue)
    return [Observation(key, s.ts, per_8h(s.rate, h)) for s, h in zip(unique, hours, strict=True)]


def oi_history(
    asset: str, venue: str, points: Iterable[tuple[datetime, float]]
) -> list[Observation]:
    """Open interest in USD at its snapshot times, oldest first, one per time."""
    key = oi_key(asset, venue)
    return [Observation(key, ts, usd) for ts, usd in sorted(dict(points).items())]


def history_start(now: datetime, since: datetime | None) -> datetime:
    """Where a backfill starts: `since`, or a fixed lookback; never after now."""
    return min(since or now - LOOKBACK, now)


def forward_start(start: datetime, now: datetime, spacing: timedelta, page_rows: int) -> datetime:
    """Move a forward pager's start up so its page budget, rows `spacing` apart, reaches now."""
    return max(start, now - MAX_PAGES * page_rows * spacing)


def next_forward(times: list[datetime], cursor: datetime, page_rows: int) -> datetime | None:
    """After a full page that moved forward, continue a minute past its newest row; else stop."""
    if len(times) < page_rows or max(times) < cursor:
        return None
    return max(times) + timedelta(minutes=1)


def next_backward(
    times: list[datetime], cursor: datetime, page_rows: int, start: datetime
) -> datetime | None:
    """After a full page that moved back but not past `start`, continue before its oldest row."""
    if len(times) < page_rows or min(times) <= start or min(times) > cursor:
        return None
    return min(times) - timedelta(minutes=1)


async def collect_pages(
    fetch: Callable[[Cursor], Awaitable[tuple[list[Row], Cursor | None]]],
    first: Cursor,
    what: str,
    max_pages: int = MAX_PAGES,
) -> list[Row]:
    """Follow a venue's paging until it says stop (cursor None) or the page budget is spent."""
    rows: list[Row] = []
    cursor: Cursor | None = first
    for _ in range(max_pages):
        if cursor is None:
            return rows
        page, cursor = await fetch(cursor)
        rows.extend(page)
    if cursor is not None:
        log.info("%s: stopped after %d pages; older history was not fetched", what, max_pages)
    return rows


class VenueSource(ABC):
    """The shell every venue shares: assets from settings, GET/POST with the source's limits."""

    name: ClassVar[str]

    def __init__(self, settings: SourceSettings, app: Settings) -> None:
        self.settings = settings
        self.assets = list(app.markets.assets)

    async def _get(self, http: HttpClient, path: str, params: Mapping[str, str]) -> Any:
        """GET JSON from this venue."""
        return await http.get_json(
            f"{self.settings.base_url}{path}",
            params=params,
            timeout=self.settings.timeout.total_seconds(),
            retries=self.settings.retries,
        )

    async def _post(self, http: HttpClient, path: str, body: Mapping[str, Any]) -> Any:
        """POST a JSON body and decode the JSON answer."""
        return await http.request_json(
            "POST",
            f"{self.settings.base_url}{path}",
            json_body=dict(body),
            timeout=self.settings.timeout.total_seconds(),
            retries=self.settings.retries,
        )

    @abstractmethod
    async def snapshots(self, http: HttpClient, now: datetime) -> list[Snapshot]:
        """Read every asset's current funding, OI and mark; one bad asset fails them all."""

    @abstractmethod
    async def history(
        self, http: HttpClient, snapshot: Snapshot, start: datetime, now: datetime
    ) -> list[Observation]:
        """Read one asset's settled funding (and OI, where offered) since `start`."""

    async def poll(self, http: HttpClient, now: datetime) -> list[Observation]:
        """Funding per 8 h, open interest in USD and mark price for every asset."""
        return [point for snap in await self.snapshots(http, now) for point in snap.observations()]

    async def backfill(
        self, http: HttpClient, now: datetime, since: datetime | None
    ) -> list[Observation]:
        """The current snapshot plus history; the snapshot supplies each asset's interval."""
        start = history_start(now, since)
        points: list[Observation] = []
        for snap in await self.snapshots(http, now):
            points.extend(snap.observations())
            points.extend(p for p in await self.history(http, snap, start, now) if p.ts >= start)
        return points
