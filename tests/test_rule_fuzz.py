"""The rule loader under fuzzing: any text gives rules or positioned issues, never an exception.

Message templates are user code too: they must neither reach Python internals nor the file system.
"""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.alerts.lifecycle import Change
from bot.alerts.pipeline import message_for
from bot.engine.loader import load_rules, load_text
from bot.engine.rules import AnyRule, SeriesRule
from bot.engine.ruleset import RuleIssue
from bot.engine.templates import TemplateError, check, render
from bot.model import TransitionKind, from_epoch

FILE = Path("f.yaml")
ISSUE = re.compile(r"f\.yaml:(\d+):(\d+): \S")
FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

VALID_RULES: list[dict[str, Any]] = [
    {
        "id": "btc-etf-outflow-streak",
        "name": "BTC ETF outflow streak",
        "series": "etf.btc.net_flow",
        "condition": {"streak": {"below": 0, "count": 5}},
        "severity": "warning",
        "tags": ["etf", "btc"],
        "message": "{{ streak }} days, {{ window_sum | usd }}",
    },
    {
        "id": "btc-etf-weekly-inflow",
        "series": "etf.btc.net_flow",
        "transform": [{"resample": {"every": "week", "how": "sum"}}],
        "condition": {"turns": "positive"},
    },
    {
        "id": "btc-funding-negative",
        "series": "funding.btc.oi_weighted",
        "condition": {"below": 0},
        "for": "8h",
        "recover": {"above": 0.00005},
        "no_data": {"after": "1d", "then": "ok"},
        "keep_firing_for": "2h",
        "repeat": "1d",
        "labels": {"team": "desk"},
    },
    {
        "id": "btc-oi-flush",
        "series": "oi.btc.total",
        "condition": {"change": {"window": "24h", "by": "6%", "direction": "down"}},
        "confirm": 2,
    },
    {
        "id": "btc-etf-two-way",
        "series": "etf.btc.net_flow",
        "transform": [{"rolling": {"window": 3, "how": "mean"}}, "abs", {"zscore": {"window": 20}}],
        "condition": {"sign_changes": {"min": 4, "within": 10}},
    },
    {
        "id": "btc-record",
        "series": "etf.btc.net_flow",
        "transform": [{"pct_change": {"window": 1}}, {"diff": {"window": "2d"}}],
        "condition": {"new_low": {"within": "90d", "below": 0}},
    },
    {
        "id": "longest-negative",
        "series": "funding.btc.oi_weighted",
        "condition": {"longest": {"below": 0, "within": "60d"}},
        "calendar": "continuous",
    },
    {"id": "band", "series": "fear_greed", "condition": {"between": [10, 20]}},
    {"id": "cross", "series": "fear_greed", "condition": {"crosses_below": 25}},
    {"id": "stabilization", "all": ["btc-oi-flush", "btc-funding-negative"], "within": "14d"},
    {"id": "either", "any": ["band", "cross"]},
]

WEIRD: list[Any] = [
    None,
    True,
    0,
    -1,
    -(10**6),
    10**400,
    1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    "",
    " ",
    "1e309",
    "🚀🌕",
    "ID With Spaces",
    "a" * 500,
    "\u202e\u0000\ufeff",
    "{{ ''.__class__ }}",
    "{% include '/etc/passwd' %}",
    "5%",
    "-6%",
    "24x",
    "999999999999999999999d",
    [],
    {},
    [1, "two", None],
    {"above": 1, "below": 2},
    {"unknown": {"deep": [1, 2, 3]}},
]


def weird_values() -> st.SearchStrategy[Any]:
    """Wrong types, huge and negative numbers, odd text, and nested containers."""
    scalars = (
        st.sampled_from(WEIRD)
        | st.integers()
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=12)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=12,
    )


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a rule (keys of mappings, indexes of lists)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(paths(value, (*prefix, i)))
    return out


