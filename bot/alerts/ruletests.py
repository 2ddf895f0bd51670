"""Rule unit tests (`rules/tests/*.yaml`), modelled on `promtool test rules`.

Input series use a compact notation: `-100x5 50` is five points of −100 then one of 50;
`1+2x3` counts up (1 3 5 7, promtool style); `_` is a missing point and `_x3` three of them;
numbers may carry K, M or B (`-566.4M`). Points are spaced by `interval` (a duration) or by US
trading sessions (`interval: session`), from `start`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.alerts.backtest import Event, replay
from bot.durations import Duration
from bot.engine.calendar import DAY, sessions_from
from bot.engine.loader import load_rules
from bot.engine.ruleset import RuleSet
from bot.engine.series import Series
from bot.model import to_epoch

_SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9}
_TOKEN = re.compile(
    r"(?P<v>_|[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?[KMB]?)"
    r"(?:(?P<op>[-+])(?P<d>\d+(?:\.\d+)?[KMB]?))?(?:x(?P<n>\d+))?"
)


class NotationError(ValueError):
    """A series string that does not follow the compact notation."""


def _number(text: str) -> float:
    suffix = text[-1] if text[-1] in _SCALE else ""
    return float(text[: len(text) - len(suffix)]) * _SCALE[suffix]


def expand(notation: str) -> list[float]:
    """Turn `-100x5 50 _` into values, NaN for missing points."""
    values: list[float] = []
    for token in notation.split():
        match = _TOKEN.fullmatch(token)
        if not match:
            raise NotationError(
                f"cannot read {token!r}: expected forms like 5, -1.5M, 3x4, 1+2x3, _"
            )
        count = int(match["n"]) if match["n"] is not None else None
        if match["v"] == "_":
            values.extend([float("nan")] * (count or 1))
        elif match["op"]:
            if count is None:
                raise NotationError(f"{token!r}: a step needs a count, like 1+2x3")
            step = _number(match["d"]) * (1 if match["op"] == "+" else -1)
            values.extend(_number(match["v"]) + step * i for i in range(count + 1))
        else:
            values.extend([_number(match["v"])] * (count or 1))
    return values


class Expected(BaseModel):
    """One expected event; `message`, when given, is the exact text it must render."""

    model_config = ConfigDict(extra="forbid")
    at: datetime | date
    state: Literal["firing", "resolved"]
    message: str | None = None

    def moment(self) -> datetime:
        """Dates mean 00:00 UTC; naive times are UTC."""
        if isinstance(self.at, datetime):
            return self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
        return datetime(self.at.year, self.at.month, self.at.day, tzinfo=UTC)


class Case(BaseModel):
    """One test: input series, a start and spacing, and the events expected per rule."""

    model_config = ConfigDict(extra="forbid")
    name: str
    start: datetime | date
    interval: Literal["session"] | Duration = timedelta(days=1)
    series: dict[str, str]
    expect: dict[str, list[Expected]] = Field(default_factory=dict)
    until: datetime | date | None = None

    @field_validator("series")
    @classmethod
    def _readable(cls, value: dict[str, str]) -> dict[str, str]:
        for key, notation in value.items():
            try:
                expand(str(notation))
            except NotationError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return value


class TestFile(BaseModel):
    """A rule test file."""

    model_config = ConfigDict(extra="forbid")
    rules_dir: str = ".."
    tests: list[Case]


@dataclass
class Outcome:
    """What one case found."""

    file: Path
    case: str
    failures: list[str] = field(default_factory=list)


def _aware(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _timestamps(case: Case, count: int) -> np.ndarray:
    """Point times: a fixed step, or consecutive US trading sessions from the start."""
    start = _aware(case.start)
    if case.interval == "session":
        days = sessions_from(np.datetime64(start.date(), "D"), count)
        return days.astype(np.int64) * DAY
    assert isinstance(case.interval, timedelta)
    step = int(case.interval.total_seconds())
    return to_epoch(start) + step * np.arange(count, dtype=np.int64)


def run_case(path: Path, case: Case, rules: RuleSet) -> Outcome:
    """Replay a case's series through the rules and compare the events with the expectations."""
    data: dict[str, Series] = {}
    last = 0
    for key, notation in case.series.items():
        values = expand(notation)
        ts = _timestamps(case, len(values))
        data[key] = Series(ts, np.array(values, dtype=np.float64))
        last = max(last, int(ts[-1]) if ts.size else 0)
    end = (
        _aware(case.until)
        if case.until
        else datetime.fromtimestamp(last, UTC) + timedelta(seconds=1)
    )
    events = replay(rules, data, end)
    outcome = Outcome(path, case.name)
    for rule_id, expected in case.expect.items():
        if rules.get(rule_id) is None:
            outcome.failures.append(f"rule '{rule_id}' does not exist")
            continue
        mine = [e for e in events if e.rule == rule_id]
        got = [(e.at, e.state) for e in mine]
        want = [(x.moment(), x.state) for x in expected]
        if got != want:
            outcome.failures.append(_diff(rule_id, want, got))
            continue
        for wanted, event in zip(expected, mine, strict=True):
            if wanted.message is not None and wanted.message != event.message:
                outcome.failures.extend(_text_diff(rule_id, event, wanted.message))
    return outcome


def _plain(text: str) -> bool:
    """Newlines or edge spaces would hide a difference unless the text is quoted."""
    return text == text.strip() and "\n" not in text


def _text_diff(rule_id: str, event: Event, wanted: str) -> list[str]:
    """Expected and got on lines of their own, aligned, both quoted if either needs it."""
    show = str if _plain(wanted) and _plain(event.message) else repr
    return [
        f"rule '{rule_id}': {event.state} at {event.at.isoformat()}: message differs",
        f"  expected: {show(wanted)}",
        f"  got:      {show(event.message)}",
    ]


def _diff(
    rule_id: str,
    want: Sequence[tuple[datetime, str]],
    got: Sequence[tuple[datetime, str]],
) -> str:
    def show(items: Sequence[tuple[datetime, str]]) -> str:
        return ", ".join(f"{state} at {at.isoformat()}" for at, state in items) or "nothing"

    return f"rule '{rule_id}': expected {show(want)}; got {show(got)}"


def load_test_file(path: Path) -> tuple[TestFile | None, str]:
    """Read and validate a test file; return it, or one line saying what is wrong."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        return TestFile.model_validate(data), ""
    except (OSError, yaml.YAMLError) as exc:
        return None, f"{path}: cannot read: {exc}"
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"{path}: {where}: {first['msg']}"


def run_file(path: Path) -> list[Outcome]:
    """Run every case of one test file against the rules it names."""
    spec, problem = load_test_file(path)
    if spec is None:
        return [Outcome(path, "(file)", [problem])]
    rules = load_rules((path.parent / spec.rules_dir).resolve())
    if rules.issues:
        return [Outcome(path, "(rules)", [str(i) for i in rules.issues])]
    return [run_case(path, case, rules) for case in spec.tests]
