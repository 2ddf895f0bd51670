"""Shared fixtures: an injectable clock, and a clean environment for CLI and settings tests.

Plain helpers live in tests/harness/ so test modules never import from each other.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.store import Store, open_store
from tests.harness.bot_app import BOT, TOKEN
from tests.harness.clock import SteppingClock
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.files import ROOT

os.environ.setdefault("PTB_TIMEDELTA", "true")


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(datetime(2025, 11, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    """A fake Bot API on loopback, for the real python-telegram-bot application to talk to."""
    async with FakeTelegram(token=TOKEN, bot_username=BOT) as server:
        yield server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh SQLite store in the test's own folder."""
    async with open_store(f"sqlite+aiosqlite:///{tmp_path}/t.db") as opened:
        yield opened


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Run in an empty directory with no STABLEWATCH_* variables, so the machine's env can't leak."""
    for key in list(os.environ):
        if key.startswith("STABLEWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def store_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment whose store is a SQLite file in it and whose rules are the shipped ones."""
    monkeypatch.setenv(
        "STABLEWATCH_STORE__URL", f"sqlite+aiosqlite:///{clean_env / 'var' / 'sw.db'}"
    )
    monkeypatch.setenv("STABLEWATCH_RULES__DIR", str(ROOT / "rules"))
    return clean_env


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Property tests (hypothesis) run hundreds of examples each: they count as slow."""
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.slow)