def mutate(rule: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> dict[str, Any]:
    """Replace, delete, or add an unknown key next to the value at `path`."""
    out = copy.deepcopy(rule)
    parent: Any = out
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif isinstance(parent, dict):
        parent[f"extra_{len(str(value)) % 7}"] = value
    else:
        parent.append(value)
    return out


def assert_well_formed(text: str, rules: list[AnyRule], issues: list[RuleIssue]) -> None:
    """Rules or issues, never both; each issue one `f.yaml:line:col: message` line in the text."""
    assert isinstance(rules, list) and isinstance(issues, list)
    assert not (rules and issues)
    lines = text.count("\n") + text.count("\r") + 2
    for issue in issues:
        assert isinstance(issue, RuleIssue)
        rendered = str(issue)
        match = ISSUE.match(rendered)
        assert match, rendered
        assert 1 <= issue.line <= lines and issue.col >= 1, rendered
        assert "\n" not in rendered, rendered


def load(text: str) -> tuple[list[AnyRule], list[RuleIssue]]:
    rules, issues = load_text(FILE, text)
    assert_well_formed(text, rules, issues)
    return rules, issues


# fuzzing -----------------------------------------------------------------------------------------
@FUZZ
@given(st.text(max_size=300))
def test_any_text_loads_or_reports(text: str) -> None:
    load(text)


YAML_PIECES = [
    "rules:",
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    "id: ",
    "series: ",
    "condition: ",
    "transform: ",
    "for: ",
    "all: ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    ": ",
    "above",
    "streak",
    "count",
    "resample",
    "every",
    "week",
    "1e309",
    "10000000000000000000000000000000000000000",
    "-5",
    ".inf",
    ".nan",
    "~",
    "'",
    '"',
    "&a ",
    "*a",
    "!!python/object:os.system ",
    "!!binary aGk=",
    "? ",
    "#",
    "\t",
    "🚀",
    "etf.btc.net_flow",
    "8h",
    "x",
]


@FUZZ
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=40))
def test_yaml_shaped_text_loads_or_reports(pieces: list[str]) -> None:
    load("".join(pieces))


@FUZZ
@given(
    st.sampled_from(VALID_RULES),
    st.data(),
    st.sampled_from(["replace", "replace", "delete", "add"]),
    weird_values(),
)
def test_a_valid_rule_with_one_field_broken_loads_or_reports(
    rule: dict[str, Any], data: st.DataObject, how: str, value: Any
) -> None:
    path = data.draw(st.sampled_from(paths(rule)))
    text = yaml.safe_dump({"rules": [mutate(rule, path, how, value)]}, allow_unicode=True)
    load(text)


RAW_TOKENS = [
    "1e309",
    "1.0e+309",
    "-1.0e+309",
    "1" + "0" * 400,
    "-1",
    "0",
    "0x10",
    "~",
    "''",
    "[]",
    "{}",
    ".inf",
    ".nan",
    "🚀",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "!!binary aGk=",
    "2025-11-28",
    "1_000",
    "yes",
    "null",
    "'99999999999999999999999999d'",
    "'1e999%'",
    "'{{ cycler.__init__.__globals__ }}'",
]


@FUZZ
@given(st.sampled_from(VALID_RULES[:9]), st.data(), st.sampled_from(RAW_TOKENS))
def test_raw_yaml_scalars_in_any_place_load_or_report(
    rule: dict[str, Any], data: st.DataObject, token: str
) -> None:
    marker = "MARKER-VALUE"
    path = data.draw(st.sampled_from(paths(rule)))
    text = yaml.safe_dump({"rules": [mutate(rule, path, "replace", marker)]})
    load(text.replace(marker, token))


