"""Read rule files: YAML in, rules out, and every problem as a `file:line:col` issue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.engine.rules import AnyRule, CompositeRule, RuleFile, SeriesRule
from bot.engine.ruleset import RuleIssue, RuleSet
from bot.engine.templates import unknown_variables
from bot.engine.variables import provided


def _node_at(node: yaml.Node, loc: tuple[int | str, ...]) -> yaml.Node:
    """Walk a composed YAML tree along an error location; parts that are not keys are tags."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                continue
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
    return node


def _key_at(node: yaml.Node, loc: tuple[int | str, ...]) -> yaml.Node:
    """For an unknown key, point at the key itself."""
    parent = _node_at(node, loc[:-1])
    if isinstance(parent, yaml.MappingNode):
        for k, _ in parent.value:
            if k.value == loc[-1]:
                key: yaml.Node = k
                return key
    return parent


def _shown(value: object) -> str:
    """User text in a message, quoted when it would break the one-issue-per-line output."""
    text = str(value)
    return text if text.isprintable() else repr(text)


def _rule_id_at(data: Any, index: Any) -> str:
    try:
        return _shown(data["rules"][index]["id"])
    except (KeyError, IndexError, TypeError):
        return f"#{index}"


_TAGS = {"series-rule", "composite-rule"}


def _readable(loc: tuple[int | str, ...], data: Any, missing: bool) -> list[str | int]:
    """Keep the parts of an error location the user wrote; drop discriminator tags."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        in_map = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_map or in_list:
            out.append(part)
            node = node[part]
        elif missing and i == len(loc) - 1 and part not in _TAGS and out[-1:] != [part]:
            out.append(part)  # the name of the missing field (not a union member's type tag)
    return out


def _as_written(msg: str, value: object, node: yaml.Node) -> str:
    """Quote a refused duration as the file spells it (`yes`, not `true`)."""
    if isinstance(node, yaml.ScalarNode) and isinstance(value, bool):
        return f"{_shown(node.value)} is a yes/no, not a duration →{msg.partition('→')[2]}"
    return msg


_PLAIN = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "list_type": "expected a list",
    "dict_type": "expected a mapping like {key: value}",
    "model_type": "expected a mapping like {key: value}",
    "string_type": "expected text",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
}
_POINTS = {"int_parsing", "int_type", "int_from_float", "greater_than_equal", "less_than_equal"}
WINDOW = "expected a number of points from 1 to 1000000 or a duration like 24h"


def _describe(error: Any, node: yaml.Node) -> str:
    """Say what was expected and what was found, in the house style."""
    msg = str(error["msg"]).removeprefix("Value error, ")
    msg = _PLAIN.get(error["type"], msg)
    if msg.startswith("Input should be "):
        msg = "expected " + msg.removeprefix("Input should be ")
    if error["type"] in {"condition", "transform"} and isinstance(error.get("input"), dict):
        return f"{msg}; found {', '.join(map(_shown, error['input'])) or 'nothing'}"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "expected a value, found nothing"
    if error["type"] == "duration_unit":
        return _as_written(msg, error.get("input"), node)
    found = error.get("input")
    if "found" not in msg and found is not None and not isinstance(found, dict | list):
        return f"{msg}, found {_written(found, node)}"
    return msg


def _written(value: object, node: yaml.Node) -> str:
    """A found value as the file spells it, when it is a plain scalar there."""
    if isinstance(node, yaml.ScalarNode) and not isinstance(value, str):
        return _shown(node.value)
    return repr(value)


def _member_tag(part: int | str) -> bool:
    """A location part naming one form of a union, not a field the user wrote."""
    return isinstance(part, str) and part.startswith(("function-", "constrained-", "literal["))


def _one_per_field(errors: list[Any]) -> list[Any]:
    """A field of two forms fails once per form; keep the failure that matches what was written.

    A window (points or a duration) given a number failed as points: the unit hint is noise.
    Any other duration field given a number failed for its missing unit: the rest is noise.
    """
    by_loc: dict[tuple[Any, ...], list[Any]] = {}
    for error in errors:
        loc = tuple(p for p in error["loc"] if not _member_tag(p))
        by_loc.setdefault(loc, []).append(error)
    out = []
    for group in by_loc.values():
        if len(group) == 1 or not any(e["type"] == "duration_unit" for e in group):
            out.extend(group)
        elif any(e["type"] in _POINTS for e in group):
            point = next(e for e in group if e["type"] in _POINTS)
            out.append({**point, "type": "window", "msg": WINDOW})
        else:
            out.extend(e for e in group if e["type"] == "duration_unit")
    return out


def _issues_from(path: Path, root: yaml.Node, data: Any, exc: ValidationError) -> list[RuleIssue]:
    """Turn pydantic errors into positioned, readable lines."""
    issues = []
    for error in _one_per_field(exc.errors()):
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function"))
        )
        node = _key_at(root, loc) if error["type"] == "extra_forbidden" else _node_at(root, loc)
        readable = _readable(loc, data, error["type"] == "missing")
        where = ""
        if len(readable) >= 2 and readable[0] == "rules":
            where = f"rule '{_rule_id_at(data, readable[1])}': "
            readable = readable[2:]
        key = ".".join(_shown(p) for p in readable)
        said = _describe(error, node)
        text = f"{where}{key}: {said}" if key else f"{where}{said}"
        issues.append(RuleIssue(path, node.start_mark.line + 1, node.start_mark.column + 1, text))
    return _merge_alternatives(issues)


def _merge_alternatives(issues: list[RuleIssue]) -> list[RuleIssue]:
    """A field that accepts two forms (points or a duration) fails twice: say it once."""
    merged: dict[tuple[int, int, str], RuleIssue] = {}
    for issue in issues:
        head, _, detail = issue.message.rpartition(": ")
        key = (issue.line, issue.col, head)
        if key in merged and head:
            before = merged[key].message.rpartition(": ")[2]
            wanted = before.rsplit(", found ", 1)[0]
            extra = detail.removeprefix("expected ")
            merged[key] = RuleIssue(
                issue.file, issue.line, issue.col, f"{head}: {wanted} or {extra}"
            )
        else:
            merged[key] = issue
    return list(merged.values())


Position = tuple[Path, int, int]
SERIES_FIELD = "#series"
"""Suffix of a rule id in the positions map: where that rule's `series` value is."""


