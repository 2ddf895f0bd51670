"""Hyperliquid perpetuals → funding per 8 h, open interest in USD and mark price per asset.

Hyperliquid settles funding every hour and states its rates per hour (its `predictedFundings`
answer lists `fundingIntervalHours: 1` for HlPerp), so rates are multiplied by 8. One POST of
`metaAndAssetCtxs` covers every asset: `universe` names and `assetCtxs` align by index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.sources import ParseError
from bot.sources._futures import (
    Settlement,
    Snapshot,
    VenueSource,
    funding_rate,
    notional,
)
from bot.sources._numbers import (
    epoch,
    floor_minute,
    mapping,
    positive,
    round_minute,
    same,
    sequence,
    to_ms,
)
from bot.sources._paging import Paging
from bot.sources.http import HttpClient

VENUE = "hyperliquid"
INFO = "/info"
HOURS = 1.0
HISTORY_PAGE = 500
"""Hyperliquid returns at most 500 funding rows per `fundingHistory` call."""


@dataclass(frozen=True, slots=True)
class Context:
    """One asset's entry in `assetCtxs`."""

    rate: float
    mark: float
    oi_coins: float
    oi_usd: float


def coin(asset: str) -> str:
    """Hyperliquid's perpetual name for an asset: btc → BTC."""
    return asset.upper()


def parse_asset_contexts(payload: Any, assets: list[str]) -> dict[str, Context]:
    """Read each asset's hourly rate, mark and OI in coins from `[meta, assetCtxs]`."""
    pair = sequence(payload, "hyperliquid: metaAndAssetCtxs")
    if len(pair) != 2:
        raise ParseError(f"hyperliquid: metaAndAssetCtxs: expected [meta, ctxs], found {len(pair)}")
    universe = sequence(
        mapping(pair[0], "hyperliquid: meta").get("universe"), "hyperliquid: universe"
    )
    contexts = sequence(pair[1], "hyperliquid: assetCtxs")
    if len(universe) != len(contexts):
        raise ParseError(
            f"hyperliquid: {len(universe)} universe entries but {len(contexts)} assetCtxs; "
            "cannot align them"
        )
    names = [
        mapping(entry, f"hyperliquid: universe[{i}]").get("name")
        for i, entry in enumerate(universe)
    ]
    return {asset: _context(names, contexts, universe, asset) for asset in assets}


def _context(names: list[Any], contexts: list[Any], universe: list[Any], asset: str) -> Context:
    """Read the coin's live entry; a coin that is absent, or only delisted, is an error."""
    matches = [i for i, name in enumerate(names) if name == coin(asset)]
    live = [i for i in matches if universe[i].get("isDelisted") is not True]
    if not live:
        state = "delisted" if matches else "not in the universe"
        raise ParseError(f"hyperliquid: {coin(asset)} is {state}")
    index = live[0]
    where = f"hyperliquid: assetCtxs[{index}] ({coin(asset)})"
    item = mapping(contexts[index], where)
    mark = positive(item.get("markPx"), f"{where}.markPx")
    coins = positive(item.get("openInterest"), f"{where}.openInterest")
    return Context(
        funding_rate(item.get("funding"), f"{where}.funding"),
        mark,
        coins,
        notional(coins, mark, f"{where}.openInterest"),
    )


def parse_funding_history(payload: Any, asset: str, now: datetime) -> list[Settlement]:
    """Read hourly settlements; `time` is a number in ms with jitter."""
    settlements = []
    for index, row in enumerate(sequence(payload, "hyperliquid: fundingHistory")):
        where = f"hyperliquid: fundingHistory[{index}]"
        item = mapping(row, where)
        same(item.get("coin"), coin(asset), f"{where}.coin")
        ts = epoch(item.get("time"), f"{where}.time", now)
        rate = funding_rate(item.get("fundingRate"), f"{where}.fundingRate")
        settlements.append(Settlement(round_minute(ts), rate))
    return sorted(settlements, key=lambda s: s.ts)


class HyperliquidSource(VenueSource):
    """One POST per poll for all assets; backfill pages `fundingHistory` forward (no OI history)."""

    name = VENUE
    funding_paging = Paging(HISTORY_PAGE, forward=True)
    fixed_schedule = True

    async def snapshots(self, http: HttpClient, now: datetime) -> list[Snapshot]:
        """Read every asset from one `metaAndAssetCtxs`, stamped at the poll's minute."""
        payload = await self._post(http, INFO, {"type": "metaAndAssetCtxs"})
        contexts = parse_asset_contexts(payload, self.assets)
        ts = floor_minute(now)
        return [
            Snapshot(asset, VENUE, ts, ctx.rate, HOURS, ctx.oi_usd, ctx.mark)
            for asset, ctx in contexts.items()
        ]

    async def funding_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[Settlement]:
        """Hourly settlements from `cursor` on; Hyperliquid offers no OI history."""
        body = {
            "type": "fundingHistory",
            "coin": coin(asset),
            "startTime": to_ms(cursor),
            "endTime": to_ms(now),
        }
        return parse_funding_history(await self._post(http, INFO, body), asset, now)
