"""Settings for tests that run the whole bot: every source but one switched off."""

from __future__ import annotations

OTHER_SOURCES = (
    "farside",
    "sosovalue",
    "coinglass",
    "binance",
    "bybit",
    "okx",
    "hyperliquid",
    "http_json",
)


def only_fear_greed_env() -> dict[str, str]:
    """Environment that switches off every source but fear_greed, so no test reaches the internet."""
    off = {f"STABLEWATCH_SOURCES__{name.upper()}__ENABLED": "false" for name in OTHER_SOURCES}
    return off | {"STABLEWATCH_DELIVERY__GROUPING_WINDOW": "0s"}
