"""Operations through the pipeline: metrics of real polls and sends, heartbeat, down notices."""

from __future__ import annotations

import io
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.delivery.outbox import OutboxWorker
from bot.metrics import Metrics
from bot.model import Delivery, Transition, TransitionKind
from bot.store import Store
from bot.store.sql import SqlStore
from bot.telegram.notifier import TelegramNotifier
from tests.harness.bot_app import running
from tests.harness.clock import SteppingClock
from tests.harness.fake_source import FakeSource
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.pipeline import pipeline, pipeline_settings, scrape

PING = "/ping/5f1c6a"
FNG = "/fng/"


def fng(day: datetime, value: int) -> dict[str, Any]:
    """An /fng/ answer with one reading, strings for numbers as the real API sends."""
    point = {
        "value": str(value),
        "value_classification": "x",
        "timestamp": str(int(day.timestamp())),
    }
    return {"name": "Fear and Greed Index", "data": [point], "metadata": {"error": None}}


def today(clock: SteppingClock) -> datetime:
    return clock().replace(hour=0, minute=0, second=0, microsecond=0)


async def test_metrics_follow_polls_evaluations_and_sends(
    tmp_path: Path, clock: SteppingClock, store: Store
) -> None:
    async with FakeSource() as src:
        settings = pipeline_settings(tmp_path, src.base_url)
        (settings.rules.dir / "fear.yaml").write_text(
            "rules:\n  - id: fear\n    series: fear_greed\n    condition: {below: 20}\n"
            "    message: 'fear at {{ value }}'\n"
        )
        src.route("GET", FNG, body=fng(today(clock), 10))
        console = io.StringIO()
        async with pipeline(settings, clock, store, console) as jobs:
            await jobs.poll(jobs.sources["fear_greed"])
            seen = scrape(jobs.metrics)
            assert "fear at 10" in console.getvalue()
            assert seen[("stablewatch_source_up", (("source", "fear_greed"),))] == 1
            last = (
                "stablewatch_source_last_success_timestamp_seconds",
                (("source", "fear_greed"),),
            )
            assert seen[last] == clock().timestamp()
            ok = ("stablewatch_polls_total", (("outcome", "ok"), ("source", "fear_greed")))
            assert seen[ok] == 1
            assert seen[("stablewatch_transitions_total", (("rule", "fear"), ("state", "firing")))]
            assert seen[("stablewatch_alerts_firing", (("rule", "fear"),))] == 1
            sent = ("stablewatch_messages_sent_total", (("kind", "firing"), ("outcome", "sent")))
            assert seen[sent] == 1
            assert seen[("stablewatch_delivery_seconds_count", ())] == 1
            assert seen[("stablewatch_outbox_pending", ())] == 0
            assert seen[("stablewatch_rules_loaded", ())] == 1
            assert seen[("stablewatch_rule_evaluation_seconds_count", ())] >= 1

            src.route("GET", FNG, status=503, body="down")
            clock.advance(timedelta(hours=1))
            await jobs.poll(jobs.sources["fear_greed"])
            seen = scrape(jobs.metrics)
            assert seen[("stablewatch_source_up", (("source", "fear_greed"),))] == 0
            error = ("stablewatch_polls_total", (("outcome", "error"), ("source", "fear_greed")))
            assert seen[error] == 1
            assert seen[last] == (clock() - timedelta(hours=1)).timestamp()


async def test_a_removed_rule_leaves_the_firing_gauge(
    tmp_path: Path, clock: SteppingClock, store: Store
) -> None:
    async with FakeSource() as src:
        settings = pipeline_settings(tmp_path, src.base_url)
        rule = settings.rules.dir / "fear.yaml"
        rule.write_text(
            "rules:\n  - id: fear\n    series: fear_greed\n    condition: {below: 20}\n"
        )
        src.route("GET", FNG, body=fng(today(clock), 10))
        async with pipeline(settings, clock, store, io.StringIO()) as jobs:
            await jobs.poll(jobs.sources["fear_greed"])
            rule.unlink()
            assert await jobs.reload() == (True, [])
            seen = scrape(jobs.metrics)
            assert not [k for k in seen if k[0] == "stablewatch_alerts_firing"]
            assert seen[("stablewatch_rules_loaded", ())] == 0
            resolved = ("stablewatch_transitions_total", (("rule", "fear"), ("state", "resolved")))
            assert seen[resolved] == 1