@st.composite
def rule_files(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Two or three files of rules whose ids and composite members collide and loop."""
    ids = st.sampled_from(["a", "b", "c", "d", "🚀", "", "A_B"])
    files = []
    for _ in range(draw(st.integers(2, 3))):
        rules: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(0, 4))):
            rid = draw(ids)
            if draw(st.booleans()):
                rules.append({"id": rid, "series": "x", "condition": {"above": 1}})
            else:
                kind = draw(st.sampled_from(["all", "any"]))
                rules.append({"id": rid, kind: draw(st.lists(ids, min_size=0, max_size=3))})
        files.append(rules)
    return files


@settings(deadline=None, max_examples=80)
@given(rule_files())
def test_rule_directories_with_duplicates_and_loops_load_or_report(
    files: list[list[dict[str, Any]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for i, rules in enumerate(files):
            text = yaml.safe_dump({"rules": rules}, allow_unicode=True)
            (directory / f"r{i}.yaml").write_text(text, encoding="utf-8")
        ruleset = load_rules(directory)
        ids = [rule.id for rule in ruleset.rules]
        assert len(ids) == len(set(ids))
        for issue in ruleset.issues:
            assert re.match(rf"{re.escape(tmp)}/r\d\.yaml:\d+:\d+: \S", str(issue)), str(issue)
            assert issue.line >= 1


# explicit cases ----------------------------------------------------------------------------------
def write_rules(directory: Path, name: str, rules: list[dict[str, Any]]) -> None:
    (directory / name).write_text(yaml.safe_dump({"rules": rules}), encoding="utf-8")


SERIES_RULE = {"series": "x", "condition": {"above": 1}}


@pytest.mark.parametrize(
    ("composites", "cycle"),
    [
        pytest.param(
            [{"id": "a", "all": ["b", "s"]}, {"id": "b", "any": ["a"]}],
            "a → b → a",
            id="two composites naming each other are a cycle",
        ),
        pytest.param(
            [{"id": "a", "all": ["a"]}], "a → a", id="a composite naming itself is a cycle"
        ),
        pytest.param(
            [{"id": "a", "all": ["b"]}, {"id": "b", "all": ["c"]}, {"id": "c", "any": ["a", "s"]}],
            "a → b → c → a",
            id="a longer loop is a cycle",
        ),
    ],
)
def test_composite_cycles_are_reported(
    tmp_path: Path, composites: list[dict[str, Any]], cycle: str
) -> None:
    write_rules(tmp_path, "a.yaml", [{"id": "s", **SERIES_RULE}, *composites])
    ruleset = load_rules(tmp_path)
    messages = [issue.message for issue in ruleset.issues]
    assert any("cycle" in m and cycle in m for m in messages), messages


def test_a_composite_naming_a_missing_member_is_reported(tmp_path: Path) -> None:
    write_rules(tmp_path, "a.yaml", [{"id": "s", **SERIES_RULE}, {"id": "c", "all": ["s", "gone"]}])
    (issue,) = load_rules(tmp_path).issues
    assert issue.file == tmp_path / "a.yaml"
    assert "rule 'c'" in issue.message and "'gone' does not exist" in issue.message


def test_duplicate_ids_across_files_keep_the_first(tmp_path: Path) -> None:
    write_rules(tmp_path, "a.yaml", [{"id": "same", **SERIES_RULE}])
    write_rules(tmp_path, "b.yaml", [{"id": "same", "series": "y", "condition": {"below": 0}}])
    ruleset = load_rules(tmp_path)
    assert [r.series for r in ruleset.series_rules()] == ["x"]
    (issue,) = ruleset.issues
    assert (
        issue.file.name == "b.yaml"
        and "already used at" in issue.message
        and "a.yaml:2" in issue.message
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param(
            "for", "1" + "0" * 400, "need a unit", id="a 400-digit bare duration is reported"
        ),
        pytest.param("for", "1.0e+309", "need a unit", id="an infinite duration is reported"),
        pytest.param(
            "keep_firing_for", ".inf", "need a unit", id="keep_firing_for .inf is reported"
        ),
        pytest.param(
            "for",
            "99999999999999999999d",
            "shorter than",
            id="a duration past timedelta's range is reported",
        ),
        pytest.param("for", ".nan", "need a unit", id="a NaN duration is reported"),
        pytest.param("confirm", "-3", "greater than", id="a negative count is reported"),
        pytest.param("id", "🚀", "kebab-case", id="an emoji id is reported"),
        pytest.param("id", "''", "kebab-case", id="an empty id is reported"),
        pytest.param("series", "''", "series key", id="an empty series is reported"),
    ],
)
def test_out_of_range_fields_are_issues_not_crashes(field: str, value: str, expected: str) -> None:
    body = {"id": "r", "series": "x", "condition": {"above": 1}, field: "MARKER-VALUE"}
    text = yaml.safe_dump({"rules": [body]}).replace("MARKER-VALUE", value)
    rules, issues = load(text)
    assert rules == []
    assert any(expected in issue.message for issue in issues), [str(i) for i in issues]


def test_deeply_nested_lists_are_an_issue() -> None:
    load("rules: " + "[" * 5000 + "]" * 5000)
    _, issues = load("rules:\n  - id: a\n    series: x\n    tags: " + "[" * 200 + "]" * 200 + "\n")
    assert issues and issues[0].line == 4


# templates ---------------------------------------------------------------------------------------
SECRET = "s3cr3t-t0ken-value"
ATTACKS = [
    pytest.param("{{ ''.__class__.__mro__ }}", id="walking a string's class hierarchy"),
    pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}", id="listing every loaded class"),
    pytest.param("{{ cycler.__init__.__globals__ }}", id="reaching a global function's module"),
    pytest.param("{{ self._TemplateReference__context }}", id="reaching the template's context"),
    pytest.param("{{ value.__class__.__base__ }}", id="reaching a variable's base class"),
    pytest.param("{{ namespace.__init__.__globals__.os }}", id="reaching os through namespace"),
    pytest.param("{% include '/etc/passwd' %}", id="including a system file"),
    pytest.param("{% include 'SECRET_FILE' %}", id="including a secret file"),
    pytest.param("{% import 'SECRET_FILE' as s %}{{ s }}", id="importing a secret file"),
    pytest.param("{% extends 'SECRET_FILE' %}", id="extending a secret file"),
    pytest.param("{% from 'SECRET_FILE' import x %}", id="importing a name from a secret file"),
]


@pytest.mark.parametrize("template", ATTACKS)
def test_templates_cannot_reach_python_or_files(tmp_path: Path, template: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    template = template.replace("SECRET_FILE", str(secret))
    body = {"id": "r", "series": "x", "condition": {"above": 1}, "message": template}
    rules, issues = load(yaml.safe_dump({"rules": [body]}))
    if issues:
        assert "include, import and extends" in issues[0].message
        with pytest.raises(TemplateError):
            check(template)
    else:
        with pytest.raises(TemplateError) as caught:
            render(template, {"value": 1.0, "name": "r"})
        assert SECRET not in str(caught.value) and "root:" not in str(caught.value)
        (rule,) = rules
        change = Change(TransitionKind.FIRING, from_epoch(0), 1.0, from_epoch(0))
        text = message_for(rule, change, None)
        assert text == "r: 1"
    with pytest.raises(TemplateError) as caught:
        render(template, {"value": 1.0})
    for leak in (SECRET, "root:", "<class", "<module", "<function", "object at 0x"):
        assert leak not in str(caught.value)


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{{ 1 / 0 }}", id="division by zero"),
        pytest.param("{{ value | signed }}", id="a filter given text"),
        pytest.param("{{ missing }}", id="an undefined name"),
        pytest.param("{{ range(10**9) | list }}", id="a range past the sandbox's limit"),
        pytest.param("{{ 'x' * 10**10 }}", id="a ten-gigabyte string"),
        pytest.param("{{ [0] * 10**9 }}", id="a billion-item list"),
        pytest.param("{{ (value * 3) ** 99999999 }}", id="a float power overflowing"),
        pytest.param("{{ 7 ** 1000000000 }}", id="a billion-digit integer"),
    ],
)
def test_render_failures_are_template_errors(template: str) -> None:
    check(template)
    with pytest.raises(TemplateError):
        render(template, {"value": "text" if "signed" in template else 1.0})


def test_ordinary_templates_still_render() -> None:
    text = "{{ '-' * 3 }} {{ streak | int }} days, {{ window_sum | usd }}, {{ 2 ** 10 }}"
    check(text)
    assert render(text, {"streak": 5.0, "window_sum": -1.9e9}) == "--- 5 days, −$1.9B, 1024"


TEMPLATE_PIECES = [
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    " value ",
    " name ",
    "|",
    " usd",
    " pct",
    " signed",
    " plain",
    " int",
    "(",
    ")",
    ".",
    "__class__",
    "__globals__",
    "_x",
    "'",
    " if ",
    " else ",
    " for x in ",
    " endfor ",
    " set ",
    "=",
    " * ",
    " ** ",
    " / ",
    "3",
    "99999",
    " include ",
    " import ",
    "cycler",
    "self",
    "range",
    " ~ ",
    "[",
    "]",
]


@FUZZ
@given(st.lists(st.sampled_from(TEMPLATE_PIECES), max_size=25), st.sampled_from([None, 1.5, -2e9]))
def test_any_template_checks_and_renders_or_raises_template_error(
    pieces: list[str], value: float | None
) -> None:
    template = "".join(pieces)
    try:
        check(template)
    except TemplateError:
        return
    try:
        out = render(template, {"value": value, "name": "n", "x": 1})
    except TemplateError:
        return
    assert isinstance(out, str)
    assert "<class" not in out and "<function" not in out


def test_a_loaded_rule_is_a_series_rule_with_the_message_kept() -> None:
    rules, _ = load(yaml.safe_dump({"rules": [VALID_RULES[0]]}))
    (rule,) = rules
    assert isinstance(rule, SeriesRule) and rule.message == VALID_RULES[0]["message"]
