"""The `Source` protocol, the parse error every source raises, and the registry of sources."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bot.model import Observation

if TYPE_CHECKING:
    from bot.config import SourceSettings
    from bot.sources.http import HttpClient


class SourceError(Exception):
    """A poll failed: bad HTTP status, unreachable host, or a payload we cannot trust."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ParseError(SourceError):
    """A payload did not have the shape we expect; never turned into a number."""


class Source(Protocol):
    """Polls one provider and returns observations; never touches the store."""

    name: str

    async def poll(self, http: HttpClient, now: datetime) -> list[Observation]:
        """Fetch the newest points."""
        ...

    async def backfill(
        self, http: HttpClient, now: datetime, since: datetime | None
    ) -> list[Observation]:
        """Fetch as much history as the provider offers (since `since`, when given)."""
        ...


SourceFactory = Callable[["SourceSettings"], Source]


def registry() -> dict[str, SourceFactory]:
    """Map source names (the keys of `sources.*` in settings) to their constructors."""
    from bot.sources.fear_greed import FearGreedSource

    return {"fear_greed": FearGreedSource}


def build_sources(enabled: dict[str, SourceSettings]) -> list[Source]:
    """Instantiate every enabled source that has an implementation."""
    known = registry()
    return [known[name](cfg) for name, cfg in enabled.items() if name in known]
