"""Building blocks of the rule format: durations, windows, bounds and the strict base model.

Kept apart from `bot.engine.rules` so the format itself stays small.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from bot.durations import Duration as _Duration

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

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Bound(_Strict):
    """A threshold: exactly one of above, below, at_least, at_most."""

    above: Finite | None = None
    """Met when the value is strictly above this."""
    below: Finite | None = None
    """Met when the value is strictly below this."""
    at_least: Finite | None = None
    """Met when the value is this or more."""
    at_most: Finite | None = None
    """Met when the value is this or less."""

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


def _single_key(value: Any) -> str | None:
    """Discriminate single-key mappings by their key; anything else has no tag."""
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None
