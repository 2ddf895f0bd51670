"""Mutations of recorded payloads for property tests: every parser must fail cleanly on them."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any


def mutate(payload: Any, path: list[int], value: Any) -> Any:
    """Replace the node at a path (indices wrap) in a deep copy."""
    result = copy.deepcopy(payload)
    node = result
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[list(node)[step % len(node)]]
        elif isinstance(node, list) and node:
            node = node[step % len(node)]
    if isinstance(node, dict) and node:
        node[list(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    return result


VENUE_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("binance", "/fapi/v1/fundingInfo", "funding_info.json"),
    ("binance", "/fapi/v1/premiumIndex", "premium_index_btc.json"),
    ("binance", "/fapi/v1/openInterest", "open_interest_btc.json"),
    ("okx", "/api/v5/public/funding-rate", "funding_rate_btc.json"),
    ("okx", "/api/v5/public/open-interest", "open_interest_btc.json"),
    ("okx", "/api/v5/public/mark-price", "mark_price_btc.json"),
    ("bybit", "/v5/market/tickers", "tickers_btc.json"),
)
"""(fixture folder, GET path, recorded file) of every futures venue's BTC poll; Hyperliquid
answers one POST /info with `meta_and_asset_ctxs.json`."""


def fear_greed(*points: tuple[datetime, int]) -> dict[str, Any]:
    """An alternative.me /fng/ answer, newest first, numbers as strings as the real API sends."""
    data = [
        {"value": str(v), "value_classification": "x", "timestamp": str(int(ts.timestamp()))}
        for ts, v in sorted(points, reverse=True)
    ]
    return {"name": "Fear and Greed Index", "data": data, "metadata": {"error": None}}
