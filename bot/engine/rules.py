"""The rule-file format: pydantic models typed per condition kind, and the JSON Schema.

Reading files, with `file:line:col` positions for every issue, is `bot.engine.loader`.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from bot.engine.calendar import CalendarName, default_calendar
from bot.engine.rule_types import (
    Bound as Bound,
)
from bot.engine.rule_types import (
    Count,
    Duration,
    Finite,
    Window,
    _single_key,
    _Strict,
)
from bot.engine.rule_types import (
    span as span,
)
from bot.keys import SERIES_KEY

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


# transforms --------------------------------------------------------------------------------------
class ResampleSpec(_Strict):
    """Group points into days, weeks, months (calendar-aware) or fixed durations."""

    every: Literal["day", "week", "month"] | Duration
    """Bucket size: day, week or month (on the series' calendar), or a duration like 30m."""
    how: Literal["sum", "mean", "last", "first", "min", "max", "count"] = "last"
    """How the points of a bucket combine into one."""


class RollingSpec(_Strict):
    """A trailing-window aggregate."""

    window: Window
    """The trailing window: a number of points like 10, or a duration like 24h."""
    how: Literal["sum", "mean", "last", "first", "min", "max", "count"] = "mean"
    """How the points of the window combine into one."""


class WindowSpec(_Strict):
    """A window for pct_change, diff and zscore."""

    window: Window = 1
    """How far back to compare: a number of points like 1, or a duration like 24h."""


class Resample(_Strict):
    resample: ResampleSpec
    """Group points into buckets."""


class Rolling(_Strict):
    rolling: RollingSpec
    """Aggregate each point with the points before it, over a window."""


class PctChange(_Strict):
    pct_change: WindowSpec
    """Relative change against the value a window earlier."""


class Diff(_Strict):
    diff: WindowSpec
    """Difference from the value a window earlier."""


class ZScore(_Strict):
    zscore: WindowSpec
    """Standard scores over a trailing window."""


class Abs(_Strict):
    abs: dict[str, Any] | None = None
    """Absolute values; takes no options (`abs` alone works too)."""


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
    """Holds while the value is strictly above this."""


class Below(_Strict):
    below: Finite
    """Holds while the value is strictly below this."""


class AtLeast(_Strict):
    at_least: Finite
    """Holds while the value is this or more."""


class AtMost(_Strict):
    at_most: Finite
    """Holds while the value is this or less."""


class Between(_Strict):
    between: tuple[Finite, Finite]
    """[low, high]: holds while the value is inside the band."""

    @field_validator("between")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"expected [low, high], found {list(value)}")
        return value


class Outside(_Strict):
    outside: tuple[Finite, Finite]
    """[low, high]: holds while the value is outside the band."""

    @field_validator("outside")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"expected [low, high], found {list(value)}")
        return value


class CrossesAbove(_Strict):
    crosses_above: Finite
    """Holds at the point where the value crosses above this."""


class CrossesBelow(_Strict):
    crosses_below: Finite
    """Holds at the point where the value crosses below this."""


class Turns(_Strict):
    turns: Literal["positive", "negative"]
    """Holds where the sign flips to positive or to negative."""


class StreakSpec(Bound):
    """N consecutive points meeting a bound."""

    count: Count
    """How many consecutive points must meet the bound."""


class Streak(_Strict):
    streak: StreakSpec
    """N points in a row meeting a bound."""


class SignChangesSpec(_Strict):
    """At least `min` sign changes among the last `within` points: two-way flow."""

    min: Count
    """The fewest sign changes that count as two-way flow."""
    within: Annotated[int, Field(ge=2, le=1_000_000)]
    """How many recent points to look at."""


class SignChanges(_Strict):
    sign_changes: SignChangesSpec
    """At least `min` sign changes among the last `within` points."""


class ChangeSpec(_Strict):
    """A move over a window by an absolute amount or a percentage (`6%`)."""

    window: Window
    """Over how long: a number of points like 7, or a duration like 24h."""
    by: str | Finite
    """The size of the move: an amount like 500 or a percentage like 6%."""
    direction: Literal["up", "down", "either"] = "either"
    """Which way the move must go."""

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
    """The window: a number of points like 90, or a duration like 90d."""
    above: Finite | None = None
    """Only count a new extreme above this."""
    below: Finite | None = None
    """Only count a new extreme below this."""


class NewHigh(_Strict):
    new_high: ExtremeSpec
    """Strictly above every earlier point of the window."""


class NewLow(_Strict):
    new_low: ExtremeSpec
    """Strictly below every earlier point of the window."""


class LongestSpec(Bound):
    """The current run meeting a bound is longer than every earlier run in the window."""

    within: Window
    """The window: a number of points like 60, or a duration like 60d."""


class Longest(_Strict):
    longest: LongestSpec
    """The current run meeting a bound is the longest in the window."""


class ChangeCondition(_Strict):
    change: ChangeSpec
    """A move over a window by an amount or a percentage."""


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
    """How long without data before it counts as missing (sessions for ETF series)."""
    then: Literal["keep", "ok", "alert"] = "keep"
    """Missing data keeps the state, resolves the alert, or fires it."""


class _RuleBase(_Strict):
    """Fields every rule has: identity, lifecycle and presentation."""

    id: str
    """Kebab-case identity, unique across all rule files; state is kept under it."""
    name: str = ""
    """A human name for messages; defaults to the id."""
    for_: Duration | None = Field(default=None, alias="for")
    """How long the condition must hold before firing, like 8h."""
    confirm: Count | None = None
    """How many points the condition must hold before firing (instead of `for`)."""
    keep_firing_for: Duration | None = None
    """Stay firing through clears shorter than this, like 30m."""
    repeat: Duration | None = None
    """Remind again at this interval while firing, like 1d."""
    repeat_backoff: Annotated[float, Field(ge=1.0, le=10.0)] = 1.0
    """Multiply the reminder gap by this after each reminder."""
    severity: Literal["info", "warning", "critical"] = "warning"
    """How loudly the alert is shown."""
    tags: list[str] = Field(default_factory=list)
    """Free-form tags, for /mute and filters."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra key-value labels, available to message templates."""
    message: str = "{{ name }}: {{ value | plain }}"
    """Jinja2 template of the firing message."""
    resolved_message: str | None = None
    """Jinja2 template of the resolve message; a default one when unset."""
    digest: bool = True
    """Whether the alert appears in the daily digest."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )

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

    kind: SkipJsonSchema[Literal["series"]] = "series"
    series: str
    """The series key the rule watches, like etf.btc.net_flow."""
    transform: list[TransformItem] = Field(default_factory=list)
    """Transforms applied in order before the condition."""
    condition: Condition
    """Exactly one condition, like {below: 0} or {streak: {below: 0, count: 5}}."""
    recover: Bound | None = None
    """Hysteresis: resolve only once the value meets this bound."""
    calendar: CalendarName | None = None
    """Trading calendar for resampling and sessions; ETF series default to US."""
    no_data: NoData | None = None
    """What missing data means, and after how long."""

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

    kind: SkipJsonSchema[Literal["composite"]] = "composite"
    all: list[str] | None = None
    """Fires while all of these rules are firing."""
    any: list[str] | None = None
    """Fires while any of these rules is firing."""
    within: Duration | None = None
    """Count a member that fired within this long, like 14d."""

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
    """The rules of this file."""


def rule_schema() -> dict[str, Any]:
    """JSON Schema of rule files, for editor completion through the YAML language server."""
    schema = RuleFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Stablewatch rule file"
    return schema