def _positions(path: Path, root: yaml.Node) -> dict[str, Position]:
    """Where each rule (and its `series`) starts, by id, so set-level checks point at it."""
    out: dict[str, Position] = {}
    rules_node = _node_at(root, ("rules",))
    if isinstance(rules_node, yaml.SequenceNode):
        for item in rules_node.value:
            ident = _node_at(item, ("id",))
            if isinstance(ident, yaml.ScalarNode):
                out[str(ident.value)] = (path, item.start_mark.line + 1, item.start_mark.column + 1)
                mark = _node_at(item, ("series",)).start_mark
                out[f"{ident.value}{SERIES_FIELD}"] = (path, mark.line + 1, mark.column + 1)
    return out


def load_text(path: Path, text: str) -> tuple[list[AnyRule], list[RuleIssue]]:
    """Parse one rule file's text; return its rules, or the issues that stop it from loading."""
    rules, issues, _ = _load_text(path, text)
    return rules, issues


def _load_text(path: Path, text: str) -> tuple[list[AnyRule], list[RuleIssue], dict[str, Position]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = int(getattr(exc, "position", 0) or 0)  # a ReaderError has a position, no mark
        line, col = (
            (mark.line + 1, mark.column + 1)
            if mark
            else (text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at))
        )
        problem = (str(getattr(exc, "problem", None) or exc).splitlines() or [""])[0]
        return [], [RuleIssue(path, line, col, f"not valid YAML: {problem}")], {}
    except RecursionError:
        return [], [RuleIssue(path, 1, 1, "not valid YAML: nested too deeply")], {}
    if root is None:
        return [], [], {}
    try:
        rules = list(RuleFile.model_validate(data).rules)
    except ValidationError as exc:
        return [], _issues_from(path, root, data, exc), {}
    except RecursionError:
        return [], [RuleIssue(path, 1, 1, "rule file nested too deeply")], {}
    unknown = _template_issues(path, root, rules)
    return ([], unknown, {}) if unknown else (rules, [], _positions(path, root))


