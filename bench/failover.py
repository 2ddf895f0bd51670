"""Failover benchmark: SIGKILL the leader in the middle of a fan-out; how long until the standby
leads, and what was lost or sent twice?

Two real `stablewatch run` replicas share a fresh PostgreSQL database (the server at
127.0.0.1:5432, as in tests/test_ha.py); the fake Bot API allows 30 sends in any sliding second
like Telegram at its limit. 150 private chats are subscribed and one alert is queued to all of
them; with the default delivery settings the leader fans it out at the real pace, and after about
50 messages it is killed with SIGKILL. Reported per kill: seconds from the kill until the standby
logs that it leads (and until its /readyz answers 200, when the bot serves HTTP), chats never
served, messages beyond one per chat against the messages in flight at the kill (sent by the dead
leader but not marked sent in the outbox), 409 Conflicts from getUpdates inside and outside the
takeover window, 429s, and the whole fan-out time. The full run kills three times (a fresh
database each) with the default 15 s lease and reports the median; `--quick` (or
STABLEWATCH_BENCH_QUICK=1) kills once with a 3 s lease. Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bot.config import DeliverySettings, HaSettings
from bot.store import open_store
from bot.store import schema as db
from tests.harness.bot_app import TOKEN
from tests.harness.fake_source import FakeSource
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.files import fixture_json
from tests.harness.replica import LEADS, STANDS_BY, Replica, enqueue_alert, replica_env
from tests.harness.store_backends import postgres_database
from tests.harness.store_rows import engine_of

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FIRST_CHAT = 6_000_001
SERVING = re.compile(r"http: serving on (http://\S+)")
"""The line the HTTP server logs when it listens (bot/web), when the branch has it."""
TAKEOVER_SLACK = 5.0
"""409s up to this long after the new leader's first line count as part of the takeover."""


def quick_default() -> bool:
    return os.environ.get("STABLEWATCH_BENCH_QUICK", "") not in ("", "0")


class ConflictLog:
    """Samples the fake's 409 counter, so each 409 gets a moment (within `every` seconds)."""

    def __init__(self, tg: FakeTelegram, every: float = 0.05) -> None:
        self.tg, self.every = tg, every
        self.moments: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        seen = 0
        while True:
            now = self.tg.conflicts
            self.moments.extend([time.perf_counter()] * (now - seen))
            seen = now
            await asyncio.sleep(self.every)

    def __enter__(self) -> ConflictLog:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        missing = self.tg.conflicts - len(self.moments)
        self.moments.extend([time.perf_counter()] * missing)


async def unsent_of(url: str, chats: list[str]) -> int:
    """How many of these chats' outbox rows are not marked sent."""
    o = db.outbox
    query = (
        select(func.count())
        .select_from(o)
        .where(o.c.chat_id.in_(chats), o.c.status != "sent", o.c.rule_id == "extreme-fear")
    )
    async with open_store(url) as store, engine_of(store).connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def outbox_status(url: str) -> dict[str, int]:
    o = db.outbox
    query = select(o.c.status, func.count()).group_by(o.c.status)
    async with open_store(url) as store, engine_of(store).connect() as conn:
        return {str(status): int(n) for status, n in (await conn.execute(query)).all()}


