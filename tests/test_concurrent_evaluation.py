"""Evaluations in one process take turns: two polls at once must not fire a composite twice."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from pathlib import Path

from bot.model import Observation
from bot.store import Store
from tests.harness.clock import SteppingClock
from tests.harness.pipeline import pipeline, pipeline_settings

RULES = """
rules:
  - {id: low-a, name: A low, series: a, condition: {below: 0}, severity: info,
     message: "a low"}
  - {id: low-b, name: B low, series: b, condition: {below: 0}, severity: info,
     message: "b low"}
  - {id: both-low, name: Both low, all: [low-a, low-b], within: 1d, severity: critical,
     message: "both low"}
"""


async def test_concurrent_evaluations_fire_a_composite_once(
    tmp_path: Path, clock: SteppingClock, store: Store
) -> None:
    settings = pipeline_settings(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "rules" / "pair.yaml").write_text(RULES)
    console = io.StringIO()
    async with pipeline(settings, clock, store, console) as jobs:
        await jobs.tick()  # every rule gets its state, so only new points count from here
        clock.advance(timedelta(minutes=5))
        now = clock()
        await store.upsert_observations([Observation("a", now, -1.0), Observation("b", now, -1.0)])
        await asyncio.gather(*(jobs.tick() for _ in range(4)))
    fired = [t for t in await store.transitions() if t.rule_id == "both-low"]
    assert len(fired) == 1, fired
    assert console.getvalue().count("both low") == 1
