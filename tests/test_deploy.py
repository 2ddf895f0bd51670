"""Deployment files, checked without a Docker engine: what they reference must exist."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import yaml
from aiohttp import web

from bot.config import HttpSettings
from tests.harness.files import ROOT


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def dockerfile() -> list[tuple[str, str]]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    return [
        (m[1].upper(), m[2].strip())
        for ln in lines
        if (m := re.match(r"\s*([A-Za-z]+)\s+(.*)", ln)) and not ln.lstrip().startswith("#")
    ]


def test_bot_service_reads_env_file_mounts_editable_dirs_and_restarts() -> None:
    bot = compose()["services"]["bot"]
    assert bot["env_file"] == ".env"
    assert bot["restart"] in {"always", "unless-stopped", "on-failure"}
    assert (ROOT / bot["build"] / "Dockerfile").is_file()
    mounts = {v.split(":")[1]: v.split(":")[0] for v in bot["volumes"]}
    assert mounts["/app/rules"] == "./rules" and (ROOT / "rules").is_dir()
    assert mounts["/app/settings"] == "./settings" and (ROOT / "settings").is_dir()
    assert mounts["/app/var"] in compose()["volumes"]


def test_postgres_profile_has_a_healthcheck_and_the_bot_waits_for_it() -> None:
    services = compose()["services"]
    pg = services["postgres"]
    assert pg["profiles"] == ["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert services["bot-ha"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = pg["environment"]
    example = (ROOT / "settings" / "example.env").read_text()
    url = f"postgresql+asyncpg://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"
    assert url in example
    assert url in (ROOT / "docker-compose.yml").read_text()
    for volume in pg["volumes"]:
        assert volume.split(":")[0] in compose()["volumes"]


def test_dockerfile_is_slim_non_root_with_var_volume_and_run_command() -> None:
    steps = dockerfile()
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", dict(steps)["FROM"])
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert any("/app/var" in arg for op, arg in steps if op == "VOLUME")
    assert dict(steps)["CMD"] == '["stablewatch", "run"]'
    for op, arg in steps:
        if op == "COPY":
            for src in arg.split()[:-1]:
                assert (ROOT / src).exists(), f"COPY source {src} is missing"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["stablewatch"] == "bot.cli:main"


def test_dockerignore_keeps_secrets_and_state_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", "var", ".venv", ".git"} <= ignored


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The image's HEALTHCHECK: its options and its exec-form command."""
    checks = [arg for op, arg in dockerfile() if op == "HEALTHCHECK"]
    assert checks, "the Dockerfile has no HEALTHCHECK"
    options, _, command = checks[-1].partition(" CMD ")  # only the last one counts
    flags = dict(re.findall(r"--([a-z-]+)=(\S+)", options))
    return flags, json.loads(command)


def seconds(duration: str) -> float:
    """A Docker duration such as 30s or 1m30s, in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|s|m|h)", duration))


def bot_services() -> dict[str, dict]:  # type: ignore[type-arg]
    """The services that run the Stablewatch image."""
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if svc.get("image") == "stablewatch:latest" or "build" in svc
    }


def test_image_health_check_is_python_urllib_on_healthz_with_a_timeout() -> None:
    flags, command = healthcheck()
    assert command[:2] == ["python", "-c"] and len(command) == 3, "exec form, no shell, no curl"
    code = command[2]
    assert "urllib.request.urlopen(" in code and "/healthz" in code and "/readyz" not in code
    assert "127.0.0.1" in code
    timeout = re.search(r"timeout=(\d+(?:\.\d+)?)", code)
    assert timeout, "urlopen without a timeout hangs until Docker kills it"
    assert 0 < float(timeout[1]) < seconds(flags["timeout"]) <= seconds(flags["interval"])
    assert seconds(flags["start-period"]) >= 10 and 1 <= int(flags["retries"]) <= 5


def test_image_listens_on_every_interface_on_the_exposed_port() -> None:
    steps = dockerfile()
    env = " ".join(arg for op, arg in steps if op == "ENV")
    assert "STABLEWATCH_HTTP__HOST=0.0.0.0" in env.split()
    exposed = {arg for op, arg in steps if op == "EXPOSE"}
    assert str(HttpSettings().port) in exposed
    assert "'9108'" in healthcheck()[1][2], "the check's default port is the server's"


def test_every_bot_service_has_the_liveness_check_and_no_container_name() -> None:
    _, command = healthcheck()
    services = bot_services()
    assert {"bot", "bot-ha"} <= set(services)
    for name, svc in services.items():
        check = svc["healthcheck"]
        assert check["test"] == ["CMD", *command], f"{name}: liveness on /healthz, as the image"
        assert {"interval", "timeout", "retries", "start_period"} <= set(check)
        assert "container_name" not in svc, f"{name}: container_name forbids a second replica"


def test_postgres_profile_runs_two_replicas_on_postgresql_without_port_clashes() -> None:
    ha = {n: s for n, s in bot_services().items() if "postgres" in s.get("profiles", [])}
    replicas = sum(int(s.get("deploy", {}).get("replicas", 1)) for s in ha.values())
    assert replicas >= 2
    published: list[str] = []
    for name, svc in ha.items():
        url = svc["environment"]["STABLEWATCH_STORE__URL"]
        assert url.startswith("postgresql+asyncpg://"), f"{name}: replicas cannot share SQLite"
        assert "/app/var" not in " ".join(svc.get("volumes", []))
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        for port in svc.get("ports", []):
            spec = port if isinstance(port, str) else str(port.get("published", ""))
            host = spec.rsplit(":", 1)[0] if ":" in spec else ""
            assert not host or int(svc.get("deploy", {}).get("replicas", 1)) == 1, (
                f"{name}: a fixed host port {spec} collides between replicas"
            )
            published.append(host)
    assert len(published) == len(set(published))
    default = [n for n, s in bot_services().items() if not s.get("profiles")]
    assert default == ["bot"] and "replicas" not in compose()["services"]["bot"].get("deploy", {})
    assert "sqlite" in compose()["services"]["bot"]["environment"]["STABLEWATCH_STORE__URL"]


@asynccontextmanager
async def serving(status: int | None) -> AsyncIterator[int]:
    """A loopback server answering /healthz with `status` (None: accept, never answer)."""

    async def health(_: web.Request) -> web.Response:
        if status is None:
            await asyncio.sleep(60)
        return web.Response(status=status or 200, text="ok" if status == 200 else "down")

    app = web.Application()
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_healthcheck(port: int) -> int:
    """Run the Dockerfile's exact health-check command against a port; its exit code."""
    _, command = healthcheck()
    env = {**os.environ, "STABLEWATCH_HTTP__PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *command[1:],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (500, False)])
async def test_health_check_command_follows_the_status_of_healthz(
    status: int, healthy: bool
) -> None:
    async with serving(status) as port:
        code = await run_healthcheck(port)
    assert (code == 0) is healthy


async def test_health_check_command_fails_when_nothing_listens() -> None:
    assert await run_healthcheck(free_port()) != 0


@pytest.mark.slow
async def test_health_check_command_gives_up_on_a_server_that_never_answers() -> None:
    async with serving(None) as port:
        code = await run_healthcheck(port)  # within urlopen's timeout, long before wait_for's
    assert code != 0
