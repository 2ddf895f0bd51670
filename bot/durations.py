"""Prometheus-style durations (`30s`, `5m`, `8h`, `1d`, `2w`) shared by settings and rule files."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
PATTERN = r"^\s*(\d+(ms|s|m|h|d|w|y))+\s*$"
"""The accepted text, for the JSON Schema (editors flag `for: 16` before `check` does)."""
UNIT_HINT = "durations need a unit: 30s 5m 8h 1d 2w"
# Fields whose values are usually seconds; any other bare number is suggested in hours.
_SECONDS_FIELDS = frozenset({"timeout", "lease", "max_retry_wait", "grouping_window"})


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


def unit_hint(value: bool | float, field: str | None = None) -> str:
    """Why a bare number is refused, with the reading the writer most likely meant."""
    if isinstance(value, bool):
        return f"{str(value).lower()} is a yes/no, not a duration → {UNIT_HINT}"
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{shown} is not a duration → {UNIT_HINT}"
    if len(shown) > 12:
        return f"a {len(shown)}-digit number is not a duration → {UNIT_HINT}"
    if value <= 0:
        return f"{shown} → {UNIT_HINT}; a duration is positive"
    unit = "s" if field in _SECONDS_FIELDS else "h"
    if float(value).is_integer():
        guess = f"{int(value)}{unit}"
    else:
        guess = format_duration(timedelta(seconds=value * _UNITS[unit]))
    return f"{shown} → did you mean {guess}? {UNIT_HINT}"


def _coerce(value: Any, info: ValidationInfo) -> Any:
    """Accept duration text or a timedelta; a bare number has no unit, so it is refused."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value) if "." in value else int(value)  # `STABLEWATCH_HA__LEASE=15`
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool | int | float):
        raise PydanticCustomError(
            "duration_unit", "{hint}", {"hint": unit_hint(value, info.field_name)}
        )
    return value


def _coerce_zero_ok(value: Any, info: ValidationInfo) -> Any:
    """Like `_coerce`, but zero means "no wait": `0s`, and a bare `0` (zero in any unit)."""
    if value in ("0", "0s") or (
        isinstance(value, int | float) and not isinstance(value, bool) and value == 0
    ):
        return timedelta(0)
    return _coerce(value, info)


Wait = Annotated[
    timedelta,
    BeforeValidator(_coerce_zero_ok),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\s*(0|(\d+(ms|s|m|h|d|w|y))+)\s*$"}),
]
"""A duration that may be zero (a grouping window that is switched off)."""

Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": PATTERN}),
]
"""A timedelta written as Prometheus duration text in files and environment variables."""
