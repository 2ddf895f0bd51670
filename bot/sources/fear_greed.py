"""alternative.me Crypto Fear & Greed Index → the `fear_greed` series (0–100, one point a day)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.config import Settings, SourceSettings
from bot.keys import FEAR_GREED, FUTURE_SLACK
from bot.model import Observation, from_epoch
from bot.sources import ParseError
from bot.sources.http import HttpClient

PATH = "/fng/"


def _point(item: Any, index: int) -> Observation:
    """Check one entry's types: `value` and `timestamp` arrive as strings of integers."""
    if not isinstance(item, dict):
        found = type(item).__name__
        raise ParseError(f"fear_greed: data[{index}]: expected an object, found {found}")
    raw_value, raw_ts = item.get("value"), item.get("timestamp")
    if not isinstance(raw_value, str | int) or isinstance(raw_value, bool):
        raise ParseError(f"fear_greed: data[{index}].value: expected a number, found {raw_value!r}")
    if not isinstance(raw_ts, str | int) or isinstance(raw_ts, bool):
        raise ParseError(
            f"fear_greed: data[{index}].timestamp: expected epoch seconds, found {raw_ts!r}"
        )
    try:
        value, seconds = int(str(raw_value).strip()), int(str(raw_ts).strip())
    except ValueError:
        raise ParseError(
            f"fear_greed: data[{index}]: expected integer value and epoch seconds, "
            f"found value={raw_value!r} timestamp={raw_ts!r}"
        ) from None
    if not 0 <= value <= 100:
        raise ParseError(f"fear_greed: data[{index}].value: expected 0–100, found {value}")
    if seconds > 10**11:
        raise ParseError(f"fear_greed: data[{index}].timestamp: looks like milliseconds: {seconds}")
    return Observation(FEAR_GREED, from_epoch(seconds), float(value))


def parse(payload: Any, now: datetime) -> list[Observation]:
    """Turn an /fng/ answer into observations, oldest first; any doubt is a ParseError."""
    if not isinstance(payload, dict):
        raise ParseError(f"fear_greed: expected a JSON object, found {type(payload).__name__}")
    metadata = payload.get("metadata")
    if isinstance(metadata, dict) and metadata.get("error"):
        raise ParseError(f"fear_greed: provider error: {metadata['error']}")
    data = payload.get("data")
    if not isinstance(data, list) or not data:
        raise ParseError("fear_greed: expected a non-empty `data` list")
    points = sorted((_point(item, i) for i, item in enumerate(data)), key=lambda p: p.ts)
    if points[-1].ts > now + FUTURE_SLACK:
        raise ParseError(f"fear_greed: timestamp in the future: {points[-1].ts.isoformat()}")
    return list({p.ts: p for p in points}.values())


class FearGreedSource:
    """Polls the newest reading; backfills the whole history (`limit=0`) on first start."""

    name = "fear_greed"

    def __init__(self, settings: SourceSettings, _app: Settings | None = None) -> None:
        self.settings = settings

    def writes(self) -> list[str]:
        """The one index series."""
        return [FEAR_GREED]

    async def _fetch(self, http: HttpClient, limit: int, now: datetime) -> list[Observation]:
        payload = await http.get_json(
            f"{self.settings.base_url}{PATH}",
            params={"limit": str(limit), "format": "json"},
            timeout=self.settings.timeout.total_seconds(),
            retries=self.settings.retries,
        )
        return parse(payload, now)

    async def poll(self, http: HttpClient, now: datetime) -> list[Observation]:
        """Fetch the last two days, so a late revision of yesterday is picked up too."""
        return await self._fetch(http, 2, now)

    async def backfill(
        self, http: HttpClient, now: datetime, since: datetime | None
    ) -> list[Observation]:
        """Fetch the full history; alternative.me returns it all for `limit=0`."""
        points = await self._fetch(http, 0, now)
        return [p for p in points if since is None or p.ts >= since]
