"""The tree keeps the shape docs/architecture.md describes (import-linter checks the arrows)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.harness.files import ROOT

MAX_LINES = 500
BOT = ROOT / "bot"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return [[m.strip() for m in layer.split("|")] for layer in contract["layers"]]


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    for index, layer in enumerate(layers):
        if any(module == m or module.startswith(m + ".") for m in layer):
            return index
    return None


def test_no_file_in_bot_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in BOT.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_module_of_bot_is_in_a_layer() -> None:
    layers = _layers()
    modules = {_module(p) for p in BOT.rglob("*.py")} - {"bot"}
    assert {m for m in modules if _layer_of(m, layers) is None} == set()
