"""Prometheus-style durations (`30s`, `5m`, `8h`, `1d`, `2w`) shared by settings and rule files."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m`-style text; raise ValueError with the accepted form on anything else."""
    cleaned = text.strip()
    if not _WHOLE.fullmatch(cleaned):
        raise ValueError(f"expected a duration like 30s, 5m, 8h, 1d or 2w, found {text!r}")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise ValueError(f"expected a positive duration, found {text!r}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Write a timedelta back in the shortest Prometheus form, e.g. `1d2h`."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_UNITS[unit])
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _coerce(value: Any) -> Any:
    """Accept duration text, or a timedelta/number of seconds from Python callers."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"expected a positive duration, found {value!r}")
        return timedelta(seconds=value)
    return value


def _coerce_zero_ok(value: Any) -> Any:
    """Like `_coerce`, but `0s` (and 0) mean "no wait"."""
    if value in ("0", "0s", 0):
        return timedelta(0)
    return _coerce(value)


Wait = Annotated[
    timedelta,
    BeforeValidator(_coerce_zero_ok),
    PlainSerializer(format_duration, return_type=str),
]
"""A duration that may be zero (a grouping window that is switched off)."""

Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
]
"""A timedelta written as Prometheus duration text in files and environment variables."""
