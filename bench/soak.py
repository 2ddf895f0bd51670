"""Soak benchmark: one replica for 20 minutes on the fakes; does memory, the fd count or delivery
drift, and does it live through a PostgreSQL restart?

A real `stablewatch run` on a fresh PostgreSQL database (the server at 127.0.0.1:5432), 1,000
subscribed private chats on the fake Bot API (30 sends in any sliding second), and every source
the fake source can serve from recorded payloads (fear_greed with a fresh point every few
seconds; farside, sosovalue, coinglass, http_json and the four futures venues from
tests/fixtures/) polled every 10-30 s with no retries, while the fake answers 5 % of all requests
with HTTP 500. A copy of rules/ gets one extra rule file, rewritten every minute: odd rewrites
make its rule fire for every chat, even ones resolve it (the edit), so 1,000 messages or edits go
out each time. Half-way through, PostgreSQL is restarted (`pg_ctlcluster ... restart`; other
users of the server notice). Every 10 s the bot's RSS (/proc/<pid>/status VmRSS) and open file
descriptors (/proc/<pid>/fd) are sampled, and /metrics when the bot serves HTTP; the asyncio task
count is not visible from outside the process. At the end the outbox rows marked sent are matched
against the messages the fake received, chat by chat. `--minutes N` (default 20); `--quick` (or
STABLEWATCH_BENCH_QUICK=1): 2 minutes, rule rewrites every 40 s. Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from bot.model import ChatKind
from bot.sources.coinglass import PATHS as COINGLASS_PATHS
from bot.sources.sosovalue import PATH as SOSOVALUE_PATH
from bot.store import open_store
from bot.store import schema as db
from tests.harness.bot_app import TOKEN
from tests.harness.fake_telegram import FakeTelegram, Sent
from tests.harness.faulty_source import FaultySource
from tests.harness.files import ROOT, fixture_json, fixture_text
from tests.harness.payloads import VENUE_ROUTES
from tests.harness.replica import LEADS, Replica, replica_env
from tests.harness.store_backends import postgres_database
from tests.harness.store_rows import engine_of

RESULTS = ROOT / "bench" / "results"
FIRST_CHAT = 8_000_001
SAMPLE_EVERY = 10.0
SERVING = re.compile(r"http: serving on (http://\S+)")
"""The line the HTTP server logs when it listens (bot/web), when the branch has it."""
UNREACHABLE, REACHABLE = "store: unreachable", "store: reachable again"
INTERVALS = {
    "fear_greed": "10s",
    "binance": "15s",
    "bybit": "15s",
    "okx": "15s",
    "hyperliquid": "15s",
    "farside": "20s",
    "sosovalue": "30s",
    "coinglass": "30s",
    "http_json": "10s",
}
USDT = "peggedAssets[?symbol=='USDT'] | [0].circulating.peggedUSD"
SOAK_RULE = """\
# Rewritten by bench/soak.py every reload: odd cycles fire at the next level point, even ones
# resolve (the edit of a firing rule resolves it).
rules:
  - id: soak-level
    name: Soak level
    series: soak.level
    condition: {{at_least: {bound}}}
    severity: info
    tags: [soak]
    message: "Soak cycle {cycle}: level at {{{{ value | plain }}}}."
    resolved_message: "Soak cycle {cycle}: over at {{{{ value | plain }}}}."
