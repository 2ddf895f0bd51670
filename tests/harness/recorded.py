"""Recorded answers for every endpoint of every source, for benchmarks and CLI tests."""

from __future__ import annotations

import json

from tests.harness.fake_source import FakeSource
from tests.harness.files import FIXTURES, fixture_json, fixture_text


def route_everything(src: FakeSource) -> None:
    """Recorded answers for every endpoint a poll of every source asks for (BTC and ETH)."""
    src.route("GET", "/fng/", body=fixture_json("fear_greed", "latest.json"))
    for asset in ("btc", "eth"):
        src.route(
            "GET",
            f"/{asset}/",
            body=fixture_text("farside", f"{asset}.html"),
            content_type="text/html",
        )
        kind = "bitcoin" if asset == "btc" else "ethereum"
        src.route(
            "GET",
            f"/api/etf/{kind}/flow-history",
            body=fixture_json("coinglass", f"flow_history_{asset}.json"),
        )
        symbol, inst = f"{asset.upper()}USDT", f"{asset.upper()}-USDT-SWAP"
        for path, name in (
            ("/fapi/v1/premiumIndex", "premium_index"),
            ("/fapi/v1/openInterest", "open_interest"),
        ):
            src.route(
                "GET",
                path,
                body=fixture_json("binance", f"{name}_{asset}.json"),
                match={"symbol": symbol},
            )
        src.route(
            "GET",
            "/v5/market/tickers",
            body=fixture_json("bybit", f"tickers_{asset}.json"),
            match={"symbol": symbol},
        )
        for path, name in (
            ("/api/v5/public/funding-rate", "funding_rate"),
            ("/api/v5/public/open-interest", "open_interest"),
            ("/api/v5/public/mark-price", "mark_price"),
        ):
            src.route(
                "GET",
                path,
                body=fixture_json("okx", f"{name}_{asset}.json"),
                match={"instId": inst},
            )
    src.route("GET", "/fapi/v1/fundingInfo", body=fixture_json("binance", "funding_info.json"))
    src.route("POST", "/info", body=fixture_json("hyperliquid", "meta_and_asset_ctxs.json"))
    btc = (FIXTURES / "sosovalue" / "history_btc.json").read_text()
    eth = (FIXTURES / "sosovalue" / "history_eth_data_list.json").read_text()
    src.route(
        "POST",
        "/openapi/v2/etf/historicalInflowChart",
        body=json.loads(btc),
        match={"type": "us-btc-spot"},
    )
    src.route(
        "POST",
        "/openapi/v2/etf/historicalInflowChart",
        body=json.loads(eth),
        match={"type": "us-eth-spot"},
    )
