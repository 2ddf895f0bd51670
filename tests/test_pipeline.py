"""After data lands: states persist, only the newest point's transitions reach chats."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.alerts.pipeline import evaluate_series
from bot.digest.scorecard import DigestData, build_digest, render_digest
from bot.engine.loader import load_rules
from bot.engine.rules import CompositeRule, SeriesRule
from bot.engine.ruleset import RuleSet
from bot.model import ChatKind, Observation, Transition, TransitionKind
from bot.telegram.views import history_text
from tests.harness.files import ROOT
from tests.harness.store_backends import make_sqlite_store

DAY0 = datetime(2025, 10, 1, tzinfo=UTC)
NOW = datetime(2025, 11, 1, tzinfo=UTC)


def fg(day: int, value: float) -> Observation:
    return Observation("fear_greed", DAY0 + timedelta(days=day), value)


async def test_backfilled_history_does_not_replay_old_alerts(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    rules = load_rules(ROOT / "rules")
    try:
        await store.subscribe(42, ChatKind.PRIVATE, "me", NOW)
        await store.upsert_observations([fg(0, 30), fg(1, 15), fg(2, 30), fg(3, 18), fg(4, 19)])
        outcome = await evaluate_series(store, rules, {"fear_greed"}, NOW)
        assert [t.kind.value for t in outcome.transitions] == ["firing", "resolved", "firing"]
        assert outcome.enqueued == 0  # the last firing was on day 3, not at the newest point
        assert (await store.alert_states())["extreme-fear"].status.value == "firing"
    finally:
        await store.close()


async def test_transition_at_newest_point_goes_to_every_chat_and_channel(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    rules = load_rules(ROOT / "rules")
    try:
        await store.subscribe(1, ChatKind.PRIVATE, "a", NOW)
        await store.subscribe(-100, ChatKind.GROUP, "g", NOW)
        await store.upsert_observations([fg(0, 30)])
        await evaluate_series(store, rules, {"fear_greed"}, NOW)
        await store.upsert_observations([fg(1, 15)])
        outcome = await evaluate_series(store, rules, {"fear_greed"}, NOW, ["@chan"])
        assert outcome.enqueued == 3
        items = await store.claim_outbox("w", NOW)  # the first alert for each chat: at once
        assert sorted(i.chat_id for i in items) == ["-100", "1", "@chan"]
        assert "Extreme fear" in items[0].text and "15" in items[0].text
        again = await evaluate_series(store, rules, {"fear_greed"}, NOW)
        assert again.transitions == () and again.enqueued == 0
    finally:
        await store.close()


async def test_unrelated_series_evaluates_nothing(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    try:
        await store.upsert_observations([fg(0, 10)])
        outcome = await evaluate_series(store, load_rules(ROOT / "rules"), {"other"}, NOW)
        assert outcome.transitions == ()
        assert "extreme-fear" not in await store.alert_states()
    finally:
        await store.close()


async def test_a_pass_over_one_series_still_counts_every_rule_firing(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    a, b, c = (
        SeriesRule.model_validate(
            {"id": f"{k}-high", "series": f"x.{k}", "condition": {"above": 0}}
        )
        for k in "abc"
    )
    both = CompositeRule.model_validate({"id": "both", "all": ["a-high", "b-high"]})
    rules = RuleSet((a, b, c, both))
    try:
        await store.upsert_observations([Observation(f"x.{k}", DAY0, 1.0) for k in "ac"])
        first = await evaluate_series(store, rules, {"x.a", "x.c"}, NOW)
        assert first.firing == {"a-high", "c-high"}
        await store.upsert_observations([Observation("x.b", DAY0, 1.0)])
        second = await evaluate_series(store, rules, {"x.b"}, NOW + timedelta(minutes=1))
        assert second.firing == {"a-high", "b-high", "c-high", "both"}  # a and c: not stepped
        await store.upsert_observations([Observation("x.b", DAY0 + timedelta(hours=1), -1.0)])
        third = await evaluate_series(store, rules, {"x.b"}, NOW + timedelta(minutes=2))
        assert third.firing == {"a-high", "c-high"}
    finally:
        await store.close()


async def test_broken_template_falls_back_to_a_plain_line(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "a.yaml").write_text(
        "rules:\n  - id: f\n    series: fear_greed\n    condition: {below: 50}\n"
        "    message: '{{ value / 0 }}'\n"
    )
    store = await make_sqlite_store(tmp_path)
    try:
        await store.upsert_observations([fg(0, 10)])
        outcome = await evaluate_series(
            store, load_rules(tmp_path / "r"), {"fear_greed"}, NOW, ["c"]
        )
        assert outcome.transitions[0].message == "f: 10"
        assert outcome.enqueued == 1
    finally:
        await store.close()


async def test_repeat_reminds_while_firing_and_not_more_often(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "a.yaml").write_text(
        "rules:\n  - id: f\n    series: fear_greed\n    condition: {below: 50}\n    repeat: 1d\n"
        "    message: 'fear at {{ value | plain }}'\n"
    )
    rules = load_rules(tmp_path / "r")
    store = await make_sqlite_store(tmp_path)
    try:
        await store.upsert_observations([fg(0, 10)])
        first = await evaluate_series(
            store, rules, {"fear_greed"}, DAY0 + timedelta(hours=1), ["c"]
        )
        assert [t.kind.value for t in first.transitions] == ["firing"]
        (told,) = await store.claim_outbox("w", DAY0 + timedelta(hours=2))
        await store.mark_sent(told.id, 1, DAY0 + timedelta(hours=2))
        quiet = await evaluate_series(store, rules, None, DAY0 + timedelta(hours=20), ["c"])
        assert quiet.transitions == ()
        again = await evaluate_series(store, rules, None, DAY0 + timedelta(days=1, hours=2), ["c"])
        assert [(t.kind, t.reason) for t in again.transitions] == [
            (TransitionKind.REMINDER, "still firing")
        ]
        assert again.transitions[0].message == "fear at 10"  # the firing template, state "firing"
        assert again.enqueued == 1
        items = await store.claim_outbox("w", DAY0 + timedelta(days=2))
        assert "Still firing: f" in items[-1].text and "for 1d2h" in items[-1].text
        soon = await evaluate_series(store, rules, None, DAY0 + timedelta(days=1, hours=3), ["c"])
        assert soon.transitions == ()
    finally:
        await store.close()


async def test_reminders_show_as_firing_in_history_and_digest_old_rows_too(tmp_path: Path) -> None:
    """An older version stored a reminder as a firing with reason "still firing": same lines."""
    store = await make_sqlite_store(tmp_path)
    try:
        reminder = Transition(
            "f", TransitionKind.REMINDER, NOW, 10.0, "fear at 10", "warning", "still firing", DAY0
        )
        older = replace(reminder, kind=TransitionKind.FIRING)
        await store.record_evaluation([], [reminder, older], [], NOW)
        stored = await store.transitions()
        assert [t.kind for t in stored] == [TransitionKind.FIRING, TransitionKind.REMINDER]
        lines = history_text(stored, RuleSet()).splitlines()[1:]
        assert lines == ["2025-11-01 00:00 UTC 🔴 <b>f</b> firing — still firing"] * 2
        digest = render_digest(build_digest(DigestData((), transitions=tuple(stored)), NOW, "UTC"))
        assert digest.count("🟠 <b>f</b>: fear at 10") == 2
    finally:
        await store.close()


async def test_chat_filters_choose_which_rules_reach_a_chat(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    rules = load_rules(ROOT / "rules")
    try:
        for chat in (1, 2, 3, 4):
            await store.subscribe(chat, ChatKind.PRIVATE, str(chat), NOW)
        await store.set_filter("2", ["tag:etf"])  # not extreme-fear's tag
        await store.set_filter("3", ["tag:sentiment"])
        await store.set_filter("4", ["btc-funding-negative", "extreme-fear"])
        await store.upsert_observations([fg(0, 30)])
        await evaluate_series(store, rules, {"fear_greed"}, NOW)
        await store.upsert_observations([fg(1, 15)])
        await evaluate_series(store, rules, {"fear_greed"}, NOW)
        fired = await store.claim_outbox("w", NOW + timedelta(minutes=1))
        assert sorted(i.chat_id for i in fired) == ["1", "3", "4"]
        for item in fired:
            await store.mark_sent(item.id, 7, NOW)
        await store.set_filter("3", ["tag:etf"])  # told it fired: still told it resolved
        await store.upsert_observations([fg(2, 40)])
        later = NOW + timedelta(hours=1)
        await evaluate_series(store, rules, {"fear_greed"}, later)
        resolved = await store.claim_outbox("w", later + timedelta(minutes=1))
        assert sorted(i.chat_id for i in resolved) == ["1", "3", "4"]
    finally:
        await store.close()
