"""Real `stablewatch run` processes for the high-availability tests: start, watch the log, kill."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from bot.model import ChatKind, Delivery, Transition, TransitionKind
from bot.store import Store
from tests.harness.env import only_fear_greed_env
from tests.harness.files import ROOT

EXE = str(Path(sys.executable).with_name("stablewatch"))
LEADS = "leader: this replica leads now"
STANDS_BY = "standing by for the leader lease"


def replica_env(store_url: str, **extra: str) -> dict[str, str]:
    """A replica's environment: the shared store, the repo's rules, only fear_greed enabled."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("STABLEWATCH_")}
    return (
        base
        | only_fear_greed_env()
        | {
            "STABLEWATCH_STORE__URL": store_url,
            "STABLEWATCH_RULES__DIR": str(ROOT / "rules"),
            "STABLEWATCH_HTTP__PORT": "0",
        }
        | extra
    )


class Replica:
    """One bot process; its stderr is collected line by line so tests can wait for a line."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path) -> None:
        self.name, self.env, self.cwd = name, env, cwd
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> Replica:
        self.proc = await asyncio.create_subprocess_exec(
            EXE,
            "run",
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip())
            self._changed.set()
        self._changed.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    @property
    def http(self) -> str:
        """The base URL of the replica's HTTP server, read from its start-up line."""
        for line in self.lines:
            found = re.search(r"http: serving on (http://[\d.]+:\d+)", line)
            if found:
                return found.group(1)
        raise AssertionError(f"{self.name} serves no HTTP:\n{self.log}")

    async def get(self, path: str) -> tuple[int, str]:
        """GET a path on the replica's HTTP server: (status, body)."""
        import aiohttp

        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(self.http + path) as response,
        ):
            return response.status, await response.text()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_for(self, text: str, *, times: int = 1, timeout: float = 30) -> None:
        """Wait until `text` has appeared `times` times in the log; fail with the log if not."""
        try:
            async with asyncio.timeout(timeout):
                while self.count(text) < times:
                    if self.proc is not None and self.proc.returncode is not None:
                        raise AssertionError(f"{self.name} exited:\n{self.log}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no {text!r} within {timeout}s:\n{self.log}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no lease handed back."""
        assert self.proc is not None
        self.proc.kill()

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            if self._reader is not None:
                await self._reader
        return code


async def enqueue_alert(store: Store, chats: list[int]) -> None:
    """Subscribe `chats` and queue one firing alert to each, as an evaluation would."""
    now = datetime.now(UTC)
    for chat in chats:
        await store.subscribe(chat, ChatKind.PRIVATE, f"user {chat}", now)
    alert = Transition("extreme-fear", TransitionKind.FIRING, now, 15.0, "Fear & Greed at 15")
    deliveries = [
        Delivery(0, str(chat), f"Fear &amp; Greed at 15 for {chat}", now) for chat in chats
    ]
    await store.record_evaluation([], [alert], deliveries, now)
