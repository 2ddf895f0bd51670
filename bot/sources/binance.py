"""Binance USD-M perpetuals → funding per 8 h, open interest in USD and mark price per asset.

Funding intervals come from `/fapi/v1/fundingInfo`, which lists only symbols whose interval or
caps were changed; a symbol missing there runs on Binance's default 8 h. Settled history derives
each row's interval from the gap to the previous settlement.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.sources import ParseError
from bot.sources._futures import (
    Settlement,
    Snapshot,
    VenueSource,
    funding_rate,
    interval_hours,
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
    shown,
    to_ms,
)
from bot.sources._paging import Paging
from bot.sources.http import HttpClient

VENUE = "binance"
DEFAULT_HOURS = 8.0
FUNDING_INFO = "/fapi/v1/fundingInfo"
PREMIUM_INDEX = "/fapi/v1/premiumIndex"
OPEN_INTEREST = "/fapi/v1/openInterest"
FUNDING_RATE = "/fapi/v1/fundingRate"
OI_HISTORY = "/futures/data/openInterestHist"
FUNDING_PAGE = 1000
OI_PAGE = 500
OI_KEPT = timedelta(days=29)
"""Binance serves only the last 30 days of OI statistics; ask for a day less to stay inside."""


@dataclass(frozen=True, slots=True)
class Mark:
    """What `premiumIndex` says about one symbol."""

    ts: datetime
    rate: float
    mark: float


def symbol(asset: str) -> str:
    """Binance's USDT-margined perpetual for an asset: btc → BTCUSDT."""
    return f"{asset.upper()}USDT"


def _body(payload: Any, what: str) -> Any:
    """Unwrap nothing, but refuse Binance's error object `{"code": -1121, "msg": …}`."""
    if isinstance(payload, dict) and "code" in payload and "msg" in payload:
        code, message = shown(payload["code"]), shown(payload["msg"], 200)
        raise ParseError(f"binance: {what}: error {code}: {message}")
    return payload


def parse_funding_info(payload: Any, assets: list[str]) -> dict[str, float]:
    """Map assets to their funding interval in hours, for the symbols Binance lists as adjusted."""
    wanted = {symbol(asset): asset for asset in assets}
    hours: dict[str, float] = {}
    for index, row in enumerate(sequence(_body(payload, "fundingInfo"), "binance: fundingInfo")):
        where = f"binance: fundingInfo[{index}]"
        name = mapping(row, where).get("symbol")
        if isinstance(name, str) and name in wanted:
            value = row.get("fundingIntervalHours")
            hours[wanted[name]] = interval_hours(value, f"{where}.fundingIntervalHours")
    return hours


def parse_premium_index(payload: Any, asset: str, now: datetime) -> Mark:
    """Read the current (predicted) funding rate and mark price of one symbol."""
    where = f"binance: premiumIndex {symbol(asset)}"
    item = mapping(_body(payload, "premiumIndex"), where)
    same(item.get("symbol"), symbol(asset), f"{where}.symbol")
    return Mark(
        floor_minute(epoch(item.get("time"), f"{where}.time", now)),
        funding_rate(item.get("lastFundingRate"), f"{where}.lastFundingRate"),
        positive(item.get("markPrice"), f"{where}.markPrice"),
    )


def parse_open_interest(payload: Any, asset: str, now: datetime) -> float:
    """Read current open interest, in coins (Binance gives no USD value here)."""
    where = f"binance: openInterest {symbol(asset)}"
    item = mapping(_body(payload, "openInterest"), where)
    same(item.get("symbol"), symbol(asset), f"{where}.symbol")
    epoch(item.get("time"), f"{where}.time", now)
    return positive(item.get("openInterest"), f"{where}.openInterest")


