"""The shell shared by keyed ETF-flow APIs: one request per asset, all at once, key required."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from datetime import datetime, timedelta

from bot.config import Settings, SourceSettings
from bot.keys import etf_flow_key
from bot.model import Observation
from bot.sources import SourceError
from bot.sources.http import HttpClient

POLL_WINDOW = timedelta(days=31)
"""A poll keeps the last month of the history, so late revisions are picked up."""


class KeyedFlowSource(ABC):
    """Subclasses name themselves, list the assets they cover and fetch one asset."""

    name: str
    covered: frozenset[str]
    per_fund: bool = False
    """Whether the provider also writes one series per fund (`….net_flow.ibit`)."""

    def __init__(self, settings: SourceSettings, app: Settings) -> None:
        self.settings = settings
        self.assets = [a for a in app.markets.assets if a in self.covered]
        self.primary = app.etf.provider == self.name

    def writes(self) -> list[str]:
        """Each covered asset's total flow (and per-fund flows), under our name unless primary."""
        totals = [
            etf_flow_key(a, provider=None if self.primary else self.name) for a in self.assets
        ]
        return [*totals, *(f"{key}.*" for key in totals if self.per_fund)]

    @abstractmethod
    async def request(self, http: HttpClient, key: str, asset: str) -> object:
        """Ask the provider for one asset's history."""

    @abstractmethod
    def parse(self, payload: object, asset: str, now: datetime) -> list[Observation]:
        """Turn one answer into observations."""

    async def _fetch(
        self, http: HttpClient, key: str, asset: str, now: datetime
    ) -> list[Observation]:
        try:
            payload = await self.request(http, key, asset)
        except SourceError as exc:
            raise type(exc)(f"{self.name} {asset}: {exc}", permanent=exc.permanent) from exc
        return self.parse(payload, asset, now)

    async def _all(self, http: HttpClient, now: datetime) -> list[Observation]:
        key = self.settings.api_key.get_secret_value()
        if not key:
            raise SourceError(f"{self.name}: no api_key set", permanent=True)
        parts = await asyncio.gather(*(self._fetch(http, key, a, now) for a in self.assets))
        return [point for part in parts for point in part]

    async def poll(self, http: HttpClient, now: datetime) -> list[Observation]:
        """Fetch the history and keep the last month."""
        return [p for p in await self._all(http, now) if p.ts >= now - POLL_WINDOW]

    async def backfill(
        self, http: HttpClient, now: datetime, since: datetime | None
    ) -> list[Observation]:
        """The same history, all of it."""
        return [p for p in await self._all(http, now) if since is None or p.ts >= since]
