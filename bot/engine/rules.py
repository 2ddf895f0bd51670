"""Rule-file models (typed per condition kind) and the loader reporting `file:line:col` (§4)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from bot.durations import Duration as _Duration
from bot.engine.calendar import CalendarName, default_calendar

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SERIES = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
_BOUNDS = ("above", "below", "at_least", "at_most")
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _bounded(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A duration too large for a timedelta (`1e400`, `.inf`) is a bad value, not a crash."""
    if isinstance(value, float) and math.isnan(value):
        raise ValueError("expected a duration like 30s, 5m, 8h, 1d or 2w, found nan")
    try:
        return handler(value)
    except OverflowError:
        raise ValueError(
            f"expected a duration shorter than 2 million years, found {value!r}"
        ) from None


Duration = Annotated[_Duration, WrapValidator(_bounded)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]
Window = Count | Duration
"""A window: a whole number of points, or a duration like 24h."""


def span(window: int | timedelta) -> tuple[int, str]:
    """Split a window into (amount, "points" | "seconds")."""
    if isinstance(window, timedelta):
        return int(window.total_seconds()), "seconds"
    return int(window), "points"


class _Strict(BaseModel):
    """Rule files reject unknown keys: a misspelt field must not silently do nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Strict):
    """A threshold: exactly one of above, below, at_least, at_most."""

    above: Finite | None = None
    below: Finite | None = None
    at_least: Finite | None = None
    at_most: Finite | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Bound:
        given = [name for name in _BOUNDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "expected exactly one of above, below, at_least, at_most, "
                f"found {', '.join(given) or 'none'}"
            )
        return self

    @property
    def op(self) -> str:
        """Name of the comparison that is set."""
        return next(name for name in _BOUNDS if getattr(self, name) is not None)

    @property
    def level(self) -> float:
        """The threshold value."""
        value = getattr(self, self.op)
        assert isinstance(value, float)
        return value


# transforms --------------------------------------------------------------------------------------
class ResampleSpec(_Strict):
    """Group points into days, weeks, months (calendar-aware) or fixed durations."""

    every: Literal["day", "week", "month"] | Duration
    how: Literal["sum", "mean", "last", "first", "min", "max", "count"] = "last"


class RollingSpec(_Strict):
    """A trailing-window aggregate."""

    window: Window
    how: Literal["sum", "mean", "last", "first", "min", "max", "count"] = "mean"


class WindowSpec(_Strict):
    """A window for pct_change, diff and zscore."""

    window: Window = 1


class Resample(_Strict):
    resample: ResampleSpec


class Rolling(_Strict):
    rolling: RollingSpec


class PctChange(_Strict):
    pct_change: WindowSpec


class Diff(_Strict):
    diff: WindowSpec


class ZScore(_Strict):
    zscore: WindowSpec


class Abs(_Strict):
    abs: dict[str, Any] | None = None


def _single_key(value: Any) -> str | None:
    """Discriminate single-key mappings by their key; anything else has no tag."""
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


def _transform_from_text(value: Any) -> Any:
    """Let a bare `abs` stand for `{abs: {}}`."""
    return {"abs": {}} if value == "abs" else value


Transform = Annotated[
    Annotated[Resample, Tag("resample")]
    | Annotated[Rolling, Tag("rolling")]
    | Annotated[PctChange, Tag("pct_change")]
    | Annotated[Diff, Tag("diff")]
    | Annotated[ZScore, Tag("zscore")]
    | Annotated[Abs, Tag("abs")],
    Discriminator(
        _single_key,
        custom_error_type="transform",
        custom_error_message="expected one of resample, rolling, pct_change, diff, zscore, abs",
    ),
]
TransformItem = Annotated[Transform, BeforeValidator(_transform_from_text)]


# conditions --------------------------------------------------------------------------------------
class Above(_Strict):
    above: Finite


class Below(_Strict):
    below: Finite


class AtLeast(_Strict):
    at_least: Finite


class AtMost(_Strict):
    at_most: Finite


class Between(_Strict):
    between: tuple[Finite, Finite]

    @field_validator("between")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"expected [low, high], found {list(value)}")
        return value


class Outside(_Strict):
    outside: tuple[Finite, Finite]

    @field_validator("outside")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"expected [low, high], found {list(value)}")
        return value


class CrossesAbove(_Strict):
    crosses_above: Finite


class CrossesBelow(_Strict):
    crosses_below: Finite


class Turns(_Strict):
    turns: Literal["positive", "negative"]


class StreakSpec(Bound):
    """N consecutive points meeting a bound."""

    count: Count


class Streak(_Strict):
    streak: StreakSpec


class SignChangesSpec(_Strict):
    """At least `min` sign changes among the last `within` points: two-way flow."""

    min: Count
    within: Annotated[int, Field(ge=2, le=1_000_000)]


class SignChanges(_Strict):
    sign_changes: SignChangesSpec


class ChangeSpec(_Strict):
    """A move over a window by an absolute amount or a percentage (`6%`)."""

    window: Window
    by: str | Finite
    direction: Literal["up", "down", "either"] = "either"

    @field_validator("by")
    @classmethod
    def _amount(cls, value: str | float) -> str | float:
        if isinstance(value, str) and not re.fullmatch(r"\d+(\.\d+)?%", value.strip()):
            raise ValueError(f"expected a number or a percentage like 6%, found {value!r}")
        if isinstance(value, float) and value <= 0:
            raise ValueError(f"expected a positive amount, found {value}")
        return value

    @property
    def amount(self) -> tuple[float, bool]:
        """(size, is_percentage) with percentages as fractions."""
        if isinstance(self.by, str):
            return float(self.by.strip().rstrip("%")) / 100, True
        return float(self.by), False


class ExtremeSpec(_Strict):
    """Strictly beyond every earlier point of the window, optionally only past a bound."""

    within: Window
    above: Finite | None = None
    below: Finite | None = None


class NewHigh(_Strict):
    new_high: ExtremeSpec


class NewLow(_Strict):
    new_low: ExtremeSpec


class LongestSpec(Bound):
    """The current run meeting a bound is longer than every earlier run in the window."""

    within: Window


class Longest(_Strict):
    longest: LongestSpec


class ChangeCondition(_Strict):
    change: ChangeSpec


Condition = Annotated[
    Annotated[Above, Tag("above")]
    | Annotated[Below, Tag("below")]
    | Annotated[AtLeast, Tag("at_least")]
    | Annotated[AtMost, Tag("at_most")]
    | Annotated[Between, Tag("between")]
    | Annotated[Outside, Tag("outside")]
    | Annotated[CrossesAbove, Tag("crosses_above")]
    | Annotated[CrossesBelow, Tag("crosses_below")]
    | Annotated[Turns, Tag("turns")]
    | Annotated[Streak, Tag("streak")]
    | Annotated[SignChanges, Tag("sign_changes")]
    | Annotated[NewHigh, Tag("new_high")]
    | Annotated[NewLow, Tag("new_low")]
    | Annotated[Longest, Tag("longest")]
    | Annotated[ChangeCondition, Tag("change")],
    Discriminator(
        _single_key,
        custom_error_type="condition",
        custom_error_message=(
            "expected exactly one condition: above, below, at_least, at_most, between, outside, "
            "crosses_above, crosses_below, turns, streak, sign_changes, change, new_high, "
            "new_low or longest"
        ),
    ),
]


# rules -------------------------------------------------------------------------------------------
class NoData(_Strict):
    """What a missing series means after `after` (session days for ETF series)."""

    after: Duration
    then: Literal["keep", "ok", "alert"] = "keep"


class _RuleBase(_Strict):
    """Fields every rule has: identity, lifecycle and presentation."""

    id: str
    name: str = ""
    for_: Duration | None = Field(default=None, alias="for")
    confirm: Count | None = None
    keep_firing_for: Duration | None = None
    repeat: Duration | None = None
    repeat_backoff: Annotated[float, Field(ge=1.0, le=10.0)] = 1.0
    severity: Literal["info", "warning", "critical"] = "warning"
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    message: str = "{{ name }}: {{ value | plain }}"
    resolved_message: str | None = None
    digest: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

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
    def _defaults(self) -> _RuleBase:
        if self.for_ is not None and self.confirm is not None:
            raise ValueError("expected either `for` or `confirm`, found both")
        if not self.name:
            object.__setattr__(self, "name", self.id)
        return self

    def _identity(self) -> dict[str, Any]:
        """What the rule evaluates, for the fingerprint; presentation fields are left out."""
        return self.model_dump(
            mode="json",
            exclude={
                "name",
                "message",
                "resolved_message",
                "severity",
                "tags",
                "labels",
                "digest",
                "repeat",
                "repeat_backoff",
            },
        )

    @property
    def fingerprint(self) -> str:
        """A change resets the rule's state; a message-only edit does not."""
        text = json.dumps(self._identity(), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class SeriesRule(_RuleBase):
    """A rule on one series: transforms, then a condition, then the lifecycle."""

    kind: Literal["series"] = "series"
    series: str
    transform: list[TransformItem] = Field(default_factory=list)
    condition: Condition
    recover: Bound | None = None
    calendar: CalendarName | None = None
    no_data: NoData | None = None

    @field_validator("series")
    @classmethod
    def _series_key(cls, value: str) -> str:
        if not _SERIES.fullmatch(value):
            raise ValueError(f"expected a series key like etf.btc.net_flow, found {value!r}")
        return value

    @property
    def session_calendar(self) -> CalendarName:
        """The rule's calendar: given, or US trading days for ETF series."""
        return self.calendar or default_calendar(self.series)


class CompositeRule(_RuleBase):
    """A rule over other rules: all or any of them firing (or fired within a window)."""

    kind: Literal["composite"] = "composite"
    all: list[str] | None = None
    any: list[str] | None = None
    within: Duration | None = None

    @model_validator(mode="after")
    def _one_list(self) -> CompositeRule:
        if (self.all is None) == (self.any is None):
            raise ValueError("expected exactly one of all, any")
        if not self.members:
            raise ValueError("expected at least one member rule id")
        return self

    @property
    def members(self) -> list[str]:
        """The member rule ids."""
        return list(self.all or self.any or [])


def _rule_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "composite-rule" if ("all" in value or "any" in value) else "series-rule"
    return f"{getattr(value, 'kind', 'series')}-rule"


Rule = Annotated[
    Annotated[SeriesRule, Tag("series-rule")] | Annotated[CompositeRule, Tag("composite-rule")],
    Discriminator(_rule_kind),
]
AnyRule = SeriesRule | CompositeRule


class RuleFile(_Strict):
    """The top level of a rule file."""

    rules: list[Rule] = Field(default_factory=list)


def rule_schema() -> dict[str, Any]:
    """JSON Schema of rule files, for editor completion through the YAML language server."""
    schema = RuleFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Stablewatch rule file"
    return schema


# loading -----------------------------------------------------------------------------------------
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

    rules: tuple[AnyRule, ...] = ()
    issues: tuple[RuleIssue, ...] = field(default_factory=tuple)

    def series_rules(self) -> list[SeriesRule]:
        """Rules that read a series."""
        return [r for r in self.rules if isinstance(r, SeriesRule)]

    def composites(self) -> list[CompositeRule]:
        """Composite rules, members before the composites that use them."""
        return [r for r in self.rules if isinstance(r, CompositeRule)]

    def get(self, rule_id: str) -> AnyRule | None:
        """A rule by id."""
        return next((r for r in self.rules if r.id == rule_id), None)


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


def _describe(error: Any) -> str:
    """Say what was expected and what was found, in the house style."""
    msg = str(error["msg"]).removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        msg = "expected " + msg.removeprefix("Input should be ")
    if error["type"] in {"condition", "transform"} and isinstance(error.get("input"), dict):
        return f"{msg}; found {', '.join(map(_shown, error['input'])) or 'nothing'}"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "expected a value, found nothing"
    found = error.get("input")
    if "found" not in msg and found is not None and not isinstance(found, dict | list):
        return f"{msg}, found {found!r}"
    return msg


def _issues_from(path: Path, root: yaml.Node, data: Any, exc: ValidationError) -> list[RuleIssue]:
    """Turn pydantic errors into positioned, readable lines."""
    issues = []
    for error in exc.errors():
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
        text = f"{where}{key}: {_describe(error)}" if key else f"{where}{_describe(error)}"
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


def _positions(path: Path, root: yaml.Node) -> dict[str, Position]:
    """Where each rule starts, by id, so set-level issues (members, cycles) point at it."""
    out: dict[str, Position] = {}
    rules_node = _node_at(root, ("rules",))
    if isinstance(rules_node, yaml.SequenceNode):
        for item in rules_node.value:
            ident = _node_at(item, ("id",))
            if isinstance(ident, yaml.ScalarNode):
                out[str(ident.value)] = (path, item.start_mark.line + 1, item.start_mark.column + 1)
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
        return list(RuleFile.model_validate(data).rules), [], _positions(path, root)
    except ValidationError as exc:
        return [], _issues_from(path, root, data, exc), {}
    except RecursionError:
        return [], [RuleIssue(path, 1, 1, "rule file nested too deeply")], {}


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
            rules.append(rule)
    issues.extend(_composite_issues(rules, origin))
    return RuleSet(tuple(_ordered(rules)), tuple(issues))
