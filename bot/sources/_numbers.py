"""Strict readers for provider payloads: numbers come as strings, times as s or ms; doubt raises."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bot.keys import FUTURE_SLACK
from bot.sources import ParseError

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DIGITS = re.compile(r"\d{1,20}")
_TOO_LARGE = 10**16
"""Past this even a microsecond count has left any sane calendar; stop before float overflow."""
_MS_FROM = 10**11
"""Epoch values at or above this are milliseconds: 10**11 s is the year 5138, 10**11 ms is 1973."""
CRYPTO_EPOCH = datetime(2009, 1, 3, tzinfo=UTC)
"""Exchange data before Bitcoin's genesis block is a unit mix-up (seconds read as ms)."""

EpochUnit = Literal["auto", "s", "ms"]


def shown(value: Any, limit: int = 60) -> str:
    """Quote a found value briefly, so one bad field never floods a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mapping(value: Any, where: str) -> dict[str, Any]:
    """Insist on a JSON object."""
    if not isinstance(value, dict):
        raise ParseError(f"{where}: expected an object, found {type(value).__name__}")
    return value


def sequence(value: Any, where: str) -> list[Any]:
    """Insist on a JSON array."""
    if not isinstance(value, list):
        raise ParseError(f"{where}: expected a list, found {type(value).__name__}")
    return value


def same(value: Any, expected: str, where: str) -> None:
    """Check an echoed identifier (symbol, coin), so one asset's answer never lands in another's."""
    if value != expected:
        raise ParseError(f"{where}: expected {expected!r}, found {shown(value)}")


def number(value: Any, where: str) -> float:
    """Read a finite number given as a JSON number or a plain decimal string; bools never count."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ParseError(f"{where}: expected a number, found {shown(value)}")
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ParseError(f"{where}: expected a number, found {shown(value)}")
    try:
        result = float(value)
    except OverflowError:
        raise ParseError(f"{where}: number out of range: {shown(value)}") from None
    if not math.isfinite(result):
        raise ParseError(f"{where}: expected a finite number, found {shown(value)}")
    return result


def positive(value: Any, where: str) -> float:
    """Read a number that must be above zero (prices, open interest): a zero is a broken feed."""
    result = number(value, where)
    if result <= 0:
        raise ParseError(f"{where}: expected a positive number, found {shown(value)}")
    return result


def _epoch_number(value: Any, where: str) -> int:
    """Accept epoch integers as JSON numbers or digit strings, nothing fuzzier."""
    raw: int | None = None
    if isinstance(value, float) and value.is_integer():
        raw = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        raw = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        raw = int(value)
    if raw is None or not 0 <= raw < _TOO_LARGE:
        raise ParseError(f"{where}: expected an epoch timestamp, found {shown(value)}")
    return raw


def epoch(
    value: Any,
    where: str,
    now: datetime,
    unit: EpochUnit = "auto",
    ahead: timedelta = FUTURE_SLACK,
    earliest: datetime = CRYPTO_EPOCH,
) -> datetime:
    """Read epoch s or ms (by magnitude unless `unit` says), refusing too early or future times.

    `ahead` widens the future bound for fields that are schedules, like a next funding time.
    """
    raw = _epoch_number(value, where)
    is_ms = raw >= _MS_FROM
    if unit != "auto" and is_ms != (unit == "ms"):
        found = "milliseconds" if is_ms else "seconds"
        raise ParseError(f"{where}: expected epoch {unit}, found what looks like {found}: {raw}")
    seconds = raw / 1000 if is_ms else float(raw)
    return checked_time(seconds, where, now, ahead, earliest)


def checked_time(
    seconds: float,
    where: str,
    now: datetime,
    ahead: timedelta = FUTURE_SLACK,
    earliest: datetime = CRYPTO_EPOCH,
) -> datetime:
    """Turn epoch seconds into UTC, refusing times before `earliest` or too far ahead of `now`."""
    if seconds > (now + ahead).timestamp():
        raise ParseError(f"{where}: timestamp in the future: {seconds:.0f} s")
    if seconds < earliest.timestamp():
        raise ParseError(
            f"{where}: timestamp before {earliest.date().isoformat()}: {seconds:.0f} s"
        )
    return datetime.fromtimestamp(seconds, UTC)


def floor_minute(ts: datetime) -> datetime:
    """Stamp snapshots on the minute, so repeated polls of one minute replace each other."""
    return ts.replace(second=0, microsecond=0)


def round_minute(ts: datetime) -> datetime:
    """Snap settlement times carrying ms jitter (…600007, …599998) onto their real minute."""
    return floor_minute(ts + timedelta(seconds=30))


def to_ms(ts: datetime) -> int:
    """Epoch milliseconds, as exchange query parameters want them."""
    return int(ts.timestamp() * 1000)
