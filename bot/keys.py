"""The bot's one vocabulary: series keys, venues, icons and clock slack, named once.

Series keys are the contract between sources, the store, rule files, the digest and the CSV
(docs/architecture.md, "Series keys"). Build them with these functions instead of f-strings, so
a renamed series is renamed everywhere.
"""

from __future__ import annotations

import re
from datetime import timedelta

SERIES_KEY = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
"""What a series key may look like: dot-separated lower-case words (`etf.btc.net_flow.ibit`)."""

VENUES = ("binance", "bybit", "okx", "hyperliquid")
"""The futures venues writing `funding.<asset>.<venue>`, `oi.…` and `price.…`, in display order."""

FEAR_GREED = "fear_greed"
"""The Fear & Greed Index, 0–100."""

FUTURE_SLACK = timedelta(hours=1)
"""How far ahead of our clock an intraday point may be stamped before it is dropped as bogus."""
FUTURE_SLACK_DAILY = timedelta(days=1)
"""The same for daily points (ETF flows): stamped 00:00 UTC of a day that may be ahead of ours."""

SEVERITY_ICONS = {"info": "🔵", "warning": "🟠", "critical": "🔴"}
"""The dot in front of an alert, by rule severity."""
DEFAULT_ICON = SEVERITY_ICONS["warning"]
"""The dot for a severity the table does not know: a rule's default severity is warning."""


def etf_flow_key(asset: str, fund: str | None = None, *, provider: str | None = None) -> str:
    """US spot-ETF daily net flow in USD, total or a fund's; a secondary `provider` has its own."""
    key = f"etf.{asset}.net_flow"
    if provider is not None:
        key = f"{key}.{provider}"
    return key if fund is None else f"{key}.{fund.lower()}"


def funding_key(asset: str, venue: str) -> str:
    """A venue's funding rate per 8 h, or `oi_weighted` across venues."""
    return f"funding.{asset}.{venue}"


def weighted_funding_key(asset: str) -> str:
    """The open-interest-weighted funding rate across fresh venues (derived)."""
    return funding_key(asset, "oi_weighted")


def oi_key(asset: str, venue: str) -> str:
    """A venue's open interest in USD, or `total` across venues."""
    return f"oi.{asset}.{venue}"


def total_oi_key(asset: str) -> str:
    """All venues' open interest in USD (derived)."""
    return oi_key(asset, "total")


def price_key(asset: str, venue: str | None = None) -> str:
    """A venue's mark price, or the asset's price (`price.btc`, derived from one venue)."""
    return f"price.{asset}" if venue is None else f"price.{asset}.{venue}"


def source_up_key(source: str) -> str:
    """1 when the source's last poll succeeded, 0 when it failed."""
    return f"source.{source}.up"


def is_etf(series: str) -> bool:
    """ETF series count US trading sessions, not calendar days."""
    return series.startswith("etf.")


def is_usd(series: str) -> bool:
    """Series measured in US dollars (flows, open interest, prices)."""
    return series.startswith(("etf.", "oi.", "price."))


def is_rate(series: str) -> bool:
    """Series that are funding rates (fractions shown as percentages)."""
    return series.startswith("funding.")
