"""Numbers written for people: $1.42B, −$566.4M, −0.0123 %, +5."""

from __future__ import annotations

import math

from bot.keys import is_rate, is_usd

MINUS = "−"


def _sign(value: float) -> str:
    return MINUS if value < 0 else ""


def usd(value: float | None) -> str:
    """Format dollars with a scale suffix and a real minus sign."""
    if value is None or math.isnan(value):
        return "n/a"
    size = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if size >= limit:
            return f"{_sign(value)}${size / limit:.2f}".rstrip("0").rstrip(".") + suffix
    return f"{_sign(value)}${size:,.0f}"


def pct(value: float | None, digits: int = 4) -> str:
    """Format a fraction as a percentage (0.000123 → 0.0123 %)."""
    if value is None or math.isnan(value):
        return "n/a"
    text = f"{abs(value) * 100:.{digits}f}".rstrip("0").rstrip(".")
    return f"{_sign(value) if float(text) else ''}{text} %"


def signed(value: float | None, digits: int = 2) -> str:
    """Format a number with an explicit sign, for changes (+5, −3.2)."""
    if value is None or math.isnan(value):
        return "n/a"
    text = f"{abs(value):,.{digits}f}".rstrip("0").rstrip(".")
    if text == "0":
        return "0"
    return f"{'+' if value > 0 else MINUS}{text}"


def plain(value: float | None) -> str:
    """Format a reading without trailing zeros (20.0 → 20)."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.6f}".rstrip("0").rstrip(".")


def for_series(series: str, value: float | None) -> str:
    """A reading in its series' unit: dollars, funding as %, or a plain number."""
    if is_usd(series):
        return usd(value)
    if is_rate(series):
        return pct(value)
    return plain(value)
