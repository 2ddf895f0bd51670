"""The "first poll done" start-up line counts only a poll that succeeded."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from bot.store import Store
from tests.harness.clock import SteppingClock
from tests.harness.fake_source import FakeSource
from tests.harness.payloads import fear_greed
from tests.harness.pipeline import pipeline, pipeline_settings

FNG = "/fng/"


def first_poll_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("first poll")]


async def test_a_failed_first_poll_is_not_logged_as_the_first_poll(
    tmp_path: Path, clock: SteppingClock, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with FakeSource() as src:
        settings = pipeline_settings(tmp_path, src.base_url)
        async with pipeline(settings, clock, store, io.StringIO()) as jobs:
            src.route("GET", FNG, body=b"down", status=503)
            await jobs.poll(jobs.sources["fear_greed"])
            assert first_poll_lines(caplog) == []
            src.route("GET", FNG, body=fear_greed((clock(), 40)))
            await jobs.poll(jobs.sources["fear_greed"])
            await jobs.poll(jobs.sources["fear_greed"])
    lines = first_poll_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("first poll (fear_greed) done")
