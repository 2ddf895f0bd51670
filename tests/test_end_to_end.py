"""The whole bot: fake source → store → rule → outbox → real PTB → fake Telegram, and restarts."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import Runtime, StartupError
from bot.config import DeliverySettings, Settings
from bot.model import ChatKind
from tests.harness.clock import SteppingClock
from tests.harness.env import OTHER_SOURCES
from tests.harness.fake_source import FakeSource
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.files import ROOT, fixture_json
from tests.harness.payloads import fear_greed as fng
from tests.harness.store_rows import pending_outbox

pytestmark = pytest.mark.slow

TOKEN = "123456:TEST-token"
CHANNEL = "@stablewatch_signals"


def settings_for(tmp_path: Path, src: FakeSource, tg: FakeTelegram | None) -> Settings:
    telegram: dict[str, Any] = {}
    if tg is not None:
        telegram = {"token": tg.token, "api_url": tg.api_url, "channels": [CHANNEL]}
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        http={"port": 0},  # a free port: tests run side by side
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'sw.db'}"},
        rules={"dir": str(ROOT / "rules")},
        telegram=telegram,
        sources={
            "fear_greed": {"base_url": src.base_url, "interval": "1h", "retries": 0},
            **{name: {"enabled": False} for name in OTHER_SOURCES},
        },
    )


@asynccontextmanager
async def running(settings: Settings, clock: SteppingClock, **kw: Any) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings, clock, **kw)
    try:
        await runtime.start()
        yield runtime
    finally:
        await runtime.stop()


async def wait_first_poll(runtime: Runtime) -> None:
    """The first poll runs from the scheduler right after start; wait (bounded) for it."""
    import asyncio

    async with asyncio.timeout(5):
        while "fear_greed" not in await runtime.store.source_health():  # noqa: ASYNC110 - polls the store
            await asyncio.sleep(0.02)


async def test_alert_resolve_and_restart_through_telegram(
    tmp_path: Path, clock: SteppingClock
) -> None:
    nov1, nov2 = datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 11, 2, tzinfo=UTC)
    async with FakeSource() as src, FakeTelegram(token=TOKEN) as tg:
        src.route("GET", "/fng/", body=fixture_json("fear_greed", "history_2025-10.json"))
        settings = settings_for(tmp_path, src, tg)
        async with running(settings, clock) as runtime:
            await wait_first_poll(runtime)
            assert src.requests_to("/fng/")[0].query["limit"] == "0"  # backfill on first start
            assert len(await runtime.store.observations("fear_greed")) == 31
            await tg.wait_for_poll()
            tg.inject_message(7, "/start")
            await tg.wait_for(1, chat_id=7)
            assert [s.chat_id for s in await runtime.store.subscriptions()] == [7]

            src.route("GET", "/fng/", body=fng((nov1, 15), (nov1 - timedelta(days=1), 29)))
            await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
            alert = (await tg.wait_for(2, chat_id=7))[-1]
            assert "Extreme fear" in alert.text and "Fear &amp; Greed at 15" in alert.text
            assert alert.parse_mode == "HTML"
            assert "Fear &amp; Greed at 15" in (await tg.wait_for(1, chat_id=CHANNEL))[-1].text

            clock.advance(timedelta(days=1))
            src.route("GET", "/fng/", body=fng((nov2, 30), (nov1, 15)))
            await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
            resolve = (await tg.wait_for(3, chat_id=7))[-1]
            assert "Resolved: Extreme fear" in resolve.text and "after 1d" in resolve.text
            sent_before_restart = len(tg.sent())

        channel_before = len(tg.sent(CHANNEL))
        async with running(settings, clock) as runtime:
            await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
            await runtime.jobs.deliver()
            await (
                runtime.jobs.send_digests()
            )  # the start-up run may have claimed it first: either way
            await tg.wait_for(channel_before + 2, chat_id=CHANNEL)
            assert await pending_outbox(runtime.store) == 0
        # nothing was repeated; only the channel's daily digest, due while the bot was down
        after = tg.sent()[sent_before_restart:]
        assert [(s.chat_id, s.method) for s in after] == [
            (CHANNEL, "sendMessage"),
            (CHANNEL, "sendPhoto"),
        ]
        assert "Stablewatch daily digest" in after[0].text
        assert src.requests_to("/fng/")[-1].query["limit"] == "2"  # no second backfill


async def test_a_lone_alert_leaves_within_a_second_of_its_evaluation(
    tmp_path: Path, clock: SteppingClock
) -> None:
    """Leading-edge grouping: nothing holds the first alert back for the 30 s window."""
    nov1 = datetime(2025, 11, 1, tzinfo=UTC)
    async with FakeSource() as src, FakeTelegram(token=TOKEN) as tg:
        src.route("GET", "/fng/", body=fng((nov1 - timedelta(days=1), 40)))
        settings = settings_for(tmp_path, src, tg).model_copy(
            update={"delivery": DeliverySettings(grouping_window=timedelta(seconds=30))}
        )
        async with running(settings, clock) as runtime:
            await wait_first_poll(runtime)
            await runtime.store.subscribe(7, ChatKind.PRIVATE, "Alice", clock())
            src.route("GET", "/fng/", body=fng((nov1, 15)))
            loop = asyncio.get_running_loop()
            started = loop.time()
            await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
            [alert] = await tg.wait_for(1, chat_id=7, timeout=30)
            assert loop.time() - started < 1.0
    assert "Extreme fear" in alert.text


async def test_console_gets_alerts_without_a_token(
    tmp_path: Path, clock: SteppingClock, caplog: pytest.LogCaptureFixture
) -> None:
    nov1 = datetime(2025, 11, 1, tzinfo=UTC)
    console = io.StringIO()
    caplog.set_level(logging.INFO)
    async with FakeSource() as src:
        src.route("GET", "/fng/", body=fng((nov1 - timedelta(days=1), 40)))
        async with running(settings_for(tmp_path, src, None), clock, console=console) as runtime:
            await wait_first_poll(runtime)
            src.route("GET", "/fng/", body=fng((nov1, 12)))
            await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
    assert "Fear & Greed at 12" in console.getvalue()
    assert "<b>" not in console.getvalue()
    notes = [r.message for r in caplog.records if "console" in r.message]
    assert notes == ["no telegram.token set: alerts and digests go to the console"]


async def test_unreachable_source_logs_once_writes_down_and_recovers(
    tmp_path: Path, clock: SteppingClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with FakeSource() as src:
        src.route("GET", "/fng/", body=fixture_json("fear_greed", "latest.json"))
        async with running(settings_for(tmp_path, src, None), clock) as runtime:
            await wait_first_poll(runtime)
            await src.down()
            for _ in range(3):
                clock.advance(timedelta(minutes=1))
                await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
            health = (await runtime.store.source_health())["fear_greed"]
            assert not health.up and health.failures == 3
            assert "network error" in health.last_error
            up = await runtime.store.observations("source.fear_greed.up")
            assert [p.value for p in up] == [1.0, 0.0, 0.0, 0.0]
            assert runtime.scheduler.has_job("retry:fear_greed")
            await src.up()
            clock.advance(timedelta(minutes=1))
            await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
            assert (await runtime.store.source_health())["fear_greed"].up
    failing = [r for r in caplog.records if "is failing" in r.message]
    recovered = [r for r in caplog.records if "recovered after 3 failed polls" in r.message]
    assert len(failing) == 1 and len(recovered) == 1


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ("<html><title>Just a moment...</title>cf-chl</html>", 200),
        (
            '{"data": [{"value": "abc", "timestamp": "1761955200"}], "metadata": {"error": null}}',
            200,
        ),
        ('{"error": "Too Many Requests"}', 429),
    ],
)
async def test_bad_answer_is_a_failed_poll_with_no_observation_and_no_alert(
    tmp_path: Path, clock: SteppingClock, answer: str, status: int
) -> None:
    console = io.StringIO()
    async with FakeSource() as src:
        src.route("GET", "/fng/", body=fng((datetime(2025, 10, 31, tzinfo=UTC), 40)))
        async with running(settings_for(tmp_path, src, None), clock, console=console) as runtime:
            await wait_first_poll(runtime)
            src.route("GET", "/fng/", body=answer, status=status, content_type="text/html")
            await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
            assert [p.value for p in await runtime.store.observations("fear_greed")] == [40.0]
            assert not (await runtime.store.source_health())["fear_greed"].up
    assert console.getvalue() == ""


async def test_wrong_token_is_a_startup_error(tmp_path: Path, clock: SteppingClock) -> None:
    async with FakeSource() as src, FakeTelegram(token=TOKEN) as tg:
        settings = settings_for(tmp_path, src, tg)
        settings.telegram.token = type(settings.telegram.token)("999:WRONG")
        runtime = Runtime(settings, clock)
        with pytest.raises(StartupError, match="refused"):
            await runtime.start()
        await runtime.stop()
