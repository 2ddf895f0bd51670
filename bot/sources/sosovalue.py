"""SoSoValue's ETF historical inflow chart (JSON, USD) → `etf.<asset>.net_flow[.sosovalue]`."""

from __future__ import annotations

import itertools
import math
import re
from datetime import UTC, date, datetime
from typing import Any

from bot.keys import FUTURE_SLACK_DAILY, etf_flow_key
from bot.model import Observation
from bot.sources import ParseError
from bot.sources._keyed import KeyedFlowSource
from bot.sources.http import HttpClient

PATH = "/openapi/v2/etf/historicalInflowChart"
TYPES = {"btc": "us-btc-spot", "eth": "us-eth-spot"}
"""A poll keeps a month (revisions included); the endpoint's ~300 days are for backfill."""
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DECIMAL = re.compile(r"-?\d+(\.\d+)?", re.ASCII)


def series_key(asset: str, primary: bool) -> str:
    """The configured ETF provider owns `etf.<asset>.net_flow`; else SoSoValue keeps its own."""
    return etf_flow_key(asset, provider=None if primary else "sosovalue")


def _check_code(payload: dict[str, Any]) -> None:
    """`code` 0 (a number; "0" tolerated) means success; anything else is the provider's error."""
    code = payload.get("code")
    if (code == 0 and not isinstance(code, bool)) or code == "0":
        return
    message = payload.get("msg") or payload.get("message") or "no message"
    raise ParseError(f"sosovalue: provider error code {code!r}: {message}")


def _rows(payload: dict[str, Any]) -> tuple[str, list[Any]]:
    """Find the rows: the doc says `data.list`, clients also see `data` (or `result`) as a list."""
    for key in ("data", "result"):
        node = payload.get(key)
        if isinstance(node, dict) and isinstance(node.get("list"), list):
            return f"{key}.list", node["list"]
        if isinstance(node, list):
            return key, node
    raise ParseError("sosovalue: expected a `data.list` (or `data`) list of rows")


def _date(raw: Any, where: str) -> date:
    if not isinstance(raw, str) or not _ISO_DATE.fullmatch(raw):
        raise ParseError(f"sosovalue: {where}.date: expected YYYY-MM-DD, found {raw!r}")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ParseError(f"sosovalue: {where}.date: no such date: {raw!r}") from None


def _usd(raw: Any, where: str) -> float:
    """A JSON number in USD; a numeric string is accepted; null, bools and NaN never are."""
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            value = float(raw)
        except OverflowError:
            value = None
    elif isinstance(raw, str) and _DECIMAL.fullmatch(raw.strip()):
        value = float(raw.strip())
    if value is None or not math.isfinite(value):
        raise ParseError(f"sosovalue: {where}.totalNetInflow: expected USD, found {raw!r}")
    return round(value, 2) + 0.0


def _point(row: Any, where: str, series: str) -> Observation:
    if not isinstance(row, dict):
        raise ParseError(f"sosovalue: {where}: expected an object, found {type(row).__name__}")
    day = _date(row.get("date"), where)
    value = _usd(row.get("totalNetInflow"), where)
    return Observation(series, datetime(day.year, day.month, day.day, tzinfo=UTC), value)


def parse(payload: Any, asset: str, now: datetime, *, primary: bool = True) -> list[Observation]:
    """Turn a historicalInflowChart answer into daily net flows, oldest first."""
    if not isinstance(payload, dict):
        raise ParseError(f"sosovalue: expected a JSON object, found {type(payload).__name__}")
    _check_code(payload)
    path, rows = _rows(payload)
    if not rows:
        raise ParseError(f"sosovalue: `{path}` is empty")
    series = series_key(asset, primary)
    points = [_point(row, f"{path}[{i}]", series) for i, row in enumerate(rows)]
    points.sort(key=lambda p: p.ts)
    for a, b in itertools.pairwise(points):
        if a.ts == b.ts:
            raise ParseError(f"sosovalue: date {a.ts.date().isoformat()} appears twice")
    if points[-1].ts > now + FUTURE_SLACK_DAILY:
        raise ParseError(f"sosovalue: date in the future: {points[-1].ts.date().isoformat()}")
    return points


class SoSoValueSource(KeyedFlowSource):
    """Daily totals only (no per-fund split on this endpoint); needs a free API key."""

    name = "sosovalue"
    covered = frozenset(TYPES)

    async def request(self, http: HttpClient, key: str, asset: str) -> object:
        """POST the chart request for the asset's fund type with the key header."""
        return await http.request_json(
            "POST",
            f"{self.settings.base_url}{PATH}",
            headers={"x-soso-api-key": key},
            json_body={"type": TYPES[asset]},
            timeout=self.settings.timeout.total_seconds(),
            retries=self.settings.retries,
        )

    def parse(self, payload: object, asset: str, now: datetime) -> list[Observation]:
        """The module's pure parser, with this source's series naming."""
        return parse(payload, asset, now, primary=self.primary)
