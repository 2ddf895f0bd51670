"""Hot reload: a save is picked up within seconds; a bad edit keeps the last good rule set."""

from __future__ import annotations

import asyncio
import io
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import Runtime
from bot.config import Settings
from bot.rules_watch import RulesWatcher
from tests.harness.clock import SteppingClock
from tests.harness.env import OTHER_SOURCES
from tests.harness.fake_source import FakeSource
from tests.harness.files import ROOT

pytestmark = pytest.mark.slow

FEAR = ROOT / "rules" / "sentiment.yaml"


def settings_for(tmp_path: Path, src: FakeSource, rules: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        http={"port": 0},  # a free port: tests run side by side
        store={"url": f"sqlite+aiosqlite:///{tmp_path / 'sw.db'}"},
        rules={"dir": str(rules)},
        delivery={"grouping_window": "0s"},
        sources={
            "fear_greed": {"base_url": src.base_url, "retries": 0},
            **{name: {"enabled": False} for name in OTHER_SOURCES},
        },
    )


def fng(value: int, day: datetime) -> dict[str, object]:
    return {
        "data": [{"value": str(value), "timestamp": str(int(day.timestamp()))}],
        "metadata": {"error": None},
    }


def test_watcher_reports_only_changes(tmp_path: Path) -> None:
    shutil.copy(FEAR, tmp_path / "s.yaml")
    watcher = RulesWatcher(tmp_path)
    assert watcher.check().rules is None and watcher.check().problems == ()
    (tmp_path / "s.yaml").write_text(FEAR.read_text().replace("at_most: 20", "at_most: 21"))
    assert watcher.check().rules is not None
    (tmp_path / "s.yaml").write_text("rules: [\n")
    bad = watcher.check()
    assert bad.rules is None and "not valid YAML" in bad.problems[0]


async def test_save_is_picked_up_within_five_seconds_and_bad_edit_keeps_rules(
    tmp_path: Path, clock: SteppingClock
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(FEAR, rules / "sentiment.yaml")
    console = io.StringIO()
    day = datetime(2025, 11, 1, tzinfo=UTC)
    async with FakeSource() as src:
        src.route("GET", "/fng/", body=fng(40, day))
        runtime = Runtime(settings_for(tmp_path, src, rules), clock, console=console)
        await runtime.start()
        try:
            extra = "  - {id: mild-fear, series: fear_greed, condition: {at_most: 45}}\n"
            (rules / "sentiment.yaml").write_text(FEAR.read_text() + extra)
            async with asyncio.timeout(5):
                while runtime.rule_set().get("mild-fear") is None:  # noqa: ASYNC110 - the job reloads
                    await asyncio.sleep(0.05)
            (rules / "sentiment.yaml").write_text("rules:\n  - id: broken\n    series: x\n")
            assert await runtime.jobs.watch_rules() is False
            assert (
                runtime.rule_set().get("mild-fear") is not None
            )  # the last good set keeps running
            assert "Rule files not reloaded" in console.getvalue()
            assert "condition: expected a value" in console.getvalue()
        finally:
            await runtime.stop()


async def test_message_edit_keeps_a_firing_alert_and_condition_edit_resolves_it(
    tmp_path: Path, clock: SteppingClock
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(FEAR, rules / "sentiment.yaml")
    console = io.StringIO()
    day = datetime(2025, 11, 1, tzinfo=UTC)
    async with FakeSource() as src:
        src.route("GET", "/fng/", body=fng(40, day - timedelta(days=1)))
        runtime = Runtime(settings_for(tmp_path, src, rules), clock, console=console)
        await runtime.start()
        try:
            await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
            src.route("GET", "/fng/", body=fng(12, day))
            await runtime.jobs.poll(runtime.jobs.sources["fear_greed"])
            assert (await runtime.store.alert_states())["extreme-fear"].status.value == "firing"
            text = FEAR.read_text()
            (rules / "sentiment.yaml").write_text(text.replace("a classic sign", "often a sign"))
            assert await runtime.jobs.watch_rules()
            assert (await runtime.store.alert_states())["extreme-fear"].status.value == "firing"
            assert console.getvalue().count("Resolved") == 0
            (rules / "sentiment.yaml").write_text(text.replace("at_most: 20", "at_most: 10"))
            assert await runtime.jobs.watch_rules()
            await runtime.jobs.deliver()
            assert "Resolved: Extreme fear" in console.getvalue()
            assert "rule edited" in console.getvalue()
        finally:
            await runtime.stop()


async def test_interval_jobs_run_without_an_explicit_first_run() -> None:
    """APScheduler pauses a job added with next_run_time=None; ours must run on their own."""
    from bot.scheduler import Scheduler

    scheduler = Scheduler()
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()

    scheduler.every("x", timedelta(seconds=0.2), job)
    scheduler.start()
    try:
        async with asyncio.timeout(3):
            await ran.wait()
    finally:
        await scheduler.stop()


async def test_reload_on_request_refuses_a_broken_set(tmp_path: Path, clock: SteppingClock) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(FEAR, rules / "sentiment.yaml")
    async with FakeSource() as src:
        src.route("GET", "/fng/", body=fng(40, datetime(2025, 11, 1, tzinfo=UTC)))
        runtime = Runtime(settings_for(tmp_path, src, rules), clock, console=io.StringIO())
        await runtime.start()
        try:
            (rules / "extra.yaml").write_text(
                "rules:\n  - id: x\n    series: y\n    condition: {above: z}\n"
            )
            ok, problems = await runtime.reload()
            assert not ok and "condition.above" in problems[0]
            assert [r.id for r in runtime.rule_set().rules] == ["extreme-fear"]
            (rules / "extra.yaml").write_text(
                "rules:\n  - id: x\n    series: y\n    condition: {above: 1}\n"
            )
            assert await runtime.reload() == (True, [])
            assert {r.id for r in runtime.rule_set().rules} == {"extreme-fear", "x"}
        finally:
            await runtime.stop()
