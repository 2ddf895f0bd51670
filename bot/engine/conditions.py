"""Conditions as pure, vectorized functions over numpy arrays of values."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bot.engine.rules import Bound


def holds(bound: Bound, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Return, for each value, whether the bound holds; NaN (missing) never holds."""
    import numpy as np

    level = bound.level
    with np.errstate(invalid="ignore"):
        match bound.op:
            case "above":
                return np.greater(values, level)
            case "below":
                return np.less(values, level)
            case "at_least":
                return np.greater_equal(values, level)
            case _:
                return np.less_equal(values, level)
