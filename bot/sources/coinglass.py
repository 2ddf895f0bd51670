"""CoinGlass v4 ETF flow history (JSON, USD, per fund) → `etf.<asset>.net_flow[.coinglass]`."""

from __future__ import annotations

import itertools
import math
import re
from datetime import UTC, datetime
from typing import Any

from bot.keys import FUTURE_SLACK_DAILY, etf_flow_key
from bot.model import Observation
from bot.sources import ParseError
from bot.sources._keyed import KeyedFlowSource
from bot.sources.http import HttpClient

PATHS = {"btc": "/api/etf/bitcoin/flow-history", "eth": "/api/etf/ethereum/flow-history"}
"""A poll keeps a month (revisions included); the full history since launch is for backfill."""
_MIN_MS = 10**11
"""Epoch values below this are seconds (year 5138 in seconds), not the milliseconds we expect."""
_TICKER = re.compile(r"[A-Za-z0-9]{1,12}")


def series_key(asset: str, primary: bool, fund: str | None = None) -> str:
    """The configured ETF provider owns `etf.<asset>.net_flow`; else CoinGlass keeps its own."""
    return etf_flow_key(asset, fund, provider=None if primary else "coinglass")


def _check_code(payload: dict[str, Any]) -> None:
    """`code` is the string "0" on success; an error (even with HTTP 200) names itself in `msg`."""
    code = payload.get("code")
    if code == "0" or (code == 0 and not isinstance(code, bool)):
        return
    message = payload.get("msg") or payload.get("message") or "no message"
    raise ParseError(f"coinglass: provider error code {code!r}: {message}")


def _usd(raw: Any, where: str) -> float:
    """A JSON number in USD; strings, null, bools and non-finite values are refused."""
    if not isinstance(raw, int | float) or isinstance(raw, bool):
        raise ParseError(f"coinglass: {where}: expected USD as a number, found {raw!r}")
    try:
        value = float(raw)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise ParseError(f"coinglass: {where}: expected a finite number, found {raw!r}")
    return round(value, 2) + 0.0


def _trade_date(raw: Any, where: str) -> datetime:
    """Epoch milliseconds → the trade date at 00:00 UTC."""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ParseError(f"coinglass: {where}.timestamp: expected epoch ms, found {raw!r}")
    if not _MIN_MS <= raw < 10**14:
        raise ParseError(f"coinglass: {where}.timestamp: expected epoch ms, found {raw}")
    ts = datetime.fromtimestamp(raw / 1000, UTC)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _funds(raw: Any, where: str) -> list[tuple[str, float]]:
    """Per-fund flows; absent means no split that day, but every listed fund needs a number."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ParseError(f"coinglass: {where}.etf_flows: expected a list, found {raw!r}")
    funds: dict[str, float] = {}
    for i, item in enumerate(raw):
        at = f"{where}.etf_flows[{i}]"
        if not isinstance(item, dict):
            raise ParseError(f"coinglass: {at}: expected an object, found {item!r}")
        ticker = item.get("etf_ticker")
        if not isinstance(ticker, str) or not _TICKER.fullmatch(ticker):
            raise ParseError(f"coinglass: {at}.etf_ticker: expected a ticker, found {ticker!r}")
        if ticker.lower() in funds:
            raise ParseError(f"coinglass: {at}.etf_ticker: {ticker} appears twice")
        funds[ticker.lower()] = _usd(item.get("flow_usd"), f"{at}.flow_usd")
    return list(funds.items())


def _day(row: Any, where: str, asset: str, primary: bool) -> list[Observation]:
    """One trading day: the total and each fund's flow."""
    if not isinstance(row, dict):
        raise ParseError(f"coinglass: {where}: expected an object, found {type(row).__name__}")
    ts = _trade_date(row.get("timestamp"), where)
    total = _usd(row.get("flow_usd"), f"{where}.flow_usd")
    funds = _funds(row.get("etf_flows"), where)
    return [
        *(Observation(series_key(asset, primary, t), ts, v) for t, v in funds),
        Observation(series_key(asset, primary), ts, total),
    ]


def parse(payload: Any, asset: str, now: datetime, *, primary: bool = True) -> list[Observation]:
    """Turn a flow-history answer into daily totals and per-fund flows, oldest first."""
    if not isinstance(payload, dict):
        raise ParseError(f"coinglass: expected a JSON object, found {type(payload).__name__}")
    _check_code(payload)
    data = payload.get("data")
    if not isinstance(data, list) or not data:
        raise ParseError("coinglass: expected a non-empty `data` list")
    days = [_day(row, f"data[{i}]", asset, primary) for i, row in enumerate(data)]
    days.sort(key=lambda points: points[-1].ts)
    for a, b in itertools.pairwise(days):
        if a[-1].ts == b[-1].ts:
            raise ParseError(f"coinglass: date {a[-1].ts.date().isoformat()} appears twice")
    if days[-1][-1].ts > now + FUTURE_SLACK_DAILY:
        raise ParseError(f"coinglass: date in the future: {days[-1][-1].ts.date().isoformat()}")
    return [p for points in days for p in points]


class CoinGlassSource(KeyedFlowSource):
    """Paid API with per-fund flows; used only when a key is configured."""

    name = "coinglass"
    covered = frozenset(PATHS)
    per_fund = True

    async def request(self, http: HttpClient, key: str, asset: str) -> object:
        """GET the asset's flow history with the key header."""
        return await http.get_json(
            f"{self.settings.base_url}{PATHS[asset]}",
            headers={"CG-API-KEY": key, "Accept": "application/json"},
            timeout=self.settings.timeout.total_seconds(),
            retries=self.settings.retries,
        )

    def parse(self, payload: object, asset: str, now: datetime) -> list[Observation]:
        """The module's pure parser, with this source's series naming."""
        return parse(payload, asset, now, primary=self.primary)
