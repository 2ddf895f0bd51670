"""Cross-venue series: OI-weighted funding and total open interest, from each venue's newest points.

Only venues whose funding and OI are both fresh take part, so a venue that stopped answering
never drags the average towards an old reading. The total is written only when every venue the
caller expects is fresh: a venue dropping out must not look like an open-interest flush. Pure:
the caller reads the newest points and stores the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.keys import funding_key, oi_key, price_key, total_oi_key, weighted_funding_key
from bot.model import Observation
from bot.sources._numbers import floor_minute


def inputs(assets: Sequence[str], venues: Sequence[str]) -> list[str]:
    """The series `derive` reads: every venue's funding and OI for every asset."""
    return [
        key
        for asset in assets
        for venue in venues
        for key in (funding_key(asset, venue), oi_key(asset, venue))
    ]


def writes(assets: Sequence[str], venues: Sequence[str]) -> list[str]:
    """What the derive step after a venue poll writes: nothing when no venue is enabled."""
    if not venues:
        return []
    return [
        key
        for asset in assets
        for key in (weighted_funding_key(asset), total_oi_key(asset), price_key(asset))
    ]


def _fresh(point: Observation | None, now: datetime, max_age: timedelta) -> bool:
    """A point counts if it exists, is finite and is younger than `max_age`."""
    return point is not None and math.isfinite(point.value) and now - point.ts < max_age


def _venue(
    latest: Mapping[str, Observation], asset: str, venue: str, now: datetime, max_age: timedelta
) -> tuple[float, float] | None:
    """The venue's (funding, OI in USD) when both are fresh and the OI is positive."""
    funding, oi = latest.get(funding_key(asset, venue)), latest.get(oi_key(asset, venue))
    if funding is None or oi is None or oi.value <= 0:
        return None
    if not (_fresh(funding, now, max_age) and _fresh(oi, now, max_age)):
        return None
    return funding.value, oi.value


def _asset(
    latest: Mapping[str, Observation],
    asset: str,
    venues: Sequence[str],
    now: datetime,
    max_age: timedelta,
) -> list[Observation]:
    """Weighted funding and total OI over the venues fresh in both series; none fresh, no point."""
    pairs = [pair for v in venues if (pair := _venue(latest, asset, v, now, max_age))]
    if not pairs:
        return []
    total = sum(oi for _, oi in pairs)
    weighted = sum(rate * oi for rate, oi in pairs) / total
    if not (math.isfinite(total) and math.isfinite(weighted)):
        return []
    stamp = floor_minute(now)
    out = [Observation(weighted_funding_key(asset), stamp, weighted)]
    if len(pairs) == len(venues):  # a venue missing would look like an OI flush: no total then
        out.append(Observation(total_oi_key(asset), stamp, total))
    return out


def derive(
    latest: Mapping[str, Observation],
    assets: Sequence[str],
    venues: Sequence[str],
    now: datetime,
    max_age: timedelta,
) -> list[Observation]:
    """Compute `funding.<asset>.oi_weighted` and `oi.<asset>.total`, stamped at now's minute."""
    return [point for asset in assets for point in _asset(latest, asset, venues, now, max_age)]
