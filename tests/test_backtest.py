"""The backtest on real ETF flows (Oct–Nov 2025): known signals, the JSON shape, live agreement."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from functools import cache

import numpy as np
import pytest

from bot.alerts.backtest import Event, NoSuchRule, replay, select, simulated_end
from bot.alerts.evaluate import run_composite_live, run_series_rule
from bot.engine.loader import load_rules
from bot.engine.rules import CompositeRule, RuleFile, SeriesRule
from bot.engine.ruleset import RuleSet
from bot.engine.series import Series
from bot.interchange import read_csv
from bot.model import AlertState, from_epoch, to_epoch
from tests.harness.files import ROOT, SHARED_DATA

ETF_CSV = SHARED_DATA / "etf_flows_2025-10_2025-11.csv"


@cache
def market() -> dict[str, Series]:
    """The fixture CSV as one Series per series key."""
    points, issues = read_csv(ETF_CSV.read_text(encoding="utf-8").splitlines())
    assert issues == []
    grouped: dict[str, list[tuple[int, float]]] = {}
    for p in sorted(points, key=lambda p: (p.series, p.ts)):
        grouped.setdefault(p.series, []).append((to_epoch(p.ts), p.value))
    return {
        key: Series.of([t for t, _ in rows], [v for _, v in rows]) for key, rows in grouped.items()
    }


@cache
def shipped() -> RuleSet:
    rules = load_rules(ROOT / "rules")
    assert rules.issues == ()
    return rules


@cache
def events() -> tuple[Event, ...]:
    data = market()
    return tuple(replay(shipped(), data, simulated_end(data, None)))


def days_of(rule: str, state: str) -> list[date]:
    return [e.at.date() for e in events() if e.rule == rule and e.state == state]


def test_outflow_streak_fires_on_the_fifth_day_of_each_streak_only() -> None:
    assert days_of("btc-etf-outflow-streak", "firing") == [date(2025, 11, 4), date(2025, 11, 18)]


def test_outflow_streak_resolves_on_the_first_inflow_day() -> None:
    assert days_of("btc-etf-outflow-streak", "resolved") == [date(2025, 11, 6), date(2025, 11, 19)]


def test_outflow_streak_message_counts_the_days_and_the_total() -> None:
    first = next(e for e in events() if e.rule == "btc-etf-outflow-streak")
    assert first.value == pytest.approx(-566.4e6)
    assert first.message.startswith("5 straight days of BTC ETF outflows, −$1.9B in total")


def test_weekly_inflow_fires_on_thanksgiving_fridays_print_after_negative_weeks() -> None:
    assert days_of("btc-etf-weekly-inflow", "firing") == [date(2025, 10, 24), date(2025, 11, 28)]
    last = next(
        e
        for e in events()
        if e.rule == "btc-etf-weekly-inflow" and e.state == "firing" and e.at.day == 28
    )
    assert last.at == datetime(2025, 11, 28, tzinfo=UTC)
    assert last.value == pytest.approx((-151.0 + 128.7 + 21.1 + 71.4) * 1e6)
    assert "after −$1.22B the week before" in last.message


def test_events_are_in_time_order() -> None:
    moments = [(e.at, e.rule) for e in events()]
    assert moments == sorted(moments)
    assert len(moments) > 10


def test_event_json_has_exactly_the_documented_shape() -> None:
    for event in events():
        shown = event.as_json()
        assert set(shown) == {"rule", "state", "at", "value", "message"}
        assert shown["state"] in {"firing", "resolved"}
        assert isinstance(shown["at"], str)
        assert datetime.fromisoformat(shown["at"]) == event.at
        assert shown["value"] is None or isinstance(shown["value"], float)
        assert isinstance(shown["message"], str) and shown["message"]
    json.dumps([e.as_json() for e in events()])


def test_start_only_reports_events_from_then_on() -> None:
    data = market()
    start = datetime(2025, 11, 10, tzinfo=UTC)
    later = replay(shipped(), data, simulated_end(data, None), start=start)
    assert later == [e for e in events() if e.at >= start]


def test_progress_names_every_rule() -> None:
    seen: list[str] = []
    data = market()
    replay(shipped(), data, simulated_end(data, None), progress=seen.append)
    assert seen == [r.id for r in shipped().series_rules()] + [r.id for r in shipped().composites()]


def live_marks(rule: SeriesRule, s: Series) -> list[tuple[str, datetime]]:
    """Feed a series one point at a time, as polling would, with the clock at each point."""
    state: AlertState | None = None
    found: list[tuple[str, datetime]] = []
    for i in range(len(s)):
        now = from_epoch(int(s.ts[i]))
        state, changes, _ = run_series_rule(
            rule, state, Series(s.ts[: i + 1], s.values[: i + 1]), now
        )
        found.extend((c.kind.value, c.at) for c in changes)
    return found


@pytest.mark.parametrize(
    "rule_id",
    [
        "btc-etf-outflow-streak",
        "eth-etf-outflow-streak",
        "btc-etf-weekly-inflow",
        "eth-etf-weekly-inflow",
        "btc-etf-two-way",
        "btc-etf-record-outflow",
    ],
)
def test_live_evaluation_point_by_point_agrees_with_one_replay(rule_id: str) -> None:
    rule = shipped().get(rule_id)
    assert isinstance(rule, SeriesRule)
    replayed = [(e.state, e.at) for e in events() if e.rule == rule_id]
    assert live_marks(rule, market()[rule.series]) == replayed


def test_intraday_day_buckets_agree_live_and_in_replay() -> None:
    """A day's sum is judged once the day is over, live as in a backtest, not on its first hour."""
    rng = np.random.default_rng(3)
    start = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp())
    ts = start + np.arange(24 * 20, dtype=np.int64) * 3600
    values = rng.standard_normal(ts.size) + np.repeat(rng.choice([-0.5, 0.5], 20), 24)
    s = Series(ts, values)
    rule = SeriesRule.model_validate(
        {
            "id": "day-turns",
            "series": "funding.btc.binance",
            "transform": [{"resample": {"every": "day", "how": "sum"}}],
            "condition": {"turns": "positive"},
        }
    )
    found = replay(RuleSet((rule,)), {rule.series: s}, simulated_end({rule.series: s}, None))
    assert found
    assert live_marks(rule, s) == [(e.state, e.at) for e in found]


