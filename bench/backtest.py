"""Backtest throughput: 50 rules over 20 series of five years of hourly points, through `replay`.

Reports rule·points per second (rules × points each rule evaluates, over wall seconds, best of
three runs). Prints and writes bench/results/backtest.json.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bot.alerts.backtest import replay
from bot.engine.rules import SeriesRule
from bot.engine.ruleset import RuleSet
from bot.engine.series import Series

RESULTS = Path(__file__).resolve().parent / "results"
START = datetime(2021, 1, 1, tzinfo=UTC)
GOAL = 10_000_000
KINDS: list[dict[str, Any]] = [
    {"condition": {"below": 0}, "for": "8h", "recover": {"above": 2}},
    {"condition": {"streak": {"below": 0, "count": 48}}},
    {"condition": {"sign_changes": {"min": 6, "within": 24}}},
    {
        "condition": {"change": {"window": "24h", "by": 12, "direction": "down"}},
        "keep_firing_for": "6h",
    },
    {"condition": {"new_low": {"within": "30d"}}, "keep_firing_for": "1d"},
    {"condition": {"longest": {"below": 0, "within": "60d"}}},
    {
        "transform": [{"resample": {"every": "day", "how": "sum"}}],
        "condition": {"turns": "positive"},
    },
    {
        "transform": [{"rolling": {"window": 24, "how": "mean"}}],
        "condition": {"crosses_above": 0},
    },
]


def random_walks(count: int, points: int, seed: int, start: datetime = START) -> dict[str, Series]:
    """Hourly walks around zero that change sign every few weeks, with noise that makes the
    crossings choppy: a slow mean-reverting AR(1) level plus unit hourly noise, like funding."""
    rng = np.random.default_rng(seed)
    ts = int(start.timestamp()) + np.arange(points, dtype=np.int64) * 3600
    out = {}
    for i in range(count):
        shocks = rng.standard_normal(points)
        level = np.empty(points)
        x = 0.0
        for k in range(points):  # x = 0.999 x + e: a correlation time of about six weeks
            x = 0.999 * x + shocks[k]
            level[k] = x
        out[f"bench.s{i:02d}"] = Series(ts, level + rng.standard_normal(points))
    return out


def bench_rules(count: int, series: list[str], seed: int) -> RuleSet:
    """`count` rules cycling through the condition kinds, each on a random series."""
    rng = np.random.default_rng(seed)
    rules = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        key = series[int(rng.integers(len(series)))]
        rules.append(SeriesRule.model_validate({"id": f"rule-{i}", "series": key, **kind}))
    return RuleSet(tuple(rules))


def time_replay(rules: RuleSet, data: dict[str, Series], end: datetime) -> tuple[float, int]:
    """Wall seconds for one replay, and the number of events it found."""
    started = time.perf_counter()
    events = replay(rules, data, end)
    return time.perf_counter() - started, len(events)


def main() -> None:
    """Run the benchmark and write bench/results/backtest.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    points = int(args.years * 365 * 24)
    data = random_walks(args.series, points, seed=1)
    rules = bench_rules(args.rules, sorted(data), seed=2)
    end = START + timedelta(hours=points)
    runs = [time_replay(rules, data, end) for _ in range(args.runs)]
    best = min(seconds for seconds, _ in runs)
    rule_points = args.rules * points
    result = {
        "benchmark": "backtest",
        "series": args.series,
        "points_per_series": points,
        "rules": args.rules,
        "rule_points": rule_points,
        "events": runs[0][1],
        "seconds": [round(seconds, 4) for seconds, _ in runs],
        "best_seconds": round(best, 4),
        "rule_points_per_second": round(rule_points / best),
        "goal": {"rule_points_per_second": GOAL},
        "met": rule_points / best >= GOAL,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backtest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
