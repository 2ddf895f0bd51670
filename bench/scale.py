"""Scale on PostgreSQL: fan-out enqueue, outbox claims, live evaluation and start-up as they grow.

Runs against the PostgreSQL server at 127.0.0.1:5432 (trust auth), in scratch databases it
creates through the `postgres` database and always drops, so nothing else is touched:
(a) one firing alert enqueued to 1k / 10k / 100k subscribed chats through `evaluate_series`;
(b) outbox rows claimed and marked sent per second, as the outbox worker does, from each backlog;
(c) live evaluation p99 with 200 and 2,000 rules; (d) start-up (open, migrate, load the arrays,
first evaluation) over 1 and 5 years of hourly history. `--quick` runs smaller sizes.
Prints how each figure grows and writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import numpy as np

from bench.backtest import bench_rules, random_walks
from bench.live import with_composites
from bot.alerts.pipeline import evaluate_series
from bot.delivery.outbox import BATCH
from bot.engine.rules import SeriesRule
from bot.engine.ruleset import RuleSet
from bot.model import ChatKind, Observation, from_epoch
from bot.store import Store, open_store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
START = datetime(2021, 1, 1, tzinfo=UTC)
SORT = "tottime"
GOALS = {"fanout_100k_seconds": 3.0, "live_p99_ms_2000_rules": 100.0}
SUBSCRIBERS_AT_ONCE = 16
"""Concurrent `subscribe` calls while filling the audience (setup only, not timed)."""


@asynccontextmanager
async def scratch_database(name: str) -> AsyncIterator[str]:
    """Create an empty database (dropping a leftover of the same name), yield its URL, drop it."""
    admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield URL.format(name=name)
    finally:
        admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def profiled(call: Callable[[], Awaitable[Any]], top: int) -> tuple[Any, float, list[str]]:
    """Run a coroutine under cProfile; its result, wall seconds, and the top `file:function`s."""
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    result = await call()
    profile.disable()
    wall = time.perf_counter() - started
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(SORT).print_stats(top)
    root = f"{ROOT}/"
    lines = [
        " ".join(ln.replace(root, "").split())
        for ln in out.getvalue().splitlines()
        if ln.strip()[:1].isdigit() and "(" in ln and "bench/scale.py" not in ln
    ]
    return result, wall, lines[:top]


async def subscribe(store: Store, first: int, count: int, now: datetime) -> None:
    """Subscribe chats `first` … `first + count - 1` through the store, a few at a time."""
    gate = asyncio.Semaphore(SUBSCRIBERS_AT_ONCE)

    async def one(chat: int) -> None:
        async with gate:
            await store.subscribe(chat, ChatKind.PRIVATE, f"user {chat}", now)

    await asyncio.gather(*(one(chat) for chat in range(first, first + count)))


async def drain(store: Store, now: datetime, most: int) -> tuple[int, float]:
    """Claim and mark sent up to `most` rows, `BATCH` at a time as the worker does; rows, s."""
    done = 0
    started = time.perf_counter()
    while done < most:
        batch = await store.claim_outbox("bench", now, min(BATCH, most - done))
        if not batch:
            break
        for item in batch:
            await store.mark_sent(item.id, 1, now)
        done += len(batch)
    return done, time.perf_counter() - started


async def fire(store: Store, rule_id: str, now: datetime) -> Any:
    """One new point on a series of its own, and a rule on it that fires: evaluate it."""
    series = f"bench.{rule_id.replace('-', '_')}"
    rule = SeriesRule.model_validate({"id": rule_id, "series": series, **FIRE})
    await store.upsert_observations([Observation(series, now, 1.0)])
    return await evaluate_series(store, RuleSet((rule,)), {series}, now)


async def fanout_and_claims(sizes: list[int], claim_rows: int, profile: bool) -> dict[str, Any]:
    """(a) and (b): grow the audience to each size, fire one alert, then drain part of it."""
    fanout: list[dict[str, Any]] = []
    claims: list[dict[str, Any]] = []
    async with scratch_database("stablewatch_bench_scale") as url, open_store(url) as store:
        subscribed = 0
        now = START
        for size in sizes:
            await subscribe(store, 1_000_001 + subscribed, size - subscribed, now)
            subscribed = size
            now += timedelta(days=1)  # outside the previous alert's grouping window
            started = time.perf_counter()
            outcome = await fire(store, f"fanout-{size}", now)
            wall = time.perf_counter() - started
            assert outcome.enqueued == size, f"{outcome.enqueued} rows for {size} chats"
            pending = await pending_rows(url)
            rows, seconds = await drain(store, now, claim_rows)
            top: list[str] = []
            if profile and size == sizes[-1]:  # a second alert, to the same chats, profiled
                now += timedelta(days=1)
                top = (await profiled(partial(fire, store, f"again-{size}", now), 25))[2]
            fanout.append({"chats": size, "seconds": round(wall, 3), "profile_top": top})
            claims.append(
                {
                    "backlog": pending,
                    "rows": rows,
                    "seconds": round(seconds, 3),
                    "rows_per_second": round(rows / seconds, 1),
                }
            )
    return {"fanout_enqueue": fanout, "outbox_claims": claims}


FIRE = {"condition": {"above": 0}}
"""A rule that fires on its first positive point."""


async def pending_rows(url: str) -> int:
    """Pending outbox rows, read with plain SQL (the store has no count for the bot to use)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=5)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'"))
    finally:
        await conn.close()