def test_composite_breakpoints_after_the_end_are_cut_with_its_lifecycle_inputs() -> None:
    """A `within` expiring after the end leaves breakpoints there; confirm must not step past."""
    day, t0 = 86400, int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    member = SeriesRule.model_validate({"id": "a", "series": "x", "condition": {"above": 0}})
    composite = CompositeRule.model_validate(
        {"id": "c", "any": ["a"], "within": "1d", "confirm": 2}
    )
    s = Series.of([t0 + d * day for d in (0, 1, 20, 21)], [1.0, -1.0, 1.0, -1.0])
    rules = RuleSet((member, composite))
    early = replay(rules, {"x": s}, from_epoch(t0 + day // 2))
    assert [e for e in early if e.rule == "c"] == []
    late = replay(rules, {"x": s}, from_epoch(t0 + 22 * day))
    assert [(e.state, e.at) for e in late if e.rule == "c"] == [
        ("firing", from_epoch(t0 + day)),
        ("resolved", from_epoch(t0 + day + 1)),
        ("firing", from_epoch(t0 + 21 * day)),
        ("resolved", from_epoch(t0 + 21 * day + 1)),
    ]


Mark = tuple[str, str, datetime]


def live_rule_marks(rules: RuleSet, data: dict[str, Series], moments: list[int]) -> list[Mark]:
    """Run every rule as the live pass does, with the clock at each moment in turn."""
    states: dict[str, AlertState] = {}
    found: list[Mark] = []
    for moment in moments:
        now = from_epoch(moment)
        for rule in rules.series_rules():
            s = data[rule.series]
            seen = int(s.ts.searchsorted(moment, side="right"))
            state, changes, _ = run_series_rule(
                rule, states.get(rule.id), Series(s.ts[:seen], s.values[:seen]), now
            )
            states[rule.id] = state
            found.extend((rule.id, c.kind.value, c.at) for c in changes)
        for composite in rules.composites():
            state, changes = run_composite_live(composite, states.get(composite.id), states, now)
            states[composite.id] = state
            found.extend((composite.id, c.kind.value, c.at) for c in changes)
    return sorted(found, key=lambda m: (m[2], m[0]))


@pytest.mark.parametrize("seed", range(6))
def test_composites_fire_and_resolve_alike_live_and_in_replay(seed: int) -> None:
    """One member history, two clocks: polled moment by moment, and replayed in one go."""
    day, start = 86400, int(datetime(2025, 3, 3, tzinfo=UTC).timestamp())
    rng = np.random.default_rng(seed)
    ts = start + np.arange(60, dtype=np.int64) * day
    data = {key: Series(ts, rng.standard_normal(ts.size)) for key in ("x", "y")}
    spec: list[dict[str, object]] = [
        {"id": "x-high", "series": "x", "condition": {"above": 1.0}},
        {"id": "y-low", "series": "y", "condition": {"below": -0.5}},
        {"id": "both", "all": ["x-high", "y-low"], "within": "3d"},
        {"id": "either", "any": ["x-high", "y-low"]},
        {"id": "both-then-x", "all": ["both", "x-high"], "within": "2d"},
    ]
    rules = RuleSet(tuple(RuleFile.model_validate({"rules": spec}).rules))
    # members change at points; a window runs out a second after fired_at + within
    moments = sorted({int(t) + later for t in ts for later in (0, 2 * day + 1, 3 * day + 1)})
    end = moments[-1] + 1
    replayed = [(e.rule, e.state, e.at) for e in replay(rules, data, from_epoch(end))]
    live = live_rule_marks(rules, data, moments)
    assert [m for m in live if m[0] in {"both", "either", "both-then-x"}]
    assert live == replayed


def test_replay_reads_nothing_after_its_end() -> None:
    end = datetime(2025, 11, 10, 23, 59, 59, tzinfo=UTC)
    cut_short = replay(shipped(), market(), end)
    assert cut_short == [e for e in events() if e.at <= end]  # no look-ahead either way
    assert days_of("btc-etf-outflow-streak", "firing")[-1] > end.date()
    assert [e.at.date() for e in cut_short if e.rule == "btc-etf-outflow-streak"] == [
        date(2025, 11, 4),
        date(2025, 11, 6),
    ]


def test_select_keeps_composite_members_but_reports_only_the_named() -> None:
    narrowed, named = select(shipped(), ["stabilization"])
    assert named == {"stabilization"}
    assert {r.id for r in narrowed.rules} == {
        "stabilization",
        "btc-etf-turning",
        "btc-etf-two-way",
        "btc-etf-weekly-inflow",
        "btc-funding-negative",
        "btc-oi-flush",
    }
    with pytest.raises(NoSuchRule, match="closest: extreme-fear"):
        select(shipped(), ["extreme-feer"])