"""


def quick_default() -> bool:
    return os.environ.get("STABLEWATCH_BENCH_QUICK", "") not in ("", "0")


def route_sources(src: FaultySource) -> None:
    """Recorded payloads for every source but fear_greed (see `FearGreedFeed`), BTC only."""
    for venue, path, name in (
        *VENUE_ROUTES,
        ("coinglass", COINGLASS_PATHS["btc"], "flow_history_btc.json"),
        ("http_json", "/stablecoins", "stablecoins.json"),
    ):
        src.route("GET", path, body=fixture_json(venue, name))
    src.route("POST", "/info", body=fixture_json("hyperliquid", "meta_and_asset_ctxs.json"))
    src.route("POST", SOSOVALUE_PATH, body=fixture_json("sosovalue", "history_btc.json"))
    html = fixture_text("farside", "btc.html")
    src.route("GET", "/btc/", body=html, content_type="text/html")


def sources_env(src: FaultySource) -> dict[str, str]:
    env: dict[str, str] = {"STABLEWATCH_MARKETS__ASSETS": '["btc"]'}
    for name, interval in INTERVALS.items():
        key = f"STABLEWATCH_SOURCES__{name.upper()}__"
        env |= {
            f"{key}ENABLED": "true",
            f"{key}INTERVAL": interval,
            f"{key}RETRIES": "0",
            f"{key}BACKFILL": "false",
        }
        if name != "http_json":
            env[f"{key}BASE_URL"] = src.base_url
    env["STABLEWATCH_SOURCES__SOSOVALUE__API_KEY"] = "bench"
    env["STABLEWATCH_SOURCES__COINGLASS__API_KEY"] = "bench"
    endpoints = [
        {"name": "llama", "url": src.url("/stablecoins"), "series": {"soak.usdt": USDT}},
        {"name": "level", "url": src.url("/level"), "series": {"soak.level": "level"}},
    ]
    env["STABLEWATCH_SOURCES__HTTP_JSON__ENDPOINTS"] = json.dumps(endpoints)
    return env


class Feeds:
    """Fresh points every `every` seconds: Fear & Greed (30-70, no shipped rule fires) and
    `soak.level` through http_json, the seconds since the feed started (what the rule reads)."""

    def __init__(self, src: FaultySource, every: float = 1.0) -> None:
        self.src, self.every, self.n = src, every, 0
        self.started = time.monotonic()

    def level(self) -> int:
        return int(time.monotonic() - self.started)

    def publish(self) -> None:
        self.n += 1
        stamp = int(time.time()) - 1
        item = {"value": str(30 + self.n // 5 % 41), "value_classification": "Neutral"}
        body = {"name": "Fear and Greed Index", "data": [item | {"timestamp": str(stamp)}]}
        self.src.route("GET", "/fng/", body=body | {"metadata": {"error": None}})
        self.src.route("GET", "/level", body={"level": self.level()})

    async def run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(self.every)


def write_rule(rules: Path, cycle: int, level: int) -> None:
    """Even cycles: a bound never reached; odd ones: reached by the next level point (a
    change at the newest point, so it is delivered; a bound already passed would fire on
    history, silently)."""
    bound = level + 3 if cycle % 2 else 10**9
    (rules / "soak.yaml").write_text(SOAK_RULE.format(bound=bound, cycle=cycle))


def proc_sample(pid: int) -> tuple[int, int]:
    """Resident set size in KiB and open file descriptors of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return (int(match[1]) if match else -1), len(os.listdir(f"/proc/{pid}/fd"))


