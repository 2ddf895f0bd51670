"""Rule files: the shipped rules load; broken files fail with file:line:col and the rule id."""

from __future__ import annotations

from pathlib import Path

from bot.engine.loader import load_rules
from bot.engine.rules import AtMost
from bot.engine.variables import BY_KIND, COMMON, provided
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


# message templates checked at load -----------------------------------------------------------
CONDITIONS = {
    "above": "{above: 1}",
    "below": "{below: 1}",
    "at_least": "{at_least: 1}",
    "at_most": "{at_most: 1}",
    "between": "{between: [0, 1]}",
    "outside": "{outside: [0, 1]}",
    "crosses_above": "{crosses_above: 1}",
    "crosses_below": "{crosses_below: 1}",
    "turns": "{turns: positive}",
    "streak": "{streak: {below: 0, count: 2}}",
    "sign_changes": "{sign_changes: {min: 1, within: 3}}",
    "change": "{change: {window: 2, by: 1}}",
    "new_high": "{new_high: {within: 2}}",
    "new_low": "{new_low: {within: 2}}",
    "longest": "{longest: {below: 0, within: 4}}",
}


def test_every_condition_kind_has_its_message_variables_declared() -> None:
    from bot.engine.conditions import _KINDS

    assert set(BY_KIND) == set(_KINDS)


def test_declared_variables_are_what_a_real_transition_renders_with(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import numpy as np

    from bot.alerts.lifecycle import Change
    from bot.alerts.pipeline import variables
    from bot.engine.conditions import evaluate
    from bot.engine.series import Series
    from bot.model import TransitionKind

    body = "".join(
        f"  - {{id: r-{kind.replace('_', '-')}, series: x, condition: {text}}}\n"
        for kind, text in CONDITIONS.items()
    )
    write(tmp_path, "a.yaml", f"rules:\n{body}  - {{id: both, all: [r-above, r-below]}}\n")
    ruleset = load_rules(tmp_path)
    assert ruleset.issues == ()
    assert len(ruleset.series_rules()) == len(BY_KIND)
    series = Series.of(np.arange(6) * 86_400, [1.0, -1.0, -2.0, 3.0, -4.0, 5.0])
    change = Change(TransitionKind.FIRING, datetime(2025, 1, 1, tzinfo=UTC), 5.0, None, "", 5)
    for rule in ruleset.series_rules():
        ev = evaluate(rule.condition, series)
        assert set(variables(rule, change, ev)) == provided(rule), rule.id
    (composite,) = ruleset.composites()
    assert set(variables(composite, change, None)) == provided(composite) == COMMON


def test_a_misspelt_variable_is_an_issue_at_the_message_naming_what_the_rule_provides(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "a.yaml",
        "rules:\n  - id: s\n    series: x\n    condition: {streak: {below: 0, count: 3}}\n"
        "    message: 'fine {{ streak }}'\n    resolved_message: '{{ valeu | usd }}'\n",
    )
    ruleset = load_rules(tmp_path)
    assert ruleset.rules == ()
    (issue,) = ruleset.issues
    assert (issue.line, issue.col) == (6, 23)
    assert issue.message == (
        "rule 's': resolved_message: unknown variable 'valeu' (did you mean value?); "
        "this rule provides at, id, name, previous, reason, series, severity, state, streak, "
        "value, window_sum"
    )


def test_a_composite_offers_no_condition_variables(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "rules:\n  - id: a\n    series: x\n    condition: {above: 1}\n"
        "  - id: c\n    any: [a]\n    message: '{{ previous }}'\n",
    )
    (issue,) = load_rules(tmp_path).issues
    assert issue.line == 7
    assert "rule 'c': message: unknown variable 'previous'" in issue.message
    assert issue.message.endswith("provides at, id, name, reason, series, severity, state, value")


def test_an_unknown_filter_is_an_issue_even_inside_an_if(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "rules:\n  - id: a\n    series: x\n    condition: {above: 1}\n"
        "    message: '{% if value %}{{ value | usdd }}{% endif %}'\n",
    )
    (issue,) = load_rules(tmp_path).issues
    assert (issue.line, issue.col) == (5, 14)
    assert "rule 'a': message: template line 1: unknown filter 'usdd' (did you mean usd?)" in (
        issue.message
    )
    assert "filters: usd, pct, signed, plain" in issue.message


def test_names_bound_in_the_template_and_globals_are_known(tmp_path: Path) -> None:
    template = (
        "{% set total = value * 2 %}{% for x in range(2) %}{{ x }}{{ loop.index }}{% endfor %}"
        "{% set ns = namespace(n=0) %}{{ ns.n }}{{ total | usd }}{{ previous | default(0) }}"
    )
    write(
        tmp_path,
        "a.yaml",
        f"rules:\n  - id: a\n    series: x\n    condition: {{above: 1}}\n    message: '{template}'\n",
    )
    ruleset = load_rules(tmp_path)
    assert ruleset.issues == ()
    assert ruleset.rules[0].message == template
