"""The rule-file format: pydantic models typed per condition kind, and the JSON Schema.

Reading files, with `file:line:col` positions for every issue, is `bot.engine.loader`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from bot.durations import Duration as _Duration
from bot.engine.calendar import CalendarName, default_calendar
from bot.keys import SERIES_KEY

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_BOUNDS = ("above", "below", "at_least", "at_most")
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _bounded(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A duration too large for a timedelta (`9999999999y`) is a bad value, not a crash."""
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

    @cached_property
    def fingerprint(self) -> str:
        """A change resets the rule's state; a message-only edit does not (cached: frozen)."""
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
        if not SERIES_KEY.fullmatch(value):
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
