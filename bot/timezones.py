"""Wall-clock times and IANA zones as people type them: checked, never raising on bad input."""

from __future__ import annotations

import re
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HH_MM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_hhmm(text: str) -> str | None:
    """Normalise "7:30" to "07:30"; None for anything that is not a 24-hour time."""
    match = _HH_MM.fullmatch(text.strip())
    return f"{int(match[1]):02d}:{match[2]}" if match else None


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, or None, so user input never raises (or touches odd paths)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}", name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@cache
def _zones_by_lower_name() -> dict[str, str]:
    """Every IANA name the system knows, keyed by lower case (read once)."""
    from zoneinfo import available_timezones

    return {name.lower(): name for name in available_timezones()}


def zone_name(text: str) -> str | None:
    """The canonical IANA name for what a user typed ("europe/berlin" too), or None."""
    text = text.strip()
    if zone(text) is not None:
        return text
    found = _zones_by_lower_name().get(text.lower())
    return found if found is not None and zone(found) is not None else None
