"""After a gap (bot stopped, store down, source failing) the next poll fetches what was missed."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from bot.store import Store
from tests.harness.clock import SteppingClock
from tests.harness.fake_source import FakeSource
from tests.harness.payloads import fear_greed
from tests.harness.pipeline import pipeline, pipeline_settings

FNG = "/fng/"


async def test_a_poll_after_a_gap_backfills_the_gap_and_a_regular_one_does_not(
    tmp_path: Path, clock: SteppingClock, store: Store
) -> None:
    day = clock().replace(hour=0, minute=0, second=0, microsecond=0)
    async with FakeSource() as src:
        settings = pipeline_settings(tmp_path, src.base_url)
        async with pipeline(settings, clock, store, io.StringIO()) as jobs:
            src.route("GET", FNG, body=fear_greed((day, 40)))
            await jobs.poll(jobs.sources["fear_greed"])  # first sight: the whole history
            clock.advance(timedelta(hours=2))
            await jobs.poll(jobs.sources["fear_greed"])  # within three intervals: a poll
            assert [r.query["limit"] for r in src.requests_to(FNG)] == ["0", "2"]
            clock.advance(timedelta(days=4))  # the bot was down for days
            missed = [(day + timedelta(days=d), 30 - d) for d in range(1, 5)]
            src.route("GET", FNG, body=fear_greed((day, 40), *missed))
            await jobs.poll(jobs.sources["fear_greed"])
    assert [r.query["limit"] for r in src.requests_to(FNG)] == ["0", "2", "0"]
    stored = [(p.ts, p.value) for p in await store.observations("fear_greed")]
    assert stored == [(day, 40.0)] + [(ts, float(v)) for ts, v in missed]
