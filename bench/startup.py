"""Start-up and idle-memory benchmark: spawn `stablewatch run` against a local fake source.

Measures the wall time from process spawn to the first completed poll, the resident memory after
an idle period, and the time SIGTERM takes to a clean exit. Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.env import only_fear_greed_env
from tests.harness.fake_source import FakeSource
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.files import fixture_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


async def measure(idle: float, telegram: bool) -> dict[str, object]:
    """Run the bot once (console or Telegram mode) and collect the numbers."""
    async with FakeSource() as src, FakeTelegram(token="123:BENCH") as tg:
        src.route("GET", "/fng/", body=fixture_json("fear_greed", "history_2025-10.json"))
        with tempfile.TemporaryDirectory() as tmp:
            env = (
                {k: v for k, v in os.environ.items() if not k.startswith("STABLEWATCH_")}
                | {
                    "STABLEWATCH_STORE__URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
                    "STABLEWATCH_HTTP__PORT": "0",
                    "STABLEWATCH_RULES__DIR": str(ROOT / "rules"),
                    "STABLEWATCH_SOURCES__FEAR_GREED__BASE_URL": src.base_url,
                }
                | only_fear_greed_env()
            )
            if telegram:
                env |= {
                    "STABLEWATCH_TELEGRAM__TOKEN": tg.token,
                    "STABLEWATCH_TELEGRAM__API_URL": tg.api_url,
                }
            exe = Path(sys.executable).with_name("stablewatch")
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                str(exe),
                "run",
                cwd=tmp,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stderr is not None
            first_poll = None
            while line := await asyncio.wait_for(proc.stderr.readline(), 30):
                if b"first poll" in line:
                    first_poll = time.perf_counter() - started
                    break
            drain = asyncio.ensure_future(proc.stderr.read())
            await asyncio.sleep(idle)
            rss = rss_mb(proc.pid)
            stop_at = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
            stopped = time.perf_counter() - stop_at
            await drain
    return {
        "benchmark": "startup",
        "mode": "telegram" if telegram else "console",
        "first_poll_seconds": round(first_poll, 3) if first_poll else None,
        "idle_seconds": idle,
        "rss_after_idle_mb": round(rss, 1),
        "sigterm_to_exit_seconds": round(stopped, 3),
        "exit_code": code,
        "goal": {"first_poll_seconds": 2.0, "rss_after_idle_mb": 120},
    }


def main() -> None:
    """Run the benchmark and write bench/results/startup.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds idle before RSS")
    args = parser.parse_args()
    result = [asyncio.run(measure(args.idle, telegram)) for telegram in (False, True)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
