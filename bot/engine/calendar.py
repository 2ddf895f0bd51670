"""Trading calendars: the US market for ETF series (weekends and NYSE holidays), or continuous."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Literal

from bot.keys import is_etf

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

CalendarName = Literal["us-trading", "continuous"]
DAY = 86400
_WEEKMASK = "1111100"


def default_calendar(series: str) -> CalendarName:
    """ETF flows exist only on US trading days; everything else trades around the clock."""
    return "us-trading" if is_etf(series) else "continuous"


@cache
def _holidays(first_year: int, last_year: int) -> npt.NDArray[np.datetime64]:
    """NYSE full-day closures (including one-off days of mourning), from the `holidays` package."""
    import holidays
    import numpy as np

    closed = holidays.financial_holidays("NYSE", years=range(first_year, last_year + 1))
    return np.array(sorted(closed), dtype="datetime64[D]")


def holidays_for(days: npt.NDArray[np.datetime64]) -> npt.NDArray[np.datetime64]:
    """The closures covering the years of `days`, with a year of margin each side."""
    import numpy as np

    if days.size == 0:
        return np.array([], dtype="datetime64[D]")
    years = days.astype("datetime64[Y]").astype(int) + 1970
    return _holidays(int(years.min()) - 1, int(years.max()) + 1)


def to_days(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
    """Epoch seconds → calendar days (UTC)."""

    return (ts // DAY).astype("datetime64[D]")


def period_close(
    days: npt.NDArray[np.datetime64], every: Literal["week", "month"], calendar: CalendarName
) -> npt.NDArray[np.datetime64]:
    """The last session day of each day's week (Monday–Sunday) or month."""
    import numpy as np

    if every == "week":
        monday = days - ((days.astype("datetime64[D]").astype(np.int64) - 4) % 7)
        last = monday + (6 if calendar == "continuous" else 4)
    else:
        last = (days.astype("datetime64[M]") + 1).astype("datetime64[D]") - 1
    if calendar == "continuous":
        return last
    return np.busday_offset(
        last, 0, roll="backward", weekmask=_WEEKMASK, holidays=holidays_for(days)
    )


def sessions_between(
    start: npt.NDArray[np.datetime64], end: npt.NDArray[np.datetime64], calendar: CalendarName
) -> npt.NDArray[np.int64]:
    """Session days in [start, end): a weekend or holiday gap counts as no time at all."""
    import numpy as np

    if calendar == "continuous":
        return (end - start).astype(np.int64)
    both = np.concatenate([start, end])
    return np.busday_count(start, end, weekmask=_WEEKMASK, holidays=holidays_for(both))


def sessions_from(first: np.datetime64, count: int) -> npt.NDArray[np.datetime64]:
    """`count` consecutive US trading sessions starting at (or after) `first`."""
    import numpy as np

    span = np.array([first, first + count * 2 + 30], dtype="datetime64[D]")
    return np.busday_offset(
        first, np.arange(count), roll="forward", weekmask=_WEEKMASK, holidays=holidays_for(span)
    )
