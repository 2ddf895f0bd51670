"""Durations need a unit: a bare number in a rule file or a setting is an error with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings

HINT = "durations need a unit: 30s 5m 8h 1d 2w"


def check(store_env: Path, body: str, capsys: pytest.CaptureFixture[str]) -> tuple[Path, list[str]]:
    """Run `stablewatch check` on one rule file; it must fail; return the file and its lines."""
    rules = store_env / "r"
    rules.mkdir()
    path = rules / "x.yaml"
    path.write_text("rules:\n  - id: a\n    series: etf.btc.net_flow\n" + body)
    assert main(["check", "--rules", str(rules)]) == 1
    return path, capsys.readouterr().out.splitlines()


def test_unitless_for_is_an_error_at_the_field_with_a_hint(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = check(store_env, "    condition: {below: 0}\n    for: 16\n", capsys)
    assert out[0] == f"{path}:5:10: rule 'a': for: 16 → did you mean 16h? {HINT}"


def test_repeat_yes_is_an_error_quoted_as_written(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = check(store_env, "    condition: {below: 0}\n    repeat: yes\n", capsys)
    assert out[0].startswith(f"{path}:5:13: rule 'a': repeat: yes ")
    assert out[0].endswith(HINT)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("    condition: {below: 0}\n    keep_firing_for: 2.5\n", "keep_firing_for: 2.5 → "),
        ("    condition: {below: 0}\n    no_data: {after: 2}\n", "no_data.after: 2 → "),
        ("    condition: {below: 0}\n    for: '16'\n", "for: 16 → "),
        ("    transform: [{resample: {every: 3600}}]\n    condition: {below: 0}\n", "every: 3600"),
    ],
)
def test_every_rule_duration_needs_a_unit(
    store_env: Path, capsys: pytest.CaptureFixture[str], body: str, where: str
) -> None:
    _, out = check(store_env, body, capsys)
    assert any(where in line and HINT in line for line in out), out


@pytest.mark.parametrize(
    ("toml", "key", "guess"),
    [
        ("[ha]\nlease = 15", "ha.lease", "15s"),
        ('[ha]\nlease = "15"', "ha.lease", "15s"),
        ("[sources.fear_greed]\ninterval = 2", "sources.fear_greed.interval", "2h"),
    ],
)
def test_a_setting_without_a_unit_is_refused_with_the_hint(
    clean_env: Path, toml: str, key: str, guess: str
) -> None:
    config = clean_env / "bad.toml"
    config.write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config, env_file=None)
    assert key in str(info.value)
    assert f"did you mean {guess}? {HINT}" in str(info.value)


def test_zero_grouping_window_may_be_bare_or_written_0s(clean_env: Path) -> None:
    for value in ("0", '"0s"'):
        config = clean_env / "zero.toml"
        config.write_text(f"[delivery]\ngrouping_window = {value}\n")
        assert load_settings(config, env_file=None).delivery.grouping_window.total_seconds() == 0
