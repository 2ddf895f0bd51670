"""Deployment files, checked without a Docker engine: what they reference must exist."""

from __future__ import annotations

import re
import tomllib

import yaml

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
    assert services["bot"]["depends_on"]["postgres"]["condition"] == "service_healthy"
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