async def fill(store: Store, series: int, points: int, seed: int) -> dict[str, float]:
    """Hourly random walks into the store; each series' newest value."""
    data = random_walks(series, points, seed=seed, start=START)
    for key, s in data.items():
        await store.upsert_observations(
            [
                Observation(key, from_epoch(int(t)), float(v))
                for t, v in zip(s.ts, s.values, strict=True)
            ]
        )
    return {key: float(s.values[-1]) for key, s in data.items()}


@dataclass
class LiveRun:
    """A store with 90 days of hourly history and rules on it, stepped one point at a time."""

    store: Store
    rules: RuleSet
    last: dict[str, float]
    clock: datetime
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(5))
    timings: list[float] = field(default_factory=list)

    async def round(self, i: int) -> None:
        """Append one point to one series (round robin) and time the evaluation it triggers."""
        keys = sorted(self.last)
        key = keys[i % len(keys)]
        self.clock += timedelta(minutes=3)  # 20 series round-robin: each gets a point an hour
        self.last[key] = 0.999 * self.last[key] + float(self.rng.standard_normal())
        await self.store.upsert_observations([Observation(key, self.clock, self.last[key])])
        started = time.perf_counter()
        await evaluate_series(self.store, self.rules, {key}, self.clock)
        self.timings.append((time.perf_counter() - started) * 1000)

    async def rounds(self, first: int, count: int) -> None:
        """Several rounds in a row."""
        for i in range(first, first + count):
            await self.round(i)


async def live_once(count: int, rounds: int, profile: bool) -> dict[str, Any]:
    """(c) for one rule count: as bench/live.py (20 series, 90 days, 5 chats), on PostgreSQL."""
    async with (
        scratch_database("stablewatch_bench_scale_live") as url,
        open_store(url) as store,
    ):
        last = await fill(store, 20, 90 * 24, seed=1)
        for chat in range(5):
            await store.subscribe(1000 + chat, ChatKind.PRIVATE, f"chat {chat}", START)
        rules = with_composites(bench_rules(count, sorted(last), seed=2), 4)
        run = LiveRun(store, rules, last, START + timedelta(days=90))
        await evaluate_series(store, rules, None, run.clock)
        gc.collect()
        gc.freeze()  # as `stablewatch run` does once started
        await run.rounds(0, rounds)
        timings = list(run.timings)
        top = (await profiled(partial(run.rounds, rounds, 20), 25))[2] if profile else []
        gc.unfreeze()
    ms = np.array(timings)
    return {
        "series_rules": count,
        "composites": 4,
        "rounds": rounds,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "profile_top": top,
    }


async def live(rule_counts: list[int], rounds: int, profile: bool) -> list[dict[str, Any]]:
    """(c): live evaluation latency per rule count; the largest is profiled if asked."""
    return [
        await live_once(count, rounds, profile and count == rule_counts[-1])
        for count in rule_counts
    ]


