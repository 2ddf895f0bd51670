"""The source registry: a source module not written yet is skipped, a missing dependency is not."""

from __future__ import annotations

from pathlib import Path

import pytest

import bot.sources
from bot.sources import registry


def test_every_listed_source_is_importable() -> None:
    assert set(registry()) == set(bot.sources._IMPLEMENTATIONS)


def test_a_source_module_that_does_not_exist_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    implementations = {**bot.sources._IMPLEMENTATIONS, "ghost": "bot.sources.ghost:GhostSource"}
    monkeypatch.setattr(bot.sources, "_IMPLEMENTATIONS", implementations)
    assert "ghost" not in registry()
    assert "fear_greed" in registry()


def test_a_missing_dependency_of_a_source_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needy_source.py").write_text("import stablewatch_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(bot.sources, "_IMPLEMENTATIONS", {"needy": "needy_source:NeedySource"})
    with pytest.raises(ModuleNotFoundError, match=r"source 'needy' \(needy_source\)") as caught:
        registry()
    assert caught.value.name == "stablewatch_absent_dependency"
    assert "stablewatch_absent_dependency" in str(caught.value)
