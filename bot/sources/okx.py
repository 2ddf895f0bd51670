"""OKX v5 USDT swaps → funding per 8 h, open interest in USD and mark price per asset.

OKX states no interval field; it is the gap between `fundingTime` (the coming settlement) and
`nextFundingTime` (the one after), 8 h for most swaps, 1–6 h for some. Every value in `data` is
a string, timestamps too; `code` is the string "0" when all is well, even on errors HTTP is 200.
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

VENUE = "okx"
FUNDING_RATE = "/api/v5/public/funding-rate"
OPEN_INTEREST = "/api/v5/public/open-interest"
MARK_PRICE = "/api/v5/public/mark-price"
FUNDING_HISTORY = "/api/v5/public/funding-rate-history"
OI_HISTORY = "/api/v5/rubik/stat/contracts/open-interest-history"
FUNDING_PAGE = 400
OI_PAGE = 100
SCHEDULE_AHEAD = timedelta(days=2)
"""`fundingTime`/`nextFundingTime` are future settlements; up to two intervals ahead is sane."""


@dataclass(frozen=True, slots=True)
class Funding:
    """What `funding-rate` says about one swap."""

    ts: datetime
    rate: float
    hours: float


def inst_id(asset: str) -> str:
    """OKX's USDT-margined perpetual swap for an asset: btc → BTC-USDT-SWAP."""
    return f"{asset.upper()}-USDT-SWAP"


def _data(payload: Any, what: str) -> list[Any]:
    """Unwrap `{"code": "0", "msg": "", "data": [...]}`; any other code carries `msg`."""
    where = f"okx: {what}"
    envelope = mapping(payload, where)
    code = envelope.get("code")
    if code != "0":
        raise ParseError(f"{where}: code {shown(code)}: {shown(envelope.get('msg'), 200)}")
    return sequence(envelope.get("data"), f"{where}.data")


def _only(payload: Any, asset: str, what: str) -> dict[str, Any]:
    """The single row for the asset's swap; an empty `data` means OKX does not know it."""
    where = f"okx: {what} {inst_id(asset)}"
    rows = _data(payload, what)
    if not rows:
        raise ParseError(f"{where}: no data (unknown or delisted instrument?)")
    item = mapping(rows[0], f"{where}.data[0]")
    same(item.get("instId"), inst_id(asset), f"{where}.instId")
    return item


def parse_funding_rate(payload: Any, asset: str, now: datetime) -> Funding:
    """Read the rate for the coming settlement and the interval it covers."""
    item, where = _only(payload, asset, "funding-rate"), f"okx: funding-rate {inst_id(asset)}"
    settles = epoch(item.get("fundingTime"), f"{where}.fundingTime", now, ahead=SCHEDULE_AHEAD)
    after = epoch(
        item.get("nextFundingTime"), f"{where}.nextFundingTime", now, ahead=SCHEDULE_AHEAD
    )
    gap = (after - settles).total_seconds() / 3600
    return Funding(
        floor_minute(epoch(item.get("ts"), f"{where}.ts", now)),
        funding_rate(item.get("fundingRate"), f"{where}.fundingRate"),
        interval_hours(gap, f"{where}: nextFundingTime - fundingTime (h)"),
    )


def parse_open_interest(payload: Any, asset: str, now: datetime) -> float:
    """Read open interest in USD: OKX states it (`oiUsd`) beside contracts and coins."""
    item, where = _only(payload, asset, "open-interest"), f"okx: open-interest {inst_id(asset)}"
    epoch(item.get("ts"), f"{where}.ts", now)
    return positive(item.get("oiUsd"), f"{where}.oiUsd")


def parse_mark_price(payload: Any, asset: str, now: datetime) -> float:
    """Read the mark price."""
    item, where = _only(payload, asset, "mark-price"), f"okx: mark-price {inst_id(asset)}"
    epoch(item.get("ts"), f"{where}.ts", now)
    return positive(item.get("markPx"), f"{where}.markPx")


def parse_funding_history(payload: Any, asset: str, now: datetime) -> list[Settlement]:
    """Read settled rates; `realizedRate` is what was paid, `fundingRate` only if it is absent."""
    settlements = []
    for index, row in enumerate(_data(payload, "funding-rate-history")):
        where = f"okx: funding-rate-history.data[{index}]"
        item = mapping(row, where)
        same(item.get("instId"), inst_id(asset), f"{where}.instId")
        key = "realizedRate" if item.get("realizedRate") not in (None, "") else "fundingRate"
        rate = funding_rate(item.get(key), f"{where}.{key}")
        ts = epoch(item.get("fundingTime"), f"{where}.fundingTime", now)
        settlements.append(Settlement(round_minute(ts), rate))
    return sorted(settlements, key=lambda s: s.ts)


def parse_oi_history(payload: Any, now: datetime) -> list[tuple[datetime, float]]:
    """Read rubik rows `[ts, oi, oiCcy, oiUsd]` (all strings) as time → USD."""
    points = []
    for index, row in enumerate(_data(payload, "open-interest-history")):
        where = f"okx: open-interest-history.data[{index}]"
        cells = sequence(row, where)
        if len(cells) < 4:
            raise ParseError(f"{where}: expected [ts, oi, oiCcy, oiUsd], found {shown(cells)}")
        ts = round_minute(epoch(cells[0], f"{where}[0]", now))
        points.append((ts, positive(cells[3], f"{where}[3] (oiUsd)")))
    return sorted(points)


class OkxSource(VenueSource):
    """Three calls per asset; backfill pages funding and rubik OI backwards from now."""

    name = VENUE
    funding_paging = Paging(FUNDING_PAGE, forward=False)
    oi_paging = Paging(OI_PAGE, forward=False)

    async def snapshots(self, http: HttpClient, now: datetime) -> list[Snapshot]:
        """Read every asset's funding, open interest and mark price."""
        return list(await asyncio.gather(*(self._snapshot(http, a, now) for a in self.assets)))

    async def _snapshot(self, http: HttpClient, asset: str, now: datetime) -> Snapshot:
        """Build one snapshot, stamped at the funding answer's `ts`."""
        swap = {"instType": "SWAP", "instId": inst_id(asset)}
        funding_raw, oi_raw, mark_raw = await asyncio.gather(
            self._get(http, FUNDING_RATE, {"instId": inst_id(asset)}),
            self._get(http, OPEN_INTEREST, swap),
            self._get(http, MARK_PRICE, swap),
        )
        funding = parse_funding_rate(funding_raw, asset, now)
        oi_usd = parse_open_interest(oi_raw, asset, now)
        mark = parse_mark_price(mark_raw, asset, now)
        return Snapshot(asset, VENUE, funding.ts, funding.rate, funding.hours, oi_usd, mark)

    async def funding_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[Settlement]:
        """Settled rates older than `cursor` (`after`); OKX keeps three months of them."""
        params = {"instId": inst_id(asset), "after": str(to_ms(cursor)), "limit": str(FUNDING_PAGE)}
        return parse_funding_history(await self._get(http, FUNDING_HISTORY, params), asset, now)

    async def oi_page(
        self, http: HttpClient, asset: str, cursor: datetime, start: datetime, now: datetime
    ) -> list[tuple[datetime, float]]:
        """Hourly rubik OI from `start` up to `cursor` (`begin`, `end`)."""
        params = {
            "instId": inst_id(asset),
            "period": "1H",
            "begin": str(to_ms(start)),
            "end": str(to_ms(cursor)),
            "limit": str(OI_PAGE),
        }
        return parse_oi_history(await self._get(http, OI_HISTORY, params), now)
