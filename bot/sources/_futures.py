"""What the perpetual-futures venues share: per-8-hour funding, snapshots and one history."""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from bot.config import Settings, SourceSettings
from bot.keys import funding_key, oi_key, price_key
from bot.model import Observation
from bot.sources import ParseError
from bot.sources._numbers import number, shown
from bot.sources._paging import Paging, history_start, paged
from bot.sources.http import HttpClient

BASE_HOURS = 8.0
"""Every funding series is stored per 8 hours, whatever the venue's own interval."""
MAX_RATE = 0.1
"""A rate beyond ±10 % per interval is a percent/fraction mix-up, not a market."""
GAP_HOURS = frozenset({1.0, 2.0, 4.0, 6.0, 8.0})
"""Intervals venues actually use; a longer gap between settlements means a missing row."""
OI_PERIOD = timedelta(hours=1)
"""Open-interest history is read in hourly rows on every venue that offers it."""


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


def _ts(settlement: Settlement) -> datetime:
    """A settlement's time, for paging."""
    return settlement.ts


def _first(point: tuple[datetime, float]) -> datetime:
    """An OI row's time, for paging."""
    return point[0]


class VenueSource(ABC):
    """The shell every venue shares: assets from settings, GET/POST, snapshots and history.

    `history` is one template: a venue names how its endpoints page (`funding_paging`,
    `oi_paging`) and reads one page at a cursor (`funding_page`, `oi_page`); a venue whose OI
    pages some other way overrides `open_interest`.
    """

    name: ClassVar[str]
    funding_paging: ClassVar[Paging]
    """How the settled-funding endpoint pages."""
    oi_paging: ClassVar[Paging | None] = None
    """How the hourly OI-history endpoint pages; None when the venue offers none to page by time."""
    fixed_schedule: ClassVar[bool] = False
    """Settlements keep the snapshot's interval, instead of the gaps between them."""

    def __init__(self, settings: SourceSettings, app: Settings) -> None:
        self.settings = settings
        self.assets = list(app.markets.assets)

    def writes(self) -> list[str]:
        """Funding, open interest and mark price for each configured asset at this venue."""
        return [
            key
            for asset in self.assets
            for key in (
                funding_key(asset, self.name),
                oi_key(asset, self.name),
                price_key(asset, self.name),
            )
        ]

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
    async def funding_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[Settlement]:
        """One page of settled rates at `cursor` (its first time forward, its last backward)."""

    async def oi_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[tuple[datetime, float]]:
        """One page of hourly OI in USD at `cursor`; a venue with `oi_paging` provides it."""
        raise NotImplementedError(f"{self.name}: oi_paging is set but oi_page is not")

    async def open_interest(
        self, http: HttpClient, asset: str, start: datetime, now: datetime
    ) -> list[tuple[datetime, float]]:
        """Hourly OI in USD since `start`, as `oi_paging` pages it; none without it."""
        if self.oi_paging is None:
            return []

        async def fetch(cursor: datetime, since: datetime) -> list[tuple[datetime, float]]:
            return await self.oi_page(http, asset, cursor, since, now)

        what = f"{self.name} {asset} OI history"
        return await paged(self.oi_paging, fetch, _first, start, now, OI_PERIOD, what)

    async def history(
        self, http: HttpClient, snapshot: Snapshot, start: datetime, now: datetime
    ) -> list[Observation]:
        """One asset's settled funding, then its hourly OI where offered, since `start`."""
        asset, hours = snapshot.asset, snapshot.interval_hours

        async def fetch(cursor: datetime, since: datetime) -> list[Settlement]:
            return await self.funding_page(http, asset, cursor, since, now)

        what = f"{self.name} {asset} funding history"
        spacing = timedelta(hours=hours)
        settlements = await paged(self.funding_paging, fetch, _ts, start, now, spacing, what)
        oi = await self.open_interest(http, asset, start, now)
        return [
            *funding_history(asset, self.name, settlements, hours, fixed=self.fixed_schedule),
            *oi_history(asset, self.name, oi),
        ]

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
