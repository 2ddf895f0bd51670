"""Who hears about an alert: mutes, the notification log, the storm breaker.

When they hear it (the grouping window) is tested in test_grouping.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.alerts.pipeline import evaluate_series
from bot.config import DeliverySettings
from bot.engine.loader import load_rules
from bot.engine.ruleset import RuleSet
from bot.model import ChatKind, Observation, TransitionKind
from bot.store import Store
from tests.harness.store_backends import make_sqlite_store

T0 = datetime(2025, 10, 1, tzinfo=UTC)
NOW = DeliverySettings(grouping_window=timedelta(0))


def rules_in(tmp_path: Path, extra: str = "") -> RuleSet:
    (tmp_path / "r").mkdir(exist_ok=True)
    (tmp_path / "r" / "a.yaml").write_text(
        "rules:\n  - id: flip\n    series: x\n    condition: {below: 0}\n    tags: [etf]\n"
        f"    message: 'x at {{{{ value | plain }}}}'\n{extra}"
    )
    return load_rules(tmp_path / "r")


async def step(
    store: Store, rules: RuleSet, hour: int, value: float, delivery: DeliverySettings = NOW
) -> int:
    at = T0 + timedelta(hours=hour)
    await store.upsert_observations([Observation("x", at, value)])
    outcome = await evaluate_series(store, rules, {"x"}, at, delivery=delivery)
    return outcome.enqueued


async def drain(store: Store, at: datetime) -> list[tuple[str, str]]:
    items = await store.claim_outbox("w", at)
    for item in items:
        await store.mark_sent(item.id, 1, at)
    return [(i.chat_id, i.kind.value) for i in items]


async def test_mutes_by_rule_tag_and_all_skip_only_those_chats(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    try:
        for chat in (1, 2, 3, 4):
            await store.subscribe(chat, ChatKind.PRIVATE, "", T0)
        await store.mute("1", "flip", T0 + timedelta(days=1))
        await store.mute("2", "tag:etf", T0 + timedelta(days=1))
        await store.mute("3", "all", T0 - timedelta(hours=1))  # expired
        assert await step(store, rules_in(tmp_path), 0, -1) == 2
        assert sorted(await drain(store, T0 + timedelta(hours=1))) == [
            ("3", "firing"),
            ("4", "firing"),
        ]
    finally:
        await store.close()


async def test_resolve_goes_only_to_chats_told_it_fired(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    rules = rules_in(tmp_path)
    try:
        await store.subscribe(1, ChatKind.PRIVATE, "", T0)
        assert await step(store, rules, 0, -1) == 1
        await drain(store, T0 + timedelta(minutes=30))
        await store.subscribe(2, ChatKind.PRIVATE, "", T0 + timedelta(minutes=40))  # joined late
        assert await step(store, rules, 1, 1) == 1
        assert await drain(store, T0 + timedelta(hours=2)) == [("1", "resolved")]
    finally:
        await store.close()


async def test_reminder_goes_only_to_chats_told_it_fired_whatever_their_filter(
    tmp_path: Path,
) -> None:
    store = await make_sqlite_store(tmp_path)
    rules = rules_in(tmp_path, "    repeat: 1h\n")
    try:
        await store.subscribe(1, ChatKind.PRIVATE, "", T0)
        assert await step(store, rules, 0, -1) == 1
        await drain(store, T0 + timedelta(minutes=30))
        await store.subscribe(2, ChatKind.PRIVATE, "", T0 + timedelta(minutes=40))  # joined late
        await store.set_filter("1", ["tag:other"])  # told it fired: still reminded
        later = T0 + timedelta(hours=2)
        outcome = await evaluate_series(store, rules, None, later, delivery=NOW)
        assert [t.kind for t in outcome.transitions] == [TransitionKind.REMINDER]
        assert await drain(store, later) == [("1", "reminder")]
    finally:
        await store.close()


async def test_storm_breaker_sends_limit_then_one_notice_then_silence(tmp_path: Path) -> None:
    store = await make_sqlite_store(tmp_path)
    rules = rules_in(tmp_path)
    delivery = DeliverySettings(grouping_window=timedelta(0), storm_limit=3)
    try:
        await store.subscribe(1, ChatKind.PRIVATE, "", T0)
        texts = []
        for minute in range(12):  # flapping: fire, resolve, fire … every five minutes
            at = T0 + timedelta(minutes=5 * minute)
            await store.upsert_observations([Observation("x", at, -1 if minute % 2 == 0 else 1)])
            await evaluate_series(store, rules, {"x"}, at, delivery=delivery)
            for item in await store.claim_outbox("w", at):
                await store.mark_sent(item.id, 1, at)
                texts.append(item.text)
        assert len(texts) == 4
        assert "muted for an hour" in texts[-1]
        assert "flip" in (await store.mutes(T0 + timedelta(minutes=30)))["1"]
    finally:
        await store.close()
