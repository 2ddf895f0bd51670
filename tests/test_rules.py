"""Rule files: the shipped rules load; broken files fail with file:line:col and the rule id."""

from __future__ import annotations

from pathlib import Path

from bot.engine.loader import load_rules
from bot.engine.rules import AtMost
from tests.harness.files import ROOT


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_shipped_rules_load_without_issues() -> None:
    ruleset = load_rules(ROOT / "rules")
    assert ruleset.issues == ()
    ids = {rule.id for rule in ruleset.rules}
    assert "extreme-fear" in ids
    rule = next(r for r in ruleset.series_rules() if r.id == "extreme-fear")
    assert rule.series == "fear_greed"
    assert rule.condition == AtMost(at_most=20)
    assert rule.recover is not None
    assert (rule.recover.op, rule.recover.level) == ("above", 25)


def test_wrong_type_points_at_the_value(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "rules:\n  - id: fear\n    series: fear_greed\n    condition: {at_most: lots}\n",
    )
    issues = load_rules(tmp_path).issues
    assert len(issues) == 1
    text = str(issues[0])
    assert text.startswith(f"{tmp_path / 'a.yaml'}:4:")
    assert "rule 'fear'" in text
    assert "condition.at_most" in text
    assert "lots" in text


def test_unknown_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "rules:\n  - id: fear\n    series: fear_greed\n    condition: {below: 20}\n    sevrity: info\n",
    )
    (issue,) = load_rules(tmp_path).issues
    assert issue.line == 5
    assert "sevrity: unknown field" in issue.message


def test_condition_needs_exactly_one_bound(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "rules:\n  - id: fear\n    series: fear_greed\n    condition: {below: 20, above: 80}\n",
    )
    (issue,) = load_rules(tmp_path).issues
    assert "exactly one condition" in issue.message
    assert "found below, above" in issue.message


def test_bad_yaml_reports_position_and_keeps_other_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules: [\n")
    write(tmp_path, "b.yaml", "rules:\n  - id: ok\n    series: x\n    condition: {above: 1}\n")
    ruleset = load_rules(tmp_path)
    assert [r.id for r in ruleset.rules] == ["ok"]
    (issue,) = ruleset.issues
    assert issue.file.name == "a.yaml"
    assert "not valid YAML" in issue.message


def test_duplicate_ids_across_files_are_reported(tmp_path: Path) -> None:
    body = "rules:\n  - id: same\n    series: x\n    condition: {above: 1}\n"
    write(tmp_path, "a.yaml", body)
    write(tmp_path, "b.yaml", body)
    ruleset = load_rules(tmp_path)
    assert len(ruleset.rules) == 1
    assert "already used" in ruleset.issues[0].message


def test_id_must_be_kebab_case(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "rules:\n  - id: Extreme_Fear\n    series: x\n    condition: {above: 1}\n",
    )
    (issue,) = load_rules(tmp_path).issues
    assert "kebab-case" in issue.message
    assert issue.line == 2


def test_series_must_be_a_series_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "rules:\n  - id: flows\n    series: ETF.btc..flow\n    condition: {above: 1}\n",
    )
    (issue,) = load_rules(tmp_path).issues
    assert issue.message == (
        "rule 'flows': series: expected a series key like etf.btc.net_flow, found 'ETF.btc..flow'"
    )
    assert issue.line == 3


def test_fingerprint_ignores_message_but_not_condition(tmp_path: Path) -> None:
    base = "rules:\n  - id: f\n    series: x\n    condition: {above: 1}\n    message: {msg}\n"
    write(tmp_path, "a.yaml", base.replace("{msg}", "one"))
    first = load_rules(tmp_path).rules[0].fingerprint
    write(tmp_path, "a.yaml", base.replace("{msg}", "two"))
    assert load_rules(tmp_path).rules[0].fingerprint == first
    write(tmp_path, "a.yaml", base.replace("{msg}", "two").replace("above: 1", "above: 2"))
    assert load_rules(tmp_path).rules[0].fingerprint != first


def test_composite_problems_point_at_the_composite(tmp_path: Path) -> None:
    write(
        tmp_path,
        "c.yaml",
        "rules:\n  - id: base\n    series: x\n    condition: {above: 1}\n"
        "  - id: loop-a\n    all: [loop-b]\n  - id: loop-b\n    all: [loop-a, ghost]\n",
    )
    issues = {i.message: (i.line, i.col) for i in load_rules(tmp_path).issues}
    assert issues["rule 'loop-b': member 'ghost' does not exist"] == (7, 5)
    cycle = next(m for m in issues if "cycle" in m)
    assert issues[cycle][0] in {5, 7}