async def startup(years: list[int], series: int, rule_count: int) -> list[dict[str, Any]]:
    """(d): a store already holding N years of hourly history, opened as the runtime opens it."""
    out = []
    for span in years:
        points = span * 365 * 24
        async with scratch_database("stablewatch_bench_scale_startup") as url:
            async with open_store(url) as store:
                await fill(store, series, points, seed=3)
            keys = [f"bench.s{i:02d}" for i in range(series)]
            rules = bench_rules(rule_count, keys, seed=4)
            now = START + timedelta(hours=points)
            started = time.perf_counter()
            async with open_store(url) as store:
                opened = time.perf_counter()
                await store.alert_states()
                loaded = 0
                for key in keys:
                    ts, _ = await store.series_arrays(key, None)
                    loaded += len(ts)
                arrays = time.perf_counter()
                await evaluate_series(store, rules, None, now)
                evaluated = time.perf_counter()
        out.append(
            {
                "years_of_hourly_history": span,
                "series": series,
                "points": loaded,
                "series_rules": rule_count,
                "open_and_migrate_seconds": round(opened - started, 3),
                "load_arrays_seconds": round(arrays - opened, 3),
                "first_evaluation_seconds": round(evaluated - arrays, 3),
                "total_seconds": round(evaluated - started, 3),
            }
        )
    return out


def growth(rows: list[dict[str, Any]], size: str, figure: str, unit: str) -> list[str]:
    """One line per size: the figure and how much it grew against the previous size."""
    lines = []
    for before, row in zip([None, *rows], rows, strict=False):
        ratio = ""
        if before is not None and before[figure]:
            times = row[size] / before[size]
            ratio = f"  (×{row[figure] / before[figure]:.2f} for ×{times:.0f} {size})"
        lines.append(f"  {size}={row[size]:>7}: {row[figure]:>10} {unit}{ratio}")
    return lines


SECTIONS = ("fanout", "live", "startup")


async def measure(quick: bool, profile: bool, sections: set[str]) -> dict[str, Any]:
    """The chosen sections, at full or quick sizes, and whether the goals were met."""
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    result: dict[str, Any] = {"benchmark": "scale", "database": "postgresql", "quick": quick}
    met: dict[str, bool | None] = dict.fromkeys(GOALS)
    if "fanout" in sections:
        result |= await fanout_and_claims(sizes, 2_000, profile)
        print(report(result), flush=True)  # each section as it ends: the rest may take minutes
        fan = {r["chats"]: r["seconds"] for r in result["fanout_enqueue"]}
        if 100_000 in fan:
            met["fanout_100k_seconds"] = fan[100_000] < GOALS["fanout_100k_seconds"]
    if "live" in sections:
        result["live"] = await live([200, 2_000], 30 if quick else 200, profile)
        p99 = result["live"][-1]["p99_ms"]
        met["live_p99_ms_2000_rules"] = p99 < GOALS["live_p99_ms_2000_rules"]
        print(report({"live": result["live"]}), flush=True)
    if "startup" in sections:
        result["startup"] = await startup([1, 5], 2 if quick else 5, 50)
    result["goal"] = GOALS
    result["met"] = met
    return result


def report(result: dict[str, Any]) -> str:
    """How each figure grows, for people."""
    lines: list[str] = []
    if "fanout_enqueue" in result:
        lines.append("(a) one alert enqueued to N chats, evaluate_series:")
        lines += growth(result["fanout_enqueue"], "chats", "seconds", "s")
        lines.append(f"(b) outbox claim + mark_sent ({BATCH} a claim), from a backlog of N rows:")
        lines += growth(result["outbox_claims"], "backlog", "rows_per_second", "rows/s")
    if "live" in result:
        lines.append("(c) live evaluation of one new point, p99:")
        lines += growth(result["live"], "series_rules", "p99_ms", "ms")
    if "startup" in result:
        lines.append("(d) start-up: open + migrate + load arrays + first evaluation:")
        lines += growth(result["startup"], "years_of_hourly_history", "total_seconds", "s")
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and write bench/results/scale.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1k/10k chats, fewer rounds")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest sizes")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="repeatable")
    args = parser.parse_args()
    sections = set(args.only or SECTIONS)
    result = asyncio.run(measure(args.quick, args.profile, sections))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "scale-quick.json" if args.quick or args.only else "scale.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(report(result))


if __name__ == "__main__":
    main()
