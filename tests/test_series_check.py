"""`stablewatch check` refuses a rule on a series nothing writes, with its position and a guess."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main


@pytest.fixture
def env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (clean_env / "var").mkdir()
    monkeypatch.setenv(
        "STABLEWATCH_STORE__URL", f"sqlite+aiosqlite:///{clean_env / 'var' / 'sw.db'}"
    )
    (clean_env / "rules").mkdir()
    return clean_env


def rule(series: str) -> str:
    return f"rules:\n  - id: r\n    condition: {{above: 1}}\n    series: {series}\n"


def test_a_typo_in_a_series_fails_with_its_position_and_the_closest_key(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = env / "rules" / "x.yaml"
    path.write_text(rule("funding.btc.oi_weigthed"))
    assert main(["check", "--rules", str(env / "rules")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"{path}:4:13: rule 'r': series: ")
    assert "'funding.btc.oi_weigthed'" in out[0]
    assert out[0].endswith("did you mean funding.btc.oi_weighted?")
    assert not (env / "var" / "sw.db").exists()  # checking never creates a database


def test_the_same_key_passes_when_a_source_writes_it(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "rules" / "x.yaml").write_text(rule("funding.btc.oi_weighted"))
    assert main(["check", "--rules", str(env / "rules")]) == 0
    assert "1 rule(s) ok" in capsys.readouterr().out


def test_a_series_of_a_disabled_source_fails(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STABLEWATCH_SOURCES__FEAR_GREED__ENABLED", "false")
    (env / "rules" / "x.yaml").write_text(rule("fear_greed"))
    assert main(["check", "--rules", str(env / "rules")]) == 1
    assert "no enabled source writes 'fear_greed'" in capsys.readouterr().out


def test_a_series_held_only_by_the_store_passes(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "rules" / "x.yaml").write_text(rule("macro.m2.us"))
    assert main(["check", "--rules", str(env / "rules")]) == 1
    assert "macro.m2.us" in capsys.readouterr().out
    data = env / "m2.csv"
    data.write_text("series,ts,value\nmacro.m2.us,2025-11-03,21.5\n")
    assert main(["import", str(data)]) == 0
    assert main(["check", "--rules", str(env / "rules")]) == 0
    assert "1 rule(s) ok" in capsys.readouterr().out


def test_a_store_that_cannot_be_opened_skips_only_the_store_part(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "var" / "sw.db").write_text("not a database")
    (env / "rules" / "x.yaml").write_text(rule("funding.btc.oi_weigthed"))
    assert main(["check", "--rules", str(env / "rules")]) == 1
    captured = capsys.readouterr()
    assert "did you mean funding.btc.oi_weighted?" in captured.out
    assert "store not read" in captured.err
