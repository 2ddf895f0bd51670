"""Rule-file models and the loader that reports `file:line:col: rule 'id': field: …` (design §4)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class _Strict(BaseModel):
    """Rule files reject unknown keys: a misspelt field must not silently do nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Strict):
    """A threshold: exactly one of above, below, at_least, at_most."""

    above: float | None = None
    below: float | None = None
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Bound:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "expected exactly one of above, below, at_least, at_most, "
                f"found {', '.join(given) or 'none'}"
            )
        return self

    @property
    def op(self) -> str:
        """Name of the comparison that is set."""
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    @property
    def level(self) -> float:
        """The threshold value."""
        value = getattr(self, self.op)
        assert isinstance(value, float)
        return value


class Rule(_Strict):
    """One alerting rule: a series, a condition, and how to tell people about it."""

    id: str
    name: str = ""
    series: str
    condition: Bound
    recover: Bound | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    tags: list[str] = Field(default_factory=list)
    message: str = "{{ name }}: {{ value }}"
    resolved_message: str | None = None
    digest: bool = True

    @field_validator("id")
    @classmethod
    def _kebab_case(cls, value: str) -> str:
        if not _ID.fullmatch(value) or len(value) > 64:
            raise ValueError(
                f"expected a kebab-case id like btc-etf-outflow-streak, found {value!r}"
            )
        return value

    @field_validator("message", "resolved_message")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            from bot.engine.templates import TemplateError, check

            try:
                check(value)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _default_name(self) -> Rule:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        return self

    @property
    def fingerprint(self) -> str:
        """Identify what the rule evaluates; a change resets its state, a message edit does not."""
        core = {
            "series": self.series,
            "condition": self.condition.model_dump(),
            "recover": self.recover.model_dump() if self.recover else None,
        }
        return hashlib.blake2b(json.dumps(core, sort_keys=True).encode(), digest_size=8).hexdigest()


class RuleFile(_Strict):
    """The top level of a rule file."""

    rules: list[Rule] = Field(default_factory=list)


@dataclass(frozen=True)
class RuleIssue:
    """One problem in one rule file, with the position of the offending YAML node."""

    file: Path
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


@dataclass(frozen=True)
class RuleSet:
    """The rules loaded from a directory, and every issue found while loading them."""

    rules: tuple[Rule, ...] = ()
    issues: tuple[RuleIssue, ...] = field(default_factory=tuple)

    def by_series(self, series: str) -> list[Rule]:
        """Rules that read a series."""
        return [rule for rule in self.rules if rule.series == series]


def _node_at(node: yaml.Node, loc: tuple[int | str, ...]) -> yaml.Node:
    """Walk a composed YAML tree along a pydantic error location, as deep as it exists."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            if match is None:
                keys = [k for k, _ in node.value if k.value == part]
                return keys[0] if keys else node
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _rule_id_at(data: Any, index: Any) -> str:
    """The id of the rule at `index`, for error messages, or its position if it has none."""
    try:
        return str(data["rules"][index]["id"])
    except (KeyError, IndexError, TypeError):
        return f"#{index}"


def _issues_from(path: Path, root: yaml.Node, data: Any, exc: ValidationError) -> list[RuleIssue]:
    """Turn pydantic errors into positioned, readable lines."""
    issues = []
    for error in exc.errors():
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function"))
        )
        node = _node_at(root, loc)
        msg = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            msg = "unknown field"
        elif "found" not in msg and error.get("input") is not None:
            msg = f"{msg}, found {error['input']!r}"
        where = ""
        if len(loc) >= 2 and loc[0] == "rules":
            where = f"rule '{_rule_id_at(data, loc[1])}': "
            loc = loc[2:]
        key = ".".join(str(p) for p in loc)
        text = f"{where}{key}: {msg}" if key else f"{where}{msg}"
        issues.append(RuleIssue(path, node.start_mark.line + 1, node.start_mark.column + 1, text))
    return issues


def load_file(path: Path) -> tuple[list[Rule], list[RuleIssue]]:
    """Load one rule file; return its rules, or the issues that stop it from loading."""
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        return [], [RuleIssue(path, 1, 1, f"cannot read: {exc}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return [], [RuleIssue(path, line, col, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if root is None:
        return [], []
    try:
        return RuleFile.model_validate(data).rules, []
    except ValidationError as exc:
        return [], _issues_from(path, root, data, exc)


def load_rules(directory: Path) -> RuleSet:
    """Load every `*.yaml` file of a directory; duplicate ids across files are issues too."""
    rules: list[Rule] = []
    issues: list[RuleIssue] = []
    if not directory.is_dir():
        return RuleSet((), (RuleIssue(directory, 1, 1, "rules directory not found"),))
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
        loaded, problems = load_file(path)
        issues.extend(problems)
        for rule in loaded:
            if rule.id in seen:
                issues.append(
                    RuleIssue(path, 1, 1, f"rule '{rule.id}': id already used in {seen[rule.id]}")
                )
                continue
            seen[rule.id] = path
            rules.append(rule)
    return RuleSet(tuple(rules), tuple(issues))
