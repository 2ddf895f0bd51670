"""Shared fixtures: an injectable clock, fixture payloads, settings on a temporary SQLite store."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PTB_TIMEDELTA", "true")

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).parent / "fixtures" / "market"
ROOT = Path(__file__).resolve().parents[1]


class SteppingClock:
    """A clock tests move by hand; nothing in the suite sleeps to make time pass."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(datetime(2025, 11, 1, 12, 0, tzinfo=UTC))


def fixture_text(*parts: str) -> str:
    return FIXTURES.joinpath(*parts).read_text(encoding="utf-8")


def fixture_json(*parts: str) -> Any:
    return json.loads(fixture_text(*parts))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Run in an empty directory with no STABLEWATCH_* variables, so the machine's env can't leak."""
    for key in list(os.environ):
        if key.startswith("STABLEWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


OTHER_SOURCES = (
    "farside",
    "sosovalue",
    "coinglass",
    "binance",
    "bybit",
    "okx",
    "hyperliquid",
    "http_json",
)


def only_fear_greed_env() -> dict[str, str]:
    """Environment that switches off every source but fear_greed, so no test reaches the internet."""
    off = {f"STABLEWATCH_SOURCES__{name.upper()}__ENABLED": "false" for name in OTHER_SOURCES}
    return off | {"STABLEWATCH_DELIVERY__GROUPING_WINDOW": "0s"}