def parse_funding_history(payload: Any, asset: str, now: datetime) -> list[Settlement]:
    """Read settled rates; `fundingTime` carries ms jitter, so times snap to the minute."""
    rows = sequence(_body(payload, "fundingRate"), "binance: fundingRate")
    settlements = []
    for index, row in enumerate(rows):
        where = f"binance: fundingRate[{index}]"
        item = mapping(row, where)
        same(item.get("symbol"), symbol(asset), f"{where}.symbol")
        ts = epoch(item.get("fundingTime"), f"{where}.fundingTime", now)
        rate = funding_rate(item.get("fundingRate"), f"{where}.fundingRate")
        settlements.append(Settlement(round_minute(ts), rate))
    return sorted(settlements, key=lambda s: s.ts)


def parse_oi_history(payload: Any, asset: str, now: datetime) -> list[tuple[datetime, float]]:
    """Read OI statistics in USD (`sumOpenInterestValue`); `timestamp` is a string or a number."""
    rows = sequence(_body(payload, "openInterestHist"), "binance: openInterestHist")
    points = []
    for index, row in enumerate(rows):
        where = f"binance: openInterestHist[{index}]"
        item = mapping(row, where)
        same(item.get("symbol"), symbol(asset), f"{where}.symbol")
        ts = round_minute(epoch(item.get("timestamp"), f"{where}.timestamp", now))
        usd = positive(item.get("sumOpenInterestValue"), f"{where}.sumOpenInterestValue")
        points.append((ts, usd))
    return sorted(points)


class BinanceSource(VenueSource):
    """Three light calls per asset plus one `fundingInfo`; backfill pages forward in time."""

    name = VENUE
    funding_paging = Paging(FUNDING_PAGE, forward=True)
    oi_paging = Paging(OI_PAGE, forward=True, kept=OI_KEPT)

    async def snapshots(self, http: HttpClient, now: datetime) -> list[Snapshot]:
        """Read every asset; the interval list is fetched once per poll."""
        info, *pairs = await asyncio.gather(
            self._get(http, FUNDING_INFO, {}), *(self._payloads(http, a) for a in self.assets)
        )
        hours = parse_funding_info(info, self.assets)
        return [
            self._snapshot(asset, premium, oi, hours.get(asset, DEFAULT_HOURS), now)
            for asset, (premium, oi) in zip(self.assets, pairs, strict=True)
        ]

    async def _payloads(self, http: HttpClient, asset: str) -> tuple[Any, Any]:
        """premiumIndex and openInterest for one asset, asked at the same time."""
        params = {"symbol": symbol(asset)}
        premium, oi = await asyncio.gather(
            self._get(http, PREMIUM_INDEX, params), self._get(http, OPEN_INTEREST, params)
        )
        return premium, oi

    def _snapshot(self, asset: str, premium: Any, oi: Any, hours: float, now: datetime) -> Snapshot:
        """Combine premiumIndex and openInterest; OI in USD is coins × mark price."""
        mark = parse_premium_index(premium, asset, now)
        coins = parse_open_interest(oi, asset, now)
        oi_usd = notional(coins, mark.mark, f"binance: {symbol(asset)} open interest")
        return Snapshot(asset, VENUE, mark.ts, mark.rate, hours, oi_usd, mark.mark)

    def _window(self, asset: str, start: datetime, now: datetime, limit: int) -> dict[str, str]:
        """Query parameters for one forward page."""
        return {
            "symbol": symbol(asset),
            "startTime": str(to_ms(start)),
            "endTime": str(to_ms(now)),
            "limit": str(limit),
        }

    async def funding_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[Settlement]:
        """`fundingRate` from `cursor` on (Binance returns startTime + limit rows)."""
        params = self._window(asset, cursor, now, FUNDING_PAGE)
        return parse_funding_history(await self._get(http, FUNDING_RATE, params), asset, now)

    async def oi_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[tuple[datetime, float]]:
        """Hourly `openInterestHist` from `cursor` on (kept for 29 days only)."""
        params = {**self._window(asset, cursor, now, OI_PAGE), "period": "1h"}
        return parse_oi_history(await self._get(http, OI_HISTORY, params), asset, now)