def _template_issues(path: Path, root: yaml.Node, rules: list[AnyRule]) -> list[RuleIssue]:
    """A message naming a variable its rule does not provide would always fall back: refuse it."""
    issues = []
    for index, rule in enumerate(rules):
        for field in ("message", "resolved_message"):
            source = getattr(rule, field)
            for problem in unknown_variables(source or "", provided(rule)):
                node = _node_at(root, ("rules", index, field))
                line, col = node.start_mark.line + 1, node.start_mark.column + 1
                issues.append(RuleIssue(path, line, col, f"rule '{rule.id}': {field}: {problem}"))
    return issues


def load_file(path: Path) -> tuple[list[AnyRule], list[RuleIssue], dict[str, Position]]:
    """Load one rule file, with where each of its rules starts."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [RuleIssue(path, 1, 1, f"cannot read: {exc}")], {}
    return _load_text(path, text)


def _composite_issues(rules: list[AnyRule], origin: dict[str, Position]) -> list[RuleIssue]:
    """Members must exist, and composites must not refer to themselves through others."""
    by_id = {r.id: r for r in rules}
    issues = []
    for rule in rules:
        if isinstance(rule, CompositeRule):
            for member in rule.members:
                if member not in by_id:
                    issues.append(
                        RuleIssue(
                            *origin[rule.id],
                            f"rule '{rule.id}': member '{_shown(member)}' does not exist",
                        )
                    )
    state: dict[str, int] = {}

    def visit(rid: str, trail: list[str]) -> None:
        state[rid] = 1
        rule = by_id.get(rid)
        if isinstance(rule, CompositeRule):
            for member in rule.members:
                if state.get(member) == 1:
                    cycle = (
                        " → ".join([*trail[trail.index(member) :], member])
                        if member in trail
                        else member
                    )
                    issues.append(
                        RuleIssue(*origin[rid], f"rule '{rid}': cycle among composites: {cycle}")
                    )
                elif member in by_id and state.get(member) is None:
                    visit(member, [*trail, member])
        state[rid] = 2

    for rid in by_id:
        if state.get(rid) is None:
            visit(rid, [rid])
    return issues


def _ordered(rules: list[AnyRule]) -> list[AnyRule]:
    """Series rules first, then composites with their members before them."""
    done: set[str] = set()
    out: list[AnyRule] = [r for r in rules if isinstance(r, SeriesRule)]
    done.update(r.id for r in out)
    pending = [r for r in rules if isinstance(r, CompositeRule)]
    while pending:
        ready = [r for r in pending if all(m in done for m in r.members)]
        if not ready:
            break
        for r in ready:
            out.append(r)
            done.add(r.id)
            pending.remove(r)
    return out


def load_rules(directory: Path) -> RuleSet:
    """Load every `*.yaml` file of a directory (not `tests/`); duplicate ids are issues too."""
    if not directory.is_dir():
        return RuleSet((), (RuleIssue(directory, 1, 1, "rules directory not found"),))
    rules: list[AnyRule] = []
    issues: list[RuleIssue] = []
    origin: dict[str, Position] = {}
    series_at: dict[str, Position] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        loaded, problems, positions = load_file(path)
        issues.extend(problems)
        for rule in loaded:
            where = positions.get(rule.id, (path, 1, 1))
            if rule.id in origin:
                first = origin[rule.id]
                issues.append(
                    RuleIssue(*where, f"rule '{rule.id}': id already used at {first[0]}:{first[1]}")
                )
                continue
            origin[rule.id] = where
            series_at[rule.id] = positions.get(f"{rule.id}{SERIES_FIELD}", where)
            rules.append(rule)
    issues.extend(_composite_issues(rules, origin))
    return RuleSet(tuple(_ordered(rules)), tuple(issues), series_at)
