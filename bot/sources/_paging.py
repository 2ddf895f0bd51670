"""How venue history is paged: by time forward or backward, or by a cursor, within a budget."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

log = logging.getLogger(__name__)

MAX_PAGES = 10
"""History pages per series per backfill: bounded, so a huge `since` cannot hammer a venue."""
LOOKBACK = timedelta(days=90)
"""How far back a backfill without `since` reaches (OKX keeps three months of funding)."""

Cursor = TypeVar("Cursor")
Row = TypeVar("Row")


def history_start(now: datetime, since: datetime | None) -> datetime:
    """Where a backfill starts: `since`, or a fixed lookback; never after now."""
    return min(since or now - LOOKBACK, now)


def forward_start(start: datetime, now: datetime, spacing: timedelta, page_rows: int) -> datetime:
    """Move a forward pager's start up so its page budget, rows `spacing` apart, reaches now."""
    return max(start, now - MAX_PAGES * page_rows * spacing)


def next_forward(times: list[datetime], cursor: datetime, page_rows: int) -> datetime | None:
    """After a full page that moved forward, continue a minute past its newest row; else stop."""
    if len(times) < page_rows or max(times) < cursor:
        return None
    return max(times) + timedelta(minutes=1)


def next_backward(
    times: list[datetime], cursor: datetime, page_rows: int, start: datetime
) -> datetime | None:
    """After a full page that moved back but not past `start`, continue before its oldest row."""
    if len(times) < page_rows or min(times) <= start or min(times) > cursor:
        return None
    return min(times) - timedelta(minutes=1)


async def collect_pages(
    fetch: Callable[[Cursor], Awaitable[tuple[list[Row], Cursor | None]]],
    first: Cursor,
    what: str,
    max_pages: int = MAX_PAGES,
) -> list[Row]:
    """Follow a venue's paging until it says stop (cursor None) or the page budget is spent."""
    rows: list[Row] = []
    cursor: Cursor | None = first
    for _ in range(max_pages):
        if cursor is None:
            return rows
        page, cursor = await fetch(cursor)
        rows.extend(page)
    if cursor is not None:
        log.info("%s: stopped after %d pages; older history was not fetched", what, max_pages)
    return rows


@dataclass(frozen=True, slots=True)
class Paging:
    """How one history endpoint pages by time: rows in a full page, which way, how far back."""

    rows: int
    forward: bool
    """Forward pages start at a cursor and run to now; backward pages end at a cursor."""
    kept: timedelta | None = None
    """How far back the endpoint serves at all; None when it serves whatever is asked."""

    def since(self, start: datetime, now: datetime) -> datetime:
        """Where this endpoint's history starts: `start`, clipped to what it keeps."""
        return start if self.kept is None else max(start, now - self.kept)

    def first(self, start: datetime, now: datetime, spacing: timedelta) -> datetime:
        """The first cursor: `start` (moved up so the page budget reaches now), or now."""
        return forward_start(start, now, spacing, self.rows) if self.forward else now

    def after(self, times: list[datetime], cursor: datetime, start: datetime) -> datetime | None:
        """The cursor after a page whose rows are at `times`; None to stop."""
        if self.forward:
            return next_forward(times, cursor, self.rows)
        return next_backward(times, cursor, self.rows, start)


async def paged(
    paging: Paging,
    fetch: Callable[[datetime, datetime], Awaitable[list[Row]]],
    when: Callable[[Row], datetime],
    start: datetime,
    now: datetime,
    spacing: timedelta,
    what: str,
) -> list[Row]:
    """Read a history endpoint page by page: `fetch(cursor, start)` asks, `paging` moves on."""
    start = paging.since(start, now)

    async def page(cursor: datetime) -> tuple[list[Row], datetime | None]:
        rows = await fetch(cursor, start)
        return rows, paging.after([when(row) for row in rows], cursor, start)

    return await collect_pages(page, paging.first(start, now, spacing), what)
