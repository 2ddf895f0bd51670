"""Each source's declared series cover what its recorded poll returns, so `check` stays honest."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

import pytest

from bot.config import HttpJsonSettings, Settings, SourceSettings
from bot.model import Observation
from bot.sources import Source, known_series, registry
from bot.sources.http_json import HttpJsonSource, compile_endpoint, parse
from tests.harness.exchanges import NOW, app_settings, client, venue_settings
from tests.harness.fake_source import FakeSource
from tests.harness.files import fixture_json, fixture_text
from tests.harness.payloads import VENUE_ROUTES

FLOWS_NOW = datetime(2025, 12, 1, 12, tzinfo=UTC)
"""After the recorded ETF pages and answers, as their own tests use."""


def build(name: str, app: Settings, table: SourceSettings | None = None) -> Source:
    return registry()[name](table or getattr(app.sources, name), app)


def assert_covered(source: Source, points: Iterable[Observation]) -> None:
    patterns = source.writes()
    series = {p.series for p in points}
    assert series, f"{source.name}: the fixture yielded nothing to check"
    stray = sorted(s for s in series if not any(fnmatchcase(s, p) for p in patterns))
    assert not stray, f"{source.name} writes {stray}, not declared in {patterns}"


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx", "hyperliquid"])
async def test_a_venue_declares_what_its_poll_returns(venue: str) -> None:
    app = app_settings(["btc"])
    async with FakeSource() as src, client() as http:
        for folder, path, name in VENUE_ROUTES:
            if folder == venue:
                src.route("GET", path, body=fixture_json(folder, name))
        src.route("POST", "/info", body=fixture_json("hyperliquid", "meta_and_asset_ctxs.json"))
        source = build(venue, app, venue_settings(src))
        points = await source.poll(http, NOW)
    assert_covered(source, points)


def test_fear_greed_declares_its_series() -> None:
    from bot.sources.fear_greed import parse as parse_fear_greed

    source = build("fear_greed", app_settings())
    assert_covered(
        source, parse_fear_greed(fixture_json("fear_greed", "history_2025-10.json"), NOW)
    )


@pytest.mark.parametrize("provider", ["farside", "sosovalue"])
def test_farside_declares_totals_and_funds_primary_or_not(provider: str) -> None:
    from bot.sources.farside import parse as parse_farside

    source = build("farside", app_settings(etf={"provider": provider}))
    primary = provider == "farside"
    points = [
        p
        for asset in ("btc", "eth")
        for p in parse_farside(
            fixture_text("farside", f"{asset}.html"), asset, FLOWS_NOW, primary=primary
        )
    ]
    assert any(p.series.count(".") == 3 + (not primary) for p in points)  # per-fund points
    assert_covered(source, points)


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("coinglass", {"btc": "flow_history_btc.json", "eth": "flow_history_eth.json"}),
        ("sosovalue", {"btc": "history_btc.json", "eth": "history_eth_data_list.json"}),
    ],
)
@pytest.mark.parametrize("provider", ["farside", "coinglass", "sosovalue"])
def test_a_keyed_provider_declares_what_it_parses(
    name: str, files: dict[str, str], provider: str
) -> None:
    source: Any = build(name, app_settings(etf={"provider": provider}))
    points = [
        p for a, f in files.items() for p in source.parse(fixture_json(name, f), a, FLOWS_NOW)
    ]
    assert_covered(source, points)


def test_http_json_declares_its_configured_series() -> None:
    table = HttpJsonSettings.model_validate(
        {
            "enabled": True,
            "endpoints": [
                {
                    "name": "chart",
                    "url": "https://stablecoins.llama.fi/stablecoincharts/all",
                    "series": {"stablecoin.total.supply": "[*].totalCirculating.peggedUSD"},
                    "timestamp": "[*].date",
                }
            ],
        }
    )
    source = HttpJsonSource(table, app_settings())
    compiled = compile_endpoint(table.endpoints[0])
    assert_covered(source, parse(fixture_json("http_json", "stablecoin_chart.json"), compiled, NOW))


def test_known_series_has_health_and_derived_series_only_for_what_is_enabled() -> None:
    venues_off = {v: {"enabled": False} for v in ("binance", "bybit", "okx", "hyperliquid")}
    quiet = known_series(app_settings(["btc"], sources=venues_off))
    assert "source.fear_greed.up" in quiet and "source.binance.up" not in quiet
    assert "funding.btc.oi_weighted" not in quiet
    loud = known_series(app_settings(["btc"]))
    assert {"funding.btc.oi_weighted", "oi.btc.total", "price.btc", "source.okx.up"} <= set(loud)
    assert "funding.eth.binance" not in loud
