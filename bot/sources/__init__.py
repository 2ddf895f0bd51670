"""The `Source` protocol, the parse error every source raises, and the registry of sources."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bot.model import Observation

if TYPE_CHECKING:
    from bot.config import Settings, SourceSettings
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

    def writes(self) -> list[str]:
        """The series keys (fnmatch patterns) this source may write, so a typo'd rule is caught."""
        ...

    async def poll(self, http: HttpClient, now: datetime) -> list[Observation]:
        """Fetch the newest points."""
        ...

    async def backfill(
        self, http: HttpClient, now: datetime, since: datetime | None
    ) -> list[Observation]:
        """Fetch as much history as the provider offers (since `since`, when given)."""
        ...


SourceFactory = Callable[["SourceSettings", "Settings"], Source]
"""A source class: built from its own table and the whole settings (assets, ETF provider)."""

_IMPLEMENTATIONS = {
    "fear_greed": "bot.sources.fear_greed:FearGreedSource",
    "farside": "bot.sources.farside:FarsideSource",
    "sosovalue": "bot.sources.sosovalue:SoSoValueSource",
    "coinglass": "bot.sources.coinglass:CoinGlassSource",
    "binance": "bot.sources.binance:BinanceSource",
    "bybit": "bot.sources.bybit:BybitSource",
    "okx": "bot.sources.okx:OkxSource",
    "hyperliquid": "bot.sources.hyperliquid:HyperliquidSource",
    "http_json": "bot.sources.http_json:HttpJsonSource",
}


def _load(name: str, target: str) -> SourceFactory | None:
    """Import one source class; None only when its own module does not exist (not written yet)."""
    import importlib

    module, _, attr = target.partition(":")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise ModuleNotFoundError(
            f"source {name!r} ({module}) cannot be imported: {exc}; "
            "is the bot installed with its dependencies (pip install -e .)?",
            name=exc.name,
        ) from exc
    factory: SourceFactory = getattr(loaded, attr)
    return factory


def registry() -> dict[str, SourceFactory]:
    """Map source names (the keys of `sources.*` in settings) to their classes, imported lazily."""
    found = {name: _load(name, target) for name, target in _IMPLEMENTATIONS.items()}
    return {name: factory for name, factory in found.items() if factory is not None}


def build_sources(enabled: dict[str, SourceSettings], settings: Settings) -> list[Source]:
    """Instantiate every enabled source that has an implementation."""
    known = registry()
    return [known[name](cfg, settings) for name, cfg in enabled.items() if name in known]


def known_series(settings: Settings) -> list[str]:
    """Every series pattern the enabled sources, their health and the derived series may write."""
    from bot.keys import VENUES, source_up_key
    from bot.sources.derived import writes as derived_writes

    sources = build_sources(settings.sources.enabled(), settings)
    patterns = [p for source in sources for p in [*source.writes(), source_up_key(source.name)]]
    venues = [s.name for s in sources if s.name in VENUES]
    return [*patterns, *derived_writes(settings.markets.assets, venues)]
