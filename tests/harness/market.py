"""The recorded market data (tests/fixtures/market) loaded into a store, and its reference moment."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.interchange import read_csv
from bot.store import Observations
from tests.harness.files import SHARED_DATA

START = datetime(2025, 11, 1, 5, 0, tzinfo=UTC)
"""The morning after the one day the recorded data covers ETF flows, funding and F&G together."""


async def load_market(store: Observations) -> int:
    """Every recorded point of tests/fixtures/market, through the interchange CSV reader."""
    total = 0
    for path in sorted(SHARED_DATA.glob("*.csv")):
        points, issues = read_csv(path.read_text(encoding="utf-8").splitlines())
        assert not issues, issues
        total += await store.upsert_observations(points)
    return total