async def test_heartbeat_pings_only_while_a_source_polled_lately(
    tmp_path: Path, clock: SteppingClock, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeSource() as src:
        src.route("GET", PING, body="OK")
        src.route("GET", FNG, body=fng(today(clock), 50))
        settings = pipeline_settings(tmp_path, src.base_url, heartbeat={"url": src.url(PING)})
        async with pipeline(settings, clock, store, io.StringIO()) as jobs:
            assert not await jobs.heartbeat()  # nothing polled yet
            await jobs.poll(jobs.sources["fear_greed"])
            assert await jobs.heartbeat()
            clock.advance(timedelta(hours=3))  # three intervals of one hour: still fresh
            assert await jobs.heartbeat()
            clock.advance(timedelta(minutes=1))
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="bot.jobs"):
                assert not await jobs.heartbeat()
                assert not await jobs.heartbeat()
                await jobs.poll(jobs.sources["fear_greed"])
                assert await jobs.heartbeat()
    skipped = [r.getMessage() for r in caplog.records if "heartbeat not sent" in r.getMessage()]
    assert skipped == [  # once for two skipped pings in a row
        "heartbeat not sent: no source polled successfully within 3 of its intervals"
    ]
    assert "heartbeat sent again" in caplog.text
    assert len(src.requests_to(PING)) == 3


async def test_heartbeat_is_off_without_a_url_and_false_when_the_ping_fails(
    tmp_path: Path, clock: SteppingClock, store: Store
) -> None:
    async with FakeSource() as src:
        src.route("GET", FNG, body=fng(today(clock), 50))
        async with pipeline(
            pipeline_settings(tmp_path, src.base_url), clock, store, io.StringIO()
        ) as jobs:
            await jobs.poll(jobs.sources["fear_greed"])
            assert not await jobs.heartbeat()
        settings = pipeline_settings(tmp_path, src.base_url, heartbeat={"url": src.url("/nope")})
        async with pipeline(settings, clock, store, io.StringIO()) as jobs:
            assert not await jobs.heartbeat()  # 404: not retried
        assert len(src.requests_to("/nope")) == 1


async def test_no_heartbeat_while_the_store_is_unreachable(
    tmp_path: Path, clock: SteppingClock
) -> None:
    unreachable = SqlStore("postgresql+asyncpg://u:p@127.0.0.1:1/none")  # nothing listens
    try:
        async with FakeSource() as src:
            src.route("GET", PING, body="OK")
            settings = pipeline_settings(tmp_path, src.base_url, heartbeat={"url": src.url(PING)})
            async with pipeline(settings, clock, unreachable, io.StringIO()) as jobs:
                assert not await jobs.heartbeat()
            assert src.requests_to(PING) == []
    finally:
        await unreachable.close()


async def poll_at(
    tmp_path: Path, src: FakeSource, clock: SteppingClock, store: Store, console: io.StringIO
) -> None:
    """One poll by a freshly started pipeline: what a restart (or another replica) would do."""
    async with pipeline(pipeline_settings(tmp_path, src.base_url), clock, store, console) as jobs:
        await jobs.poll(jobs.sources["fear_greed"])