def plain_metrics(text: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text page."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
            with contextlib.suppress(ValueError):
                out[parts[0]] = float(parts[1])
    return out


class Sampler:
    """Every `SAMPLE_EVERY` seconds: RSS, fds, messages received and /metrics if served."""

    def __init__(self, bot: Replica, tg: FakeTelegram, started: float) -> None:
        self.bot, self.tg, self.started = bot, tg, started
        self.samples: list[dict[str, Any]] = []
        self.metrics: list[dict[str, float]] = []

    def metrics_url(self) -> str | None:
        found = (SERVING.search(line) for line in self.bot.lines)
        return next((f"{m[1]}/metrics" for m in found if m), None)

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                await self.take(http)
                await asyncio.sleep(SAMPLE_EVERY)

    async def take(self, http: aiohttp.ClientSession) -> None:
        assert self.bot.proc is not None
        if self.bot.proc.returncode is not None:
            return
        rss, fds = proc_sample(self.bot.proc.pid)
        at = round(time.perf_counter() - self.started, 1)
        self.samples.append({"t": at, "rss_kb": rss, "fds": fds, "sent": len(self.tg.sent())})
        if url := self.metrics_url():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as answer:
                    self.metrics.append({"t": at, **plain_metrics(await answer.text())})


async def restart_postgres() -> dict[str, Any]:
    """Restart the local cluster; its wall time and exit code."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "pg_ctlcluster",
        "--skip-systemctl-redirect",
        version,
        "main",
        "restart",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return {
        "exit_code": proc.returncode,
        "seconds": round(time.perf_counter() - started, 2),
        "output": out.decode(errors="replace").strip()[-300:],
    }


async def subscribe(url: str, chats: Iterable[int]) -> None:
    now = datetime.now(UTC)
    async with open_store(url) as store:
        for chat in chats:
            await store.subscribe(chat, ChatKind.PRIVATE, f"user {chat}", now)


async def outbox_rows(url: str) -> list[Any]:
    o = db.outbox
    query = select(
        o.c.chat_id,
        o.c.kind,
        o.c.text,
        o.c.status,
        o.c.rule_id,
        o.c.claimed_by,
        o.c.not_before,
        o.c.attempts,
        o.c.error,
    )
    async with open_store(url) as store, engine_of(store).connect() as conn:
        return list((await conn.execute(query)).all())


async def pending(url: str) -> int:
    rows = await outbox_rows(url)
    return sum(1 for row in rows if row.status == "pending")


def account(rows: list[Any], sent: list[Sent], end: float) -> dict[str, Any]:
    """Match the rows marked sent with the messages (sends and edits) each chat received.

    Per chat and text: rows sent with that text against messages holding it (rows of one chat
    claimed together arrive merged into one message, so texts are found as parts); fewer
    messages are lost rows, more are duplicates.
    """
    received: dict[str, list[str]] = defaultdict(list)
    for item in sent:
        received[str(item.chat_id)].append(item.text)
    owed = Counter((row.chat_id, row.text) for row in rows if row.status == "sent")
    lost = duplicated = 0
    examples: list[dict[str, Any]] = []
    for (chat, text), n_rows in owed.items():
        n = sum(message.count(text) for message in received[chat])
        lost += max(0, n_rows - n)
        duplicated += max(0, n - n_rows)
        if n != n_rows and len(examples) < 5:
            examples.append({"chat": chat, "text": text, "rows": n_rows, "messages": n})
    waiting = [row for row in rows if row.status == "pending"]
    return {
        "outbox_rows": dict(Counter(row.status for row in rows)),
        "outbox_rows_by_kind": dict(Counter(row.kind for row in rows if row.status == "sent")),
        "outbox_rows_by_rule": {
            f"{rule} {status}": n
            for (rule, status), n in sorted(Counter((r.rule_id, r.status) for r in rows).items())
        },
        "pending_still_claimed": sum(1 for row in waiting if row.claimed_by is not None),
        "pending_due_in_seconds": sorted({round(row.not_before - end) for row in waiting})[:10],
        "pending_attempts": dict(Counter(row.attempts for row in waiting)),
        "pending_errors": dict(Counter(row.error[:120] for row in waiting).most_common(3)),
        "messages_received": len(sent),
        "messages_received_by_method": dict(Counter(item.method for item in sent)),
        "lost": lost,
        "duplicated": duplicated,
        "examples": examples,
    }


def log_report(bot: Replica) -> dict[str, Any]:
    """What the bot's log says about the outage, leadership, sources and errors."""
    levels = Counter(m[1] for line in bot.lines if (m := re.search(r" (ERROR|WARNING) ", line)))
    errors = Counter(
        re.sub(r"\d+", "N", line.split(": ", 1)[-1])[:160]
        for line in bot.lines
        if " ERROR " in line
    )
    return {
        "store_unreachable_lines": bot.count(UNREACHABLE),
        "store_reachable_again_lines": bot.count(REACHABLE),
        "leads_lines": bot.count(LEADS),
        "stood_down_lines": bot.count("leader: standing by:"),
        "source_failing_lines": bot.count("is failing:"),
        "source_recovered_lines": bot.count("recovered after"),
        "rules_reloaded_lines": bot.count("rules reloaded"),
        "tracebacks": bot.count("Traceback"),
        "lines_by_level": dict(levels),
        "top_error_lines": dict(errors.most_common(8)),
    }


def memory_report(samples: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    warm = min(samples, key=lambda s: abs(s["t"] - 0.2 * seconds))
    last = samples[-1]
    growth = (last["rss_kb"] - warm["rss_kb"]) / warm["rss_kb"] * 100
    return {
        "rss_warm_mb": round(warm["rss_kb"] / 1024, 1),
        "rss_warm_at_seconds": warm["t"],
        "rss_end_mb": round(last["rss_kb"] / 1024, 1),
        "rss_growth_pct": round(growth, 1),
        "rss_max_mb": round(max(s["rss_kb"] for s in samples) / 1024, 1),
        "fds_first": samples[0]["fds"],
        "fds_warm": warm["fds"],
        "fds_last": last["fds"],
        "fds_max": max(s["fds"] for s in samples),
    }


async def drive(
    bot: Replica, feeds: Feeds, rules: Path, seconds: float, reload_every: float, restart: bool
) -> dict[str, Any]:
    """Rewrite the rule every `reload_every` and restart PostgreSQL half-way, for `seconds`."""
    started = time.perf_counter()
    cycle, outage = 0, None
    while (elapsed := time.perf_counter() - started) < seconds:
        if restart and outage is None and elapsed >= seconds / 2:
            outage = await restart_postgres()
            outage["at_seconds"] = round(elapsed, 1)
            continue
        due = (cycle + 1) * reload_every
        if elapsed >= due:
            cycle += 1
            write_rule(rules, cycle, feeds.level())
        assert bot.proc is not None
        if bot.proc.returncode is not None:
            break
        await asyncio.sleep(0.5)
    return {"rule_rewrites": cycle, "postgres_restart": outage}


async def settle(url: str, tg: FakeTelegram, timeout: float) -> float:
    """Wait until no outbox row is pending and the fake got nothing new for 10 s, or for 60 s
    whatever is pending (rows stuck in a claim)."""
    started = time.perf_counter()
    last_count, last_change = -1, time.perf_counter()
    while time.perf_counter() - started < timeout:
        count = len(tg.sent())
        if count != last_count:
            last_count, last_change = count, time.perf_counter()
        with contextlib.suppress(Exception):  # the store may still be coming back
            quiet = time.perf_counter() - last_change
            if quiet > 60 or (quiet > 10 and await pending(url) == 0):
                break
        await asyncio.sleep(2)
    return round(time.perf_counter() - started, 1)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60
    async with (
        postgres_database() as url,
        FaultySource(error_rate=args.error_rate, seed=1) as src,
        FakeTelegram(token=TOKEN) as tg,
    ):
        route_sources(src)
        feeds = Feeds(src)
        feed = asyncio.create_task(feeds.run())
        tg.strict_window(args.limit)
        await subscribe(url, range(FIRST_CHAT, FIRST_CHAT + args.chats))
        with tempfile.TemporaryDirectory() as tmp:
            rules = Path(tmp) / "rules"
            rules.mkdir()
            for path in (ROOT / "rules").glob("*.yaml"):
                shutil.copy(path, rules)
            write_rule(rules, 0, 0)
            env = replica_env(
                url,
                STABLEWATCH_TELEGRAM__TOKEN=TOKEN,
                STABLEWATCH_TELEGRAM__API_URL=tg.api_url,
                STABLEWATCH_RULES__DIR=str(rules),
                STABLEWATCH_DELIVERY__GROUPING_WINDOW="30s",
                STABLEWATCH_DELIVERY__STORM_LIMIT="1000",
                **sources_env(src),
            )
            bot = await Replica("soak", env, Path(tmp)).start()
            try:
                await bot.wait_for(LEADS, timeout=60)
                sampler = Sampler(bot, tg, time.perf_counter())
                sampling = asyncio.create_task(sampler.run())
                driven = await drive(
                    bot, feeds, rules, seconds, args.reload_every, not args.no_restart
                )
                assert bot.proc is not None
                survived = bot.proc.returncode is None
                sampling.cancel()
                async with aiohttp.ClientSession() as http:
                    await sampler.take(http)  # the end of the run
                settled = await settle(url, tg, timeout=240)
                before_stop = await outbox_rows(url)  # the stop hands this worker's claims back
            finally:
                code = await bot.stop(timeout=60)
                feed.cancel()
        rows = await outbox_rows(url)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.log").write_text(bot.log + "\n")
    polls = Counter(request.path for request in src.requests)
    return {
        **driven,
        "survived": survived,
        "exit_code_after_sigterm": code,
        "settle_seconds": settled,
        "pending_claimed_before_stop": sum(
            1 for row in before_stop if row.status == "pending" and row.claimed_by is not None
        ),
        "memory": memory_report(sampler.samples, seconds),
        "delivery": account(rows, tg.sent(), time.time()),
        "http_409": tg.conflicts,
        "http_429": tg.throttled,
        "source_requests": dict(polls),
        "source_requests_total": sum(polls.values()) + src.errors,
        "source_injected_500s": src.errors,
        "log": log_report(bot),
        "samples": sampler.samples,
        "metrics": (sampler.metrics[:1] + sampler.metrics[-1:]) if sampler.metrics else None,
    }


def summary(r: dict[str, Any]) -> str:
    m, d, lg = r["memory"], r["delivery"], r["log"]
    pg = r["postgres_restart"] or {}
    return "\n".join(
        [
            f"soak: {r['minutes']} min, {r['chats']} chats, {r['source_requests_total']} source "
            f"requests ({r['source_injected_500s']} injected 500s), {r['rule_rewrites']} rule "
            f"rewrites, PostgreSQL restarted at {pg.get('at_seconds')} s",
            f"  RSS {m['rss_warm_mb']} MiB at warm-up end -> {m['rss_end_mb']} MiB "
            f"({m['rss_growth_pct']:+} %), max {m['rss_max_mb']}; fds {m['fds_first']} -> "
            f"{m['fds_last']} (max {m['fds_max']}); asyncio tasks: not visible",
            f"  delivery: {d['messages_received']} messages, rows {d['outbox_rows']}; "
            f"lost {d['lost']}, duplicated {d['duplicated']}; 409 {r['http_409']}, "
            f"429 {r['http_429']}",
            f"  survived the restart: {r['survived']} (exit {r['exit_code_after_sigterm']}); "
            f"'{UNREACHABLE}' x{lg['store_unreachable_lines']}, "
            f"'{REACHABLE}' x{lg['store_reachable_again_lines']}, leads x{lg['leads_lines']}, "
            f"tracebacks {lg['tracebacks']}",
        ]
    )


def main() -> None:
    """Run the benchmark and write bench/results/soak.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", default=quick_default())
    parser.add_argument("--minutes", type=float, help="default 20, quick 2")
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--error-rate", type=float, default=0.05, help="share of source 500s")
    parser.add_argument("--reload-every", type=float, help="seconds (default 60, quick 40)")
    parser.add_argument("--limit", type=int, default=30, help="the fake's sends a second")
    parser.add_argument("--no-restart", action="store_true", help="leave PostgreSQL alone")
    args = parser.parse_args()
    args.minutes = args.minutes or (2.0 if args.quick else 20.0)
    args.reload_every = args.reload_every or (40.0 if args.quick else 60.0)
    measured = asyncio.run(soak(args))
    result: dict[str, Any] = {
        "benchmark": "soak",
        "quick": args.quick,
        "minutes": args.minutes,
        "chats": args.chats,
        "source_error_rate": args.error_rate,
        "source_intervals": INTERVALS,
        "source_retries": 0,
        "reload_every_seconds": args.reload_every,
        "replicas": 1,
        "asyncio_tasks": "not visible from outside the process (no endpoint exposes it)",
        **measured,
        "goal": {
            "rss_growth_pct": "< 10",
            "lost": 0,
            "duplicated": 0,
            "store_unreachable_lines": 1,
            "store_reachable_again_lines": 1,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