async def wait_ready(replica: Replica, deadline: float) -> float | None:
    """The moment the replica's /readyz first answers 200, or None if it serves no HTTP."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        while time.perf_counter() < deadline:
            base = next((m[1] for line in replica.lines if (m := SERVING.search(line))), None)
            if base is not None:
                try:
                    async with http.get(f"{base}/readyz") as answer:
                        if answer.status == 200:
                            return time.perf_counter()
                except (aiohttp.ClientError, TimeoutError):
                    pass
            await asyncio.sleep(0.05)
    return None


async def lead_moment(replica: Replica, timeout: float) -> float:
    await replica.wait_for(LEADS, timeout=timeout)
    return time.perf_counter()


def took_over(replica: Replica) -> int | None:
    found = [re.search(r"took over (\d+) outbox row", line) for line in replica.lines]
    return next((int(m[1]) for m in found if m), None)


async def one_kill(chats: int, kill_after: int, lease: float, limit: int) -> dict[str, Any]:
    """Two replicas on a fresh database; kill the leader after `kill_after` messages."""
    async with (
        postgres_database() as url,
        FakeSource() as src,
        FakeTelegram(token=TOKEN) as tg,
    ):
        src.route("GET", "/fng/", body=fixture_json("fear_greed", "latest.json"))
        env = replica_env(
            url,
            STABLEWATCH_TELEGRAM__TOKEN=TOKEN,
            STABLEWATCH_TELEGRAM__API_URL=tg.api_url,
            STABLEWATCH_SOURCES__FEAR_GREED__BASE_URL=src.base_url,
            STABLEWATCH_HA__LEASE=f"{lease:g}s",
        )
        tg.strict_window(limit)
        with tempfile.TemporaryDirectory() as tmp, ConflictLog(tg) as conflicts:
            first = await Replica("first", env, Path(tmp)).start()
            second: Replica | None = None
            try:
                await first.wait_for(LEADS, timeout=60)
                second = await Replica("second", env, Path(tmp)).start()
                await second.wait_for(STANDS_BY, timeout=60)
                return await fan_out_and_kill(
                    url, tg, first, second, chats, kill_after, lease, conflicts
                )
            finally:
                for replica in (first, second):
                    if replica is not None:
                        await replica.stop()


async def fan_out_and_kill(
    url: str,
    tg: FakeTelegram,
    first: Replica,
    second: Replica,
    chats: int,
    kill_after: int,
    lease: float,
    conflicts: ConflictLog,
) -> dict[str, Any]:
    ids = list(range(FIRST_CHAT, FIRST_CHAT + chats))
    async with open_store(url) as store:
        await enqueue_alert(store, ids)
    queued = time.perf_counter()
    await tg.wait_for(kill_after, timeout=60)
    first.kill()
    killed = time.perf_counter()
    assert first.proc is not None
    await first.proc.wait()
    await asyncio.sleep(0.2)  # answers already on their way are recorded
    at_kill = Counter(str(item.chat_id) for item in tg.sent())
    in_flight = await unsent_of(url, list(at_kill))
    timeout = 4 * lease + 30
    lead = asyncio.create_task(lead_moment(second, timeout))
    ready = asyncio.create_task(wait_ready(second, killed + timeout))
    led = await lead
    await tg.wait_for(sum(at_kill.values()) + 1, timeout=timeout)
    resent = time.perf_counter()
    for chat in ids:
        await tg.wait_for(1, chat_id=chat, timeout=120)
    served = time.perf_counter()
    await asyncio.sleep(3)  # room for late duplicates
    ready_at = ready.result() if ready.done() else None
    ready.cancel()
    received = Counter(str(item.chat_id) for item in tg.sent())
    window_end = led + TAKEOVER_SLACK
    return {
        "kill_after_messages": kill_after,
        "messages_at_kill": sum(at_kill.values()),
        "kill_to_leads_seconds": round(led - killed, 2),
        "kill_to_ready_seconds": round(ready_at - killed, 2) if ready_at else None,
        "kill_to_first_send_seconds": round(resent - killed, 2),
        "lost": sum(1 for chat in ids if received[str(chat)] == 0),
        "duplicated": sum(max(0, received[str(chat)] - 1) for chat in ids),
        "in_flight_at_kill": in_flight,
        "claims_released_by_new_leader": took_over(second),
        "conflicts_409_takeover": sum(killed <= t <= window_end for t in conflicts.moments),
        "conflicts_409_outside": sum(not killed <= t <= window_end for t in conflicts.moments),
        "http_429": tg.throttled,
        "fan_out_seconds": round(served - queued, 2),
        "outbox": await outbox_status(url),
        "new_leader_tracebacks": second.count("Traceback"),
    }


def median_of(trials: list[dict[str, Any]]) -> dict[str, float | None]:
    keys = [k for k, v in trials[0].items() if isinstance(v, int | float)]
    out: dict[str, float | None] = {}
    for key in keys:
        values = [t[key] for t in trials if isinstance(t.get(key), int | float)]
        out[key] = statistics.median(values) if values else None
    return out


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"failover: {result['chats']} chats, lease {result['lease']}, "
        f"{len(result['trials'])} kill(s), readiness by {result['ready_by']}"
    ]
    for n, t in enumerate(result["trials"], 1):
        lines.append(
            f"  kill {n}: after {t['messages_at_kill']} msgs; leads in "
            f"{t['kill_to_leads_seconds']} s (ready {t['kill_to_ready_seconds']}, "
            f"first send {t['kill_to_first_send_seconds']} s); "
            f"lost {t['lost']}, duplicated {t['duplicated']} (in flight {t['in_flight_at_kill']}); "
            f"409 {t['conflicts_409_takeover']} in takeover, "
            f"{t['conflicts_409_outside']} outside; "
            f"429 {t['http_429']}; fan-out {t['fan_out_seconds']} s"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and write bench/results/failover.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", default=quick_default())
    parser.add_argument("--chats", type=int, default=150)
    parser.add_argument("--kill-after", type=int, default=50, help="messages before the kill")
    parser.add_argument("--kills", type=int, help="trials, each on a fresh database")
    parser.add_argument("--lease", type=float, help="seconds (default: 15, quick: 3)")
    parser.add_argument("--limit", type=int, default=30, help="the fake's sends a second")
    args = parser.parse_args()
    lease = args.lease or (3.0 if args.quick else HaSettings().lease.total_seconds())
    kills = args.kills or (1 if args.quick else 3)
    trials = [
        asyncio.run(one_kill(args.chats, args.kill_after, lease, args.limit)) for _ in range(kills)
    ]
    serves_http = any(t["kill_to_ready_seconds"] is not None for t in trials)
    result: dict[str, Any] = {
        "benchmark": "failover",
        "quick": args.quick,
        "chats": args.chats,
        "lease": f"{lease:g}s",
        "global_rate": DeliverySettings().global_rate,
        "telegram_limit": f"{args.limit} sends in any sliding second",
        "ready_by": "/readyz 200" if serves_http else "log line 'leader: this replica leads now'",
        "takeover_window": f"from the kill to {TAKEOVER_SLACK:g} s after the new leader's line",
        "trials": trials,
        "median": median_of(trials),
        "goal": {
            "lost": 0,
            "duplicated": "<= in_flight_at_kill",
            "conflicts_409_outside": 0,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "failover.json").write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
