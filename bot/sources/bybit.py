"""Bybit v5 linear perpetuals → funding per 8 h, open interest in USD and mark price per asset.

One `tickers` call per asset gives rate, mark, OI and `fundingIntervalHour`; older answers lack
the interval, and then `instruments-info` (`fundingInterval`, minutes) supplies it. Every number
inside `result` is a string, timestamps included; `retCode` ≠ 0 is an error with HTTP 200.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
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
from bot.sources._paging import Paging, collect_pages
from bot.sources.http import HttpClient

VENUE = "bybit"
TICKERS = "/v5/market/tickers"
INSTRUMENTS = "/v5/market/instruments-info"
FUNDING_HISTORY = "/v5/market/funding/history"
OI_HISTORY = "/v5/market/open-interest"
MARK_KLINE = "/v5/market/mark-price-kline"
PAGE = 200
"""Bybit's maximum rows per page for funding history, OI history and klines alike."""


@dataclass(frozen=True, slots=True)
class Ticker:
    """What `tickers` says about one symbol; `hours` is None when the answer omits it."""

    ts: datetime
    rate: float
    hours: float | None
    mark: float
    oi_usd: float


def symbol(asset: str) -> str:
    """Bybit's USDT perpetual for an asset: btc → BTCUSDT."""
    return f"{asset.upper()}USDT"


