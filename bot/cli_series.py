"""`stablewatch series`: every stored series, its span, point count and the source writing it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.keys import VENUES

if TYPE_CHECKING:
    from bot.store import SeriesSpan

_HEALTH = re.compile(r"source\.([^.]+)\.up")
_HEADER = ("series", "first", "last", "points", "source")


def source_of(series: str, sources: dict[str, Sequence[str]], derived: Sequence[str]) -> str:
    """The enabled source whose patterns match the key, `derived`, or `imported`.

    A health key `source.<name>.up` names its source, enabled or not.
    """
    health = _HEALTH.fullmatch(series)
    if health:
        return health.group(1)
    for name, patterns in sources.items():
        if any(fnmatchcase(series, p) for p in patterns):
            return name
    if any(fnmatchcase(series, p) for p in derived):
        return "derived"
    return "imported"


def _writers(settings: Settings) -> tuple[dict[str, Sequence[str]], list[str]]:
    """Each enabled source's patterns, and the derived series of the configured assets."""
    from bot.sources import build_sources
    from bot.sources.derived import writes as derived_writes

    built = build_sources(settings.sources.enabled(), settings)
    return {s.name: s.writes() for s in built}, derived_writes(settings.markets.assets, VENUES)


def render(spans: Sequence[SeriesSpan], owners: Sequence[str], as_json: bool) -> list[str]:
    """The lines to print: an aligned table with a header, or one JSON object per series."""
    rows = [
        (s.series, s.first.isoformat(), s.last.isoformat(), str(s.points), owner)
        for s, owner in zip(spans, owners, strict=True)
    ]
    if as_json:
        return [
            json.dumps(
                {"series": r[0], "first": r[1], "last": r[2], "points": int(r[3]), "source": r[4]}
            )
            for r in rows
        ]
    table = [_HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
    return [
        "  ".join(
            cell.rjust(w) if i == 3 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    ]


async def _spans(url: str) -> list[SeriesSpan]:
    from bot.store import open_store

    async with open_store(url) as store:
        return await store.series_spans()


def series_command(settings: Settings, as_json: bool) -> int:
    """Print every stored series; a one-line note when the store holds none."""
    spans = asyncio.run(_spans(settings.store.url))
    if not spans:
        print("no series stored")
        return 0
    sources, derived = _writers(settings)
    owners = [source_of(s.series, sources, derived) for s in spans]
    for line in render(spans, owners, as_json):
        print(line)
    return 0
