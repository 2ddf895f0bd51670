"""Shared kit for the exchange and generic-source tests: a client, settings, payload mutations."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
from hypothesis import strategies as st

from bot.config import Settings, SourceSettings
from bot.model import Observation
from bot.sources.http import HttpClient
from tests.harness.fake_source import FakeSource

NOW = datetime(2025, 11, 1, 12, tzinfo=UTC)
"""The fixtures were recorded for a poll at this instant."""


async def no_sleep(_: float) -> None:
    """Backoff that does not wait, so retry tests stay fast."""


@asynccontextmanager
async def client() -> AsyncIterator[HttpClient]:
    """A real aiohttp session wrapped in the project's client, with retries that never sleep."""
    async with aiohttp.ClientSession() as session:
        yield HttpClient(session, sleep=no_sleep)


def app_settings(assets: Iterable[str] = ("btc", "eth"), **extra: Any) -> Settings:
    """Whole settings with the given assets, ignoring any .env on the machine."""
    return Settings(
        _env_file=None,
        markets={"assets": list(assets)},
        **extra,
    )


def venue_settings(src: FakeSource, retries: int = 0) -> SourceSettings:
    """A source table pointing at the fake server."""
    return SourceSettings(base_url=src.base_url, retries=retries)


def by_series(points: Iterable[Observation]) -> dict[str, list[tuple[datetime, float]]]:
    """Group points by series, each list in time order, for compact assertions."""
    grouped: dict[str, list[tuple[datetime, float]]] = {}
    for point in sorted(points, key=lambda p: (p.series, p.ts)):
        grouped.setdefault(point.series, []).append((point.ts, point.value))
    return grouped


def latest(points: Iterable[Observation]) -> dict[str, float]:
    """Each series' newest value."""
    return {series: rows[-1][1] for series, rows in by_series(points).items()}


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True),
    st.sampled_from(["", "NaN", "inf", "-0", "1e400", "0.0001", "1761998400000", " 1", "1,5"]),
    st.text(max_size=12),
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
"""Anything JSON can hold, plus the strings exchanges send when something is off."""

paths = st.lists(st.integers(0, 40), min_size=1, max_size=6)
"""A route into a payload; indices wrap around at every level."""


def assert_sane(points: Iterable[Observation]) -> None:
    """What every successful parse promises: finite values, aware times no later than an hour on."""
    for point in points:
        assert math.isfinite(point.value), point
        assert point.ts.tzinfo is not None, point
        assert point.ts <= NOW.replace(hour=13), point
