"""The real `stablewatch` process: SIGTERM exits 0, a wrong token exits 2 with one line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.harness.env import only_fear_greed_env
from tests.harness.fake_source import FakeSource
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.files import ROOT, SHARED_DATA, fixture_json

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("stablewatch"))


def env_for(tmp_path: Path, src: FakeSource, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STABLEWATCH_")}
    return (
        base
        | {
            "STABLEWATCH_STORE__URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'sw.db'}",
            "STABLEWATCH_RULES__DIR": str(ROOT / "rules"),
            "STABLEWATCH_SOURCES__FEAR_GREED__BASE_URL": src.base_url,
            "STABLEWATCH_HTTP__PORT": "0",
        }
        | extra
    )


async def test_sigterm_after_first_poll_exits_zero(tmp_path: Path) -> None:
    async with FakeSource() as src:
        src.route("GET", "/fng/", body=fixture_json("fear_greed", "history_2025-10.json"))
        proc = await asyncio.create_subprocess_exec(
            EXE,
            "run",
            cwd=tmp_path,
            env=env_for(tmp_path, src),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        lines: list[bytes] = []
        async with asyncio.timeout(20):
            while not any(b"first poll" in line for line in lines):
                line = await proc.stderr.readline()
                assert line, b"".join(lines).decode()
                lines.append(line)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await proc.communicate()
            code = await proc.wait()
    assert code == 0
    log = b"".join(lines).decode()
    assert "no telegram.token set: alerts and digests go to the console" in log
    assert "Traceback" not in log


async def test_wrong_token_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    async with FakeSource() as src, FakeTelegram(token="123:RIGHT") as tg:
        env = env_for(
            tmp_path,
            src,
            STABLEWATCH_TELEGRAM__TOKEN="123:WRONG",
            STABLEWATCH_TELEGRAM__API_URL=tg.api_url,
        )
        proc = await asyncio.create_subprocess_exec(
            EXE,
            "run",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(20):
            _, err = await proc.communicate()
    assert proc.returncode == 2
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith("stablewatch: telegram.token")
    assert "WRONG" not in err.decode()
    assert "Traceback" not in err.decode()


@pytest.fixture
def cli_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STABLEWATCH_STORE__URL", f"sqlite+aiosqlite:///{clean_env / 'sw.db'}")
    monkeypatch.setenv("STABLEWATCH_RULES__DIR", str(ROOT / "rules"))
    for key, value in only_fear_greed_env().items():
        monkeypatch.setenv(key, value)
    return clean_env


async def run_cli(*args: str) -> int:
    """Run the synchronous CLI in a thread, so the fake server keeps serving on this loop."""
    return await asyncio.to_thread(main, list(args))


async def test_fetch_json_prints_one_object_per_line(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeSource() as src:
        src.route("GET", "/fng/", body=fixture_json("fear_greed", "latest.json"))
        monkeypatch.setenv("STABLEWATCH_SOURCES__FEAR_GREED__BASE_URL", src.base_url)
        assert await run_cli("fetch", "fear_greed", "--json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    shared = (SHARED_DATA / "fear_greed_2025-10.csv").read_text().splitlines()[-2:]
    assert lines == [
        {"series": "fear_greed", "ts": f"{ts}T00:00:00+00:00", "value": float(value)}
        for _, ts, value in (row.split(",") for row in shared)
    ]


async def test_fetch_failure_exits_1_and_says_why(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeSource() as src:
        src.route("GET", "/fng/", body="<html>denied</html>", status=403, content_type="text/html")
        monkeypatch.setenv("STABLEWATCH_SOURCES__FEAR_GREED__BASE_URL", src.base_url)
        assert await run_cli("fetch", "fear_greed") == 1
    assert "fetch fear_greed failed: HTTP 403" in capsys.readouterr().err


async def test_backfill_then_status(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeSource() as src:
        src.route("GET", "/fng/", body=fixture_json("fear_greed", "history_2025-10.json"))
        monkeypatch.setenv("STABLEWATCH_SOURCES__FEAR_GREED__BASE_URL", src.base_url)
        assert await run_cli("backfill", "--since", "2025-10-15") == 0
        assert src.requests_to("/fng/")[0].query["limit"] == "0"
    assert "fear_greed: 17 point(s) stored" in capsys.readouterr().out
    assert await run_cli("status") == 0
    out = capsys.readouterr().out
    assert "extreme-fear" in out and "inactive" in out


@pytest.mark.parametrize(
    "name",
    ["fear_greed", "farside", "sosovalue", "coinglass", "binance", "bybit", "okx", "hyperliquid"],
)
async def test_fetch_json_works_for_every_source(
    name: str, cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.harness.recorded import route_everything

    async with FakeSource() as src:
        route_everything(src)
        monkeypatch.setenv(f"STABLEWATCH_SOURCES__{name.upper()}__BASE_URL", src.base_url)
        monkeypatch.setenv(f"STABLEWATCH_SOURCES__{name.upper()}__API_KEY", "test-key")
        assert await run_cli("fetch", name, "--json") == 0
        assert src.requests, "the source asked the fake server"
    for line in capsys.readouterr().out.splitlines():
        point = json.loads(line)
        assert set(point) == {"series", "ts", "value"}
        assert isinstance(point["value"], float)
