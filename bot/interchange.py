"""The interchange CSV (`series,ts,value`): pure parsing and formatting."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.keys import SERIES_KEY
from bot.model import Observation

HEADER = ["series", "ts", "value"]


@dataclass(frozen=True)
class CsvIssue:
    """A bad row, with its line number."""

    line: int
    message: str


def parse_ts(text: str) -> datetime:
    """Accept an ISO date (00:00 UTC) or a UTC date-time; reject other offsets' ambiguity."""
    raw = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"expected a UTC date-time with Z or +00:00, found {text!r}")
    return parsed.astimezone(UTC)


def _row(line: int, row: list[str]) -> Observation | CsvIssue:
    """Check and convert one row."""
    if len(row) != 3:
        return CsvIssue(line, f"expected 3 fields (series,ts,value), found {len(row)}")
    series, ts, value = (cell.strip() for cell in row)
    if not SERIES_KEY.fullmatch(series):
        return CsvIssue(line, f"series: expected a key like etf.btc.net_flow, found {series!r}")
    try:
        when = parse_ts(ts)
    except ValueError:
        return CsvIssue(line, f"ts: expected an ISO-8601 date or UTC date-time, found {ts!r}")
    try:
        number = float(value)
    except ValueError:
        return CsvIssue(line, f"value: expected a number, found {value!r}")
    if not math.isfinite(number):
        return CsvIssue(line, f"value: expected a finite number, found {value!r}")
    return Observation(series, when, number)


def read_csv(lines: Iterable[str]) -> tuple[list[Observation], list[CsvIssue]]:
    """Parse a whole file; return the points, or every issue found (then import nothing)."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != HEADER:
        return [], [CsvIssue(1, f"expected the header {','.join(HEADER)}, found {header}")]
    points: list[Observation] = []
    issues: list[CsvIssue] = []
    for row in reader:
        if not row or all(not cell.strip() for cell in row):
            continue
        result = _row(reader.line_num, row)
        if isinstance(result, CsvIssue):
            issues.append(result)
        else:
            points.append(result)
    return points, issues


def format_value(value: float) -> str:
    """Write a value exactly, without exponent or trailing zeros (675800000, 0.00003355)."""
    import numpy as np

    return str(np.format_float_positional(value, trim="-"))


def _format_series(points: list[Observation]) -> Iterator[str]:
    """Daily series (every point at 00:00 UTC) are written with dates, others with UTC times."""
    daily = all((p.ts.hour, p.ts.minute, p.ts.second) == (0, 0, 0) for p in points)
    fmt = "%Y-%m-%d" if daily else "%Y-%m-%dT%H:%M:%SZ"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for p in points:
        writer.writerow([p.series, p.ts.strftime(fmt), format_value(p.value)])
    yield buffer.getvalue()


async def write_csv(points: AsyncIterator[Observation]) -> AsyncIterator[str]:
    """Stream CSV text series by series, from points ordered by series then time."""
    yield ",".join(HEADER) + "\n"
    current: list[Observation] = []
    async for point in points:
        if current and point.series != current[0].series:
            for chunk in _format_series(current):
                yield chunk
            current = []
        current.append(point)
    if current:
        for chunk in _format_series(current):
            yield chunk
