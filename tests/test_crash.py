"""A crash mid fan-out loses nothing: SIGKILL the bot while it sends, restart, count deliveries."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.model import ChatKind
from bot.store.sql import SqlStore
from tests.harness.env import only_fear_greed_env
from tests.harness.fake_source import FakeSource
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.files import ROOT

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("stablewatch"))
TOKEN = "4242:CRASH-test"
CHATS = 40


def fng(*points: tuple[datetime, int]) -> dict[str, object]:
    data = [
        {"value": str(v), "timestamp": str(int(ts.timestamp()))}
        for ts, v in sorted(points, reverse=True)
    ]
    return {"data": data, "metadata": {"error": None}}


def alerts(tg: FakeTelegram) -> dict[str, int]:
    """Alert messages received per chat."""
    out: dict[str, int] = {}
    for item in tg.sent():
        if "Extreme fear" in (item.text or ""):
            out[str(item.chat_id)] = out.get(str(item.chat_id), 0) + 1
    return out


async def start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        EXE,
        "run",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def wait_until(check: object, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]  # noqa: ASYNC110 - another process acts
            await asyncio.sleep(0.05)


async def test_sigkill_mid_fan_out_loses_nothing_and_duplicates_little(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sw.db'}"
    store = SqlStore(url)
    await store.migrate()
    for chat in range(1, CHATS + 1):
        await store.subscribe(chat, ChatKind.PRIVATE, f"chat {chat}", datetime.now(UTC))
    await store.close()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with FakeSource() as src, FakeTelegram(token=TOKEN) as tg:
        src.route("GET", "/fng/", body=fng((today - timedelta(days=1), 40)))
        tg.delay_next(
            "sendMessage", 0.15, times=100_000
        )  # a slow Telegram: the fan-out takes a while
        env = (
            {k: v for k, v in os.environ.items() if not k.startswith("STABLEWATCH_")}
            | {
                "STABLEWATCH_STORE__URL": url,
                "STABLEWATCH_HTTP__PORT": "0",
                "STABLEWATCH_RULES__DIR": str(ROOT / "rules"),
                "STABLEWATCH_SOURCES__FEAR_GREED__BASE_URL": src.base_url,
                "STABLEWATCH_SOURCES__FEAR_GREED__INTERVAL": "1s",
                "STABLEWATCH_TELEGRAM__TOKEN": TOKEN,
                "STABLEWATCH_TELEGRAM__API_URL": tg.api_url,
            }
            | only_fear_greed_env()
        )
        first = await start(env, tmp_path)
        try:
            await wait_until(lambda: len(src.requests_to("/fng/")) >= 1, 20)
            src.route("GET", "/fng/", body=fng((today, 12), (today - timedelta(days=1), 40)))
            await wait_until(lambda: sum(alerts(tg).values()) >= 8, 30)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        before = sum(alerts(tg).values())
        assert before < CHATS, "the kill must land mid fan-out for this test to mean anything"
        second = await start(env, tmp_path)
        try:
            await wait_until(lambda: len(alerts(tg)) == CHATS, 60)
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
    received = alerts(tg)
    assert set(received) == {str(c) for c in range(1, CHATS + 1)}  # nothing lost
    duplicates = sum(received.values()) - CHATS
    print(f"crash test: {before} sent before SIGKILL, {duplicates} duplicate(s) after restart")
    assert duplicates <= 25  # at most the messages that were in flight when the process died
