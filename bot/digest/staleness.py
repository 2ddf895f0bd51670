"""When a series' newest point is too old to be shown without its date ("as of 3 Nov")."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot.config import SourcesSettings
from bot.keys import FEAR_GREED, VENUES, is_etf

MISSED = 2
"""Polling intervals (or, for ETF flows, US trading sessions) a series may fall behind."""
_DERIVED = ("oi_weighted", "total")
_CADENCE = {FEAR_GREED: timedelta(days=1), "funding": timedelta(hours=8)}
"""How often a series gets a new point however often it is polled: F&G daily, funding per
settlement (stamped at the settlement time), so an 8-hour-old rate polled every 5 min is fresh."""


def as_of(day: date, today: date) -> str:
    """The date a stale line is from: "3 Nov", with the year once it is not this year's."""
    text = f"{day.day} {day:%b}"
    return text if day.year == today.year else f"{text} {day.year}"


class Staleness:
    """Which lines need "as of": each series is judged by the polling interval of its source."""

    def __init__(self, sources: SourcesSettings | None = None) -> None:
        self._sources = sources if sources is not None else SourcesSettings()

    def interval(self, series: str) -> timedelta | None:
        """The polling interval behind a series; None when no source is known to write it."""
        if series == FEAR_GREED:
            return self._sources.fear_greed.interval
        parts = series.split(".")
        if len(parts) != 3 or parts[0] not in ("funding", "oi", "price"):
            return None
        if parts[2] in VENUES:
            return self._venue(parts[2])
        if parts[2] in _DERIVED:
            enabled = self._sources.enabled()
            return max(self._venue(v) for v in [v for v in VENUES if v in enabled] or VENUES)
        return None

    def _venue(self, venue: str) -> timedelta:
        return getattr(self._sources, venue).interval  # type: ignore[no-any-return]

    def stale(self, series: str, newest: datetime, now: datetime) -> bool:
        """Older than two polls, or (ETF flows, stamped 00:00 UTC) two trading sessions."""
        if is_etf(series):
            return _sessions_since(newest.date(), now.date()) > MISSED
        interval = self.interval(series)
        if interval is None:
            return False
        cadence = _CADENCE.get(series) or _CADENCE.get(series.split(".")[0], interval)
        return now - newest > MISSED * max(interval, cadence)

    def note(self, series: str, newest: datetime, now: datetime) -> date | None:
        """The day to name after a stale line, None for a fresh one."""
        return newest.date() if self.stale(series, newest, now) else None


def _sessions_since(day: date, today: date) -> int:
    """US trading sessions in [day, today): a Friday point read on Monday is one session old."""
    import numpy as np

    from bot.engine.calendar import sessions_between

    start = np.array([day], dtype="datetime64[D]")
    end = np.array([today], dtype="datetime64[D]")
    return int(sessions_between(start, end, "us-trading")[0]) if day < today else 0
