"""Rule-file errors name the field and what it expects, without pydantic's union noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine.loader import load_text

HINT = "durations need a unit"


def messages(body: str) -> list[str]:
    """Load one series rule with `body` appended; it must fail; return its issue lines."""
    text = "rules:\n  - id: a\n    series: etf.btc.net_flow\n" + body
    rules, issues = load_text(Path("x.yaml"), text)
    assert rules == []
    return [str(issue) for issue in issues]


def test_a_misspelt_condition_names_the_field_and_the_choices() -> None:
    (line,) = messages("    condition: {bellow: 0}\n")
    assert line.startswith("x.yaml:4:16: rule 'a': condition: expected exactly one condition")
    assert line.endswith("found bellow")


def test_a_bad_condition_value_names_the_nested_field_plainly() -> None:
    (line,) = messages("    condition: {above: x}\n")
    assert line == "x.yaml:4:24: rule 'a': condition.above: expected a number, found 'x'"


def test_a_bad_transform_names_its_position_and_the_choices() -> None:
    (line,) = messages("    condition: {above: 1}\n    transform: [abs, {roll: 3}]\n")
    assert "transform.1: expected one of resample, rolling" in line
    assert line.endswith("found roll")


@pytest.mark.parametrize("value", ["0", "2.5", "-1"])
def test_a_bad_window_is_one_issue_naming_both_forms(value: str) -> None:
    (line,) = messages(f"    condition: {{change: {{window: {value}, by: 5%}}}}\n")
    assert line.endswith(
        "condition.change.window: expected a number of points from 1 to 1000000 "
        f"or a duration like 24h, found {value}"
    )
    assert HINT not in line


def test_a_bare_number_resample_bucket_gets_only_the_unit_hint() -> None:
    (line,) = messages("    condition: {above: 1}\n    transform: [{resample: {every: 3600}}]\n")
    assert "transform.0.resample.every: 3600 → did you mean" in line
    assert "'day'" not in line
