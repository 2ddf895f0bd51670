"""After a venue poll: store OI-weighted funding, total OI and `price.<asset>`.

See docs/architecture.md, "Series keys".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.keys import VENUES, oi_key, price_key
from bot.model import Observation
from bot.sources._numbers import floor_minute
from bot.sources.derived import derive, inputs
from bot.store import Observations

EXPECTED_WITHIN = timedelta(hours=24)
"""A venue that reported OI within this long is expected in the total (a geo-blocked one is not)."""


async def _expected(
    store: Observations, asset: str, venues: Sequence[str], now: datetime
) -> list[str]:
    """Venues that have been reporting this asset's open interest lately."""
    out = []
    for venue in venues:
        point = await store.latest(oi_key(asset, venue))
        if point is not None and now - point.ts < EXPECTED_WITHIN:
            out.append(venue)
    return out


async def _price(
    store: Observations, asset: str, venues: Sequence[str], now: datetime, max_age: timedelta
) -> Observation | None:
    """The first fresh venue mark price, in a fixed venue order, so the series never hops."""
    for venue in VENUES:
        if venue not in venues:
            continue
        point = await store.latest(price_key(asset, venue))
        if point is not None and now - point.ts < max_age:
            return Observation(price_key(asset), floor_minute(now), point.value)
    return None


async def derive_and_store(
    store: Observations,
    assets: Sequence[str],
    venues: Sequence[str],
    now: datetime,
    max_age: timedelta,
) -> set[str]:
    """Compute and store the cross-venue series; return their keys for evaluation."""
    points: list[Observation] = []
    for asset in assets:
        expected = await _expected(store, asset, venues, now)
        if not expected:
            continue
        latest = {}
        for key in inputs([asset], expected):
            point = await store.latest(key)
            if point is not None:
                latest[key] = point
        points.extend(derive(latest, [asset], expected, now, max_age))
        price = await _price(store, asset, expected, now, max_age)
        if price is not None:
            points.append(price)
    if points:
        await store.upsert_observations(points)
    return {p.series for p in points}
