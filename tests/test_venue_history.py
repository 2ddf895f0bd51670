"""The venues' one `history` template: time paging both ways, clipped OI, hooks asked in order."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.config import SourceSettings
from bot.sources._futures import Paging, Settlement, Snapshot, VenueSource
from bot.sources.http import HttpClient
from tests.harness.exchanges import NOW, app_settings, by_series, client

HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)
SETTLEMENTS = [NOW - 8 * HOUR * i for i in range(12, -1, -1)]
"""Every 8 h for four days up to NOW, oldest first."""
HOURLY = [NOW - HOUR * i for i in range(72, -1, -1)]


class MemoryVenue(VenueSource):
    """A venue in memory: funding pages back by 3 rows, OI forward by 5 and kept for 12 h."""

    name = "memory"
    funding_paging = Paging(3, forward=False)
    oi_paging = Paging(5, forward=True, kept=12 * HOUR)

    def __init__(self) -> None:
        super().__init__(SourceSettings(), app_settings(["btc"]))
        self.asked: list[tuple[str, datetime, datetime]] = []

    async def snapshots(self, http: HttpClient, now: datetime) -> list[Snapshot]:
        return [Snapshot("btc", self.name, now, 0.0001, 8.0, 1e9, 100.0)]

    async def funding_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[Settlement]:
        self.asked.append(("funding", cursor, start))
        return [Settlement(t, 0.0001) for t in SETTLEMENTS if t <= cursor][-3:]

    async def oi_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[tuple[datetime, float]]:
        self.asked.append(("oi", cursor, start))
        return [(t, 1e9) for t in HOURLY if t >= cursor][:5]


class FundingOnlyVenue(MemoryVenue):
    """No OI history, as on Hyperliquid."""

    oi_paging = None


async def history(venue: VenueSource, start: datetime) -> dict[str, list[tuple[datetime, float]]]:
    """The venue's history of btc since `start`, by series."""
    async with client() as http:
        (snapshot,) = await venue.snapshots(http, NOW)
        return by_series(await venue.history(http, snapshot, start, NOW))


async def test_funding_pages_back_from_now_until_a_page_reaches_start() -> None:
    venue, start = MemoryVenue(), NOW - 48 * HOUR
    points = await history(venue, start)
    assert [(c, s) for kind, c, s in venue.asked if kind == "funding"] == [
        (NOW, start),
        (NOW - 16 * HOUR - MINUTE, start),
        (NOW - 40 * HOUR - MINUTE, start),
    ]
    assert [ts for ts, _ in points["funding.btc.memory"]] == SETTLEMENTS[-9:]


async def test_oi_pages_forward_from_what_the_endpoint_keeps() -> None:
    venue, start = MemoryVenue(), NOW - 48 * HOUR
    points = await history(venue, start)
    kept = NOW - 12 * HOUR
    assert [(c, s) for kind, c, s in venue.asked if kind == "oi"] == [
        (kept, kept),
        (NOW - 8 * HOUR + MINUTE, kept),
        (NOW - 3 * HOUR + MINUTE, kept),
    ]
    assert [ts for ts, _ in points["oi.btc.memory"]] == HOURLY[-13:]


async def test_a_venue_without_oi_paging_reads_funding_only() -> None:
    venue = FundingOnlyVenue()
    points = await history(venue, NOW - 48 * HOUR)
    assert set(points) == {"funding.btc.memory"}
    assert {kind for kind, _, _ in venue.asked} == {"funding"}
