"""Source health for people: last success, last error and freshness (CLI `status`, `/status`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import Settings
from bot.durations import format_duration
from bot.model import SourceHealth


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source's health line."""

    name: str
    state: str
    last_success: datetime | None
    age: timedelta | None
    fresh: bool
    last_error: str
    failures: int

    def line(self) -> str:
        """A one-line summary."""
        ago = f"{format_duration(self.age)} ago" if self.age is not None else "never"
        freshness = "fresh" if self.fresh else "STALE"
        error = f"; last error: {self.last_error}" if self.last_error else ""
        return f"{self.name:<12} {self.state:<24} last success {ago} ({freshness}){error}"


def source_statuses(
    health: dict[str, SourceHealth], settings: Settings, now: datetime
) -> list[SourceStatus]:
    """Every enabled or ever-polled source; fresh means a success within two intervals."""
    enabled = settings.sources.enabled()
    out = []
    for name in sorted(set(health) | set(enabled)):
        h = health.get(name)
        interval = enabled[name].interval if name in enabled else timedelta(hours=1)
        if h is None:
            out.append(SourceStatus(name, "never polled", None, None, False, "", 0))
            continue
        age = now - h.last_success if h.last_success else None
        state = "up" if h.up else f"DOWN ({h.failures} failed polls)"
        fresh = age is not None and age <= 2 * interval
        out.append(SourceStatus(name, state, h.last_success, age, fresh, h.last_error, h.failures))
    return out