def _result(payload: Any, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Unwrap the v5 envelope into (result, envelope); `retCode` ≠ 0 carries `retMsg`."""
    where = f"bybit: {what}"
    envelope = mapping(payload, where)
    code = envelope.get("retCode")
    if isinstance(code, bool) or code != 0:
        message = shown(envelope.get("retMsg"), 200)
        raise ParseError(f"{where}: retCode {shown(code)}: {message}")
    return mapping(envelope.get("result"), f"{where}.result"), envelope


def _row(result: dict[str, Any], asset: str, what: str) -> dict[str, Any]:
    """The one list entry for the asset's symbol; an empty list means Bybit does not know it."""
    where = f"bybit: {what} {symbol(asset)}"
    rows = sequence(result.get("list"), f"{where}.list")
    for index, row in enumerate(rows):
        item = mapping(row, f"{where}.list[{index}]")
        if item.get("symbol") == symbol(asset):
            return item
    raise ParseError(f"{where}: symbol not in the answer (unknown or delisted?)")


def _given(item: dict[str, Any], key: str) -> bool:
    """Bybit writes "" for fields that do not apply; absent and "" both mean not offered."""
    return item.get(key) not in (None, "")


def parse_ticker(payload: Any, asset: str, now: datetime) -> Ticker:
    """Read rate, interval, mark and OI in USD (`openInterestValue`, else coins × mark)."""
    result, envelope = _result(payload, "tickers")
    item, where = _row(result, asset, "tickers"), f"bybit: tickers {symbol(asset)}"
    mark = positive(item.get("markPrice"), f"{where}.markPrice")
    if _given(item, "openInterestValue"):
        oi_usd = positive(item["openInterestValue"], f"{where}.openInterestValue")
    else:
        coins = positive(item.get("openInterest"), f"{where}.openInterest")
        oi_usd = notional(coins, mark, f"{where}.openInterest")
    hours = None
    if _given(item, "fundingIntervalHour"):
        hours = interval_hours(item["fundingIntervalHour"], f"{where}.fundingIntervalHour")
    return Ticker(
        floor_minute(epoch(envelope.get("time"), "bybit: tickers.time", now)),
        funding_rate(item.get("fundingRate"), f"{where}.fundingRate"),
        hours,
        mark,
        oi_usd,
    )


def parse_instrument_hours(payload: Any, asset: str) -> float:
    """Read the funding interval from `instruments-info`, where Bybit gives it in minutes."""
    result, _ = _result(payload, "instruments-info")
    item = _row(result, asset, "instruments-info")
    where = f"bybit: instruments-info {symbol(asset)}.fundingInterval"
    return interval_hours(item.get("fundingInterval"), where, scale=1 / 60)


def parse_funding_history(payload: Any, asset: str, now: datetime) -> list[Settlement]:
    """Read settled rates (newest first on the wire) with string ms timestamps."""
    result, _ = _result(payload, "funding/history")
    rows = sequence(result.get("list"), "bybit: funding/history.list")
    settlements = []
    for index, row in enumerate(rows):
        where = f"bybit: funding/history.list[{index}]"
        item = mapping(row, where)
        same(item.get("symbol"), symbol(asset), f"{where}.symbol")
        ts = epoch(item.get("fundingRateTimestamp"), f"{where}.fundingRateTimestamp", now)
        rate = funding_rate(item.get("fundingRate"), f"{where}.fundingRate")
        settlements.append(Settlement(round_minute(ts), rate))
    return sorted(settlements, key=lambda s: s.ts)


def parse_oi_history(
    payload: Any, asset: str, now: datetime
) -> tuple[list[tuple[datetime, float]], str]:
    """Read OI in coins per time, and the cursor to the next (older) page, "" at the end."""
    result, _ = _result(payload, "open-interest")
    same(result.get("symbol"), symbol(asset), "bybit: open-interest.symbol")
    cursor = result.get("nextPageCursor", "")
    if not isinstance(cursor, str):
        raise ParseError(f"bybit: open-interest.nextPageCursor: expected text, found {cursor!r}")
    points = []
    for index, row in enumerate(sequence(result.get("list"), "bybit: open-interest.list")):
        where = f"bybit: open-interest.list[{index}]"
        item = mapping(row, where)
        ts = round_minute(epoch(item.get("timestamp"), f"{where}.timestamp", now))
        points.append((ts, positive(item.get("openInterest"), f"{where}.openInterest")))
    return sorted(points), cursor


def parse_mark_klines(payload: Any, asset: str, now: datetime) -> dict[datetime, float]:
    """Read mark-price candles `[start, open, high, low, close]` as start time → open price."""
    result, _ = _result(payload, "mark-price-kline")
    same(result.get("symbol"), symbol(asset), "bybit: mark-price-kline.symbol")
    opens = {}
    for index, row in enumerate(sequence(result.get("list"), "bybit: mark-price-kline.list")):
        where = f"bybit: mark-price-kline.list[{index}]"
        candle = sequence(row, where)
        if len(candle) < 2:
            raise ParseError(f"{where}: expected [start, open, …], found {shown(candle)}")
        ts = round_minute(epoch(candle[0], f"{where}[0]", now))
        opens[ts] = positive(candle[1], f"{where}[1]")
    return opens


class BybitSource(VenueSource):
    """One `tickers` call per asset; backfill pages funding and OI backwards from now."""

    name = VENUE
    funding_paging = Paging(PAGE, forward=False)

    def _params(self, asset: str, **extra: str) -> dict[str, str]:
        """Every Bybit call names the linear category and the symbol."""
        return {"category": "linear", "symbol": symbol(asset), **extra}

    async def snapshots(self, http: HttpClient, now: datetime) -> list[Snapshot]:
        """Read every asset's ticker."""
        return list(await asyncio.gather(*(self._snapshot(http, a, now) for a in self.assets)))

    async def _snapshot(self, http: HttpClient, asset: str, now: datetime) -> Snapshot:
        """Build one snapshot, asking `instruments-info` only if the ticker omits the interval."""
        ticker = parse_ticker(await self._get(http, TICKERS, self._params(asset)), asset, now)
        hours = ticker.hours
        if hours is None:
            payload = await self._get(http, INSTRUMENTS, self._params(asset))
            hours = parse_instrument_hours(payload, asset)
        return Snapshot(asset, VENUE, ticker.ts, ticker.rate, hours, ticker.oi_usd, ticker.mark)

    async def funding_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[Settlement]:
        """Settled rates up to `cursor` by `endTime` (Bybit refuses startTime alone)."""
        params = self._params(asset, endTime=str(to_ms(cursor)), limit=str(PAGE))
        return parse_funding_history(await self._get(http, FUNDING_HISTORY, params), asset, now)

    async def open_interest(
        self, http: HttpClient, asset: str, start: datetime, now: datetime
    ) -> list[tuple[datetime, float]]:
        """Page hourly OI by cursor, pricing each page with one kline call; unpriced hours drop."""
        window = {"startTime": str(to_ms(start)), "endTime": str(to_ms(now))}

        async def page(cursor: str) -> tuple[list[tuple[datetime, float]], str | None]:
            params = self._params(asset, intervalTime="1h", limit=str(PAGE), **window)
            if cursor:
                params["cursor"] = cursor
            payload = await self._get(http, OI_HISTORY, params)
            coins, cursor_next = parse_oi_history(payload, asset, now)
            if not coins:
                return [], None
            marks = await self._marks(http, asset, coins[0][0], coins[-1][0], now)
            where = f"bybit: {symbol(asset)} open interest"
            priced = [(ts, notional(n, marks[ts], where)) for ts, n in coins if ts in marks]
            more = bool(cursor_next) and coins[0][0] > start
            return priced, cursor_next if more else None

        return await collect_pages(page, "", f"{self.name} {asset} OI history")

    async def _marks(
        self, http: HttpClient, asset: str, first: datetime, last: datetime, now: datetime
    ) -> dict[datetime, float]:
        """Hourly mark prices covering one OI page, to turn coins into USD at each hour."""
        params = self._params(
            asset, interval="60", start=str(to_ms(first)), end=str(to_ms(last)), limit=str(PAGE)
        )
        return parse_mark_klines(await self._get(http, MARK_KLINE, params), asset, now)