async def test_admins_hear_once_that_a_source_is_down_and_once_that_it_is_back(
    tmp_path: Path, clock: SteppingClock, store: Store
) -> None:
    console = io.StringIO()
    async with FakeSource() as src:
        src.route("GET", FNG, body=fng(today(clock), 50))
        async with pipeline(
            pipeline_settings(tmp_path, src.base_url), clock, store, console
        ) as jobs:
            await jobs.poll(jobs.sources["fear_greed"])
            src.route("GET", FNG, status=503, body="busy")
            for minutes in (20, 39):  # down for 59 minutes: nothing yet
                clock.advance(timedelta(minutes=minutes))
                await jobs.poll(jobs.sources["fear_greed"])
            assert "Source down" not in console.getvalue()
            clock.advance(timedelta(minutes=2))
            await jobs.poll(jobs.sources["fear_greed"])
            assert console.getvalue().count("Source down") == 1
            assert "fear_greed: no successful poll for 1h1m" in console.getvalue()
            clock.advance(timedelta(minutes=30))
            await jobs.poll(jobs.sources["fear_greed"])
        clock.advance(timedelta(minutes=30))
        await poll_at(tmp_path, src, clock, store, console)  # restarted, still down
        assert console.getvalue().count("Source down") == 1
        src.route("GET", FNG, body=fng(today(clock), 50))
        clock.advance(timedelta(minutes=30))
        await poll_at(tmp_path, src, clock, store, console)
        assert console.getvalue().count("Source back") == 1
        assert "answers again after 2h31m" in console.getvalue()
        clock.advance(timedelta(hours=1))
        await poll_at(tmp_path, src, clock, store, console)
    assert console.getvalue().count("Source down") == 1
    assert console.getvalue().count("Source back") == 1


async def test_a_source_that_never_answered_is_told_after_an_hour(
    tmp_path: Path, clock: SteppingClock, store: Store
) -> None:
    console = io.StringIO()
    async with FakeSource() as src:
        src.route("GET", FNG, status=451, body="")
        async with pipeline(
            pipeline_settings(tmp_path, src.base_url), clock, store, console
        ) as jobs:
            await jobs.poll(jobs.sources["fear_greed"])
            clock.advance(timedelta(minutes=61))
            await jobs.poll(jobs.sources["fear_greed"])
            seen = scrape(jobs.metrics)
    assert console.getvalue().count("Source down") == 1
    assert "geo-blocked" in console.getvalue()
    assert seen[("stablewatch_messages_sent_total", (("kind", "notice"), ("outcome", "sent")))] == 1


async def test_each_message_outcome_and_its_delivery_time_are_counted(
    tg: FakeTelegram, store: Store, clock: SteppingClock
) -> None:
    """Through the real PTB application and the fake Bot API, as in production."""
    at = clock()
    owed = [Delivery(0, chat, f"to {chat}", at) for chat in ("42", "43", "44")]
    await store.record_evaluation(
        [], [Transition("r", TransitionKind.FIRING, at, 1.0, "m")], owed, at
    )
    tg.block(43)
    tg.fail_next("sendMessage", chat_id=44, status=400, description="Bad Request: no")
    tg.fail_next("sendMessage", chat_id=42, status=429, retry_after=120)
    metrics = Metrics(process=False)
    async with running(tg, store, clock) as app:
        outbox = OutboxWorker(store, TelegramNotifier(app.bot), clock, "w", metrics=metrics)
        assert await outbox.drain() == 0
        seen = scrape(metrics)
        assert seen[("stablewatch_outbox_pending", ())] == 1
        clock.advance(timedelta(seconds=121))
        assert await outbox.drain() == 1
    seen = scrape(metrics)
    counted = {
        labels: value
        for (name, labels), value in seen.items()
        if name == "stablewatch_messages_sent_total"
    }
    assert counted == {
        (("kind", "firing"), ("outcome", outcome)): 1.0
        for outcome in ("retry", "gone", "refused", "sent")
    }
    assert seen[("stablewatch_delivery_seconds_sum", ())] == 121
    assert seen[("stablewatch_delivery_seconds_bucket", (("le", "120.0"),))] == 0
    assert seen[("stablewatch_delivery_seconds_bucket", (("le", "300.0"),))] == 1
    assert seen[("stablewatch_outbox_pending", ())] == 0
