"""Farside Investors' US spot ETF flow tables (HTML, US$m) → `etf.<asset>.net_flow[.<ticker>]`."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser

from bot.config import Settings, SourceSettings
from bot.keys import FUTURE_SLACK_DAILY, etf_flow_key
from bot.model import Observation
from bot.sources import ParseError, SourceError
from bot.sources.http import HttpClient

log = logging.getLogger(__name__)

RECENT_PATHS = {"btc": "/btc/", "eth": "/eth/"}
ALL_DATA_PATHS = {"btc": "/bitcoin-etf-flow-all-data/", "eth": "/ethereum-etf-flow-all-data/"}
HEADERS = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en-GB,en;q=0.8"}

LOOKBACK_SESSIONS = 10
"""A day's total waits for every fund that reported in this many previous sessions."""
TOTAL_TOLERANCE = Decimal("0.15")
"""US$m: the printed Total may differ from the sum of one-decimal fund cells by rounding."""
_MAX_MUSD = Decimal(1_000_000)
"""US$m: no fund moves a trillion dollars in a day; bigger means we misread the page."""
_NO_READING = frozenset({"", "-", "–", "—"})
_NUMBER = re.compile(r"(\()?(-)?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(\))?", re.ASCII)
_DATE = re.compile(r"(\d{1,2}) ([A-Za-z]{3,9}) (\d{4})", re.ASCII)
_SPAN = re.compile(r"\s*([1-9]\d?)\s*", re.ASCII)
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_CHALLENGE_MARKERS = (
    "<title>just a moment",
    "attention required! | cloudflare",
    "cf-chl",
    "cf_chl",
    "challenge-form",
)


# reading the HTML ---------------------------------------------------------------------------------
@dataclass
class _Table:
    """One `<table>` as rows of cell texts (whitespace collapsed, colspans expanded)."""

    classes: frozenset[str]
    rows: list[list[str]] = field(default_factory=list)


class _TableReader(HTMLParser):
    """Collect every table's cell texts; tolerant of omitted end tags and nested tables."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[_Table] = []
        self._open: list[_Table] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._span = 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._end_row()
            table = _Table(frozenset((dict(attrs).get("class") or "").split()))
            self.tables.append(table)
            self._open.append(table)
        elif tag == "tr" and self._open:
            self._end_row()
            self._row = []
        elif tag in ("td", "th") and self._open:
            if self._row is None:
                self._row = []
            self._end_cell()
            self._cell = []
            span = _SPAN.fullmatch(dict(attrs).get("colspan") or "")
            self._span = int(span[1]) if span else 1
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._open:
            self._end_row()
            self._open.pop()
        elif tag == "tr":
            self._end_row()
        elif tag in ("td", "th"):
            self._end_cell()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def _end_cell(self) -> None:
        if self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._row.extend([""] * (self._span - 1))
        self._cell = None

    def _end_row(self) -> None:
        self._end_cell()
        if self._row is not None and self._open:
            self._open[-1].rows.append(self._row)
        self._row = None


def _read_tables(html: str) -> list[_Table]:
    """Parse the page; the stdlib parser asserts on some malformed markup, which is bad input."""
    reader = _TableReader()
    try:
        reader.feed(html)
        reader.close()
    except AssertionError as exc:
        raise ParseError(f"farside: malformed HTML: {exc}") from None
    return reader.tables


# finding the flow table ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Layout:
    """Which column holds what, found by header text, never by position."""

    date: int
    total: int
    funds: tuple[tuple[int, str], ...]
    unnamed: tuple[int, ...]
    width: int


def _layout(header: list[str]) -> _Layout | None:
    """Read a header row with a `Date` cell; an unlabelled last column is the total (ETH page)."""
    names = [cell.strip().lower() for cell in header]
    if "date" not in names:
        return None
    date_col = names.index("date")
    total = names.index("total") if "total" in names else None
    last = len(header) - 1
    if total is None and last != date_col and not _ticker(header[last]):
        total = last
    if total is None:
        return None
    funds: list[tuple[int, str]] = []
    unnamed: list[int] = []
    for col, cell in enumerate(header):
        if col in (date_col, total):
            continue
        ticker = _ticker(cell)
        if not ticker:
            unnamed.append(col)
        elif ticker in {t for _, t in funds}:
            raise ParseError(f"farside: fund {cell!r} appears twice in the header")
        else:
            funds.append((col, ticker))
    return _Layout(date_col, total, tuple(funds), tuple(unnamed), len(header))


def _ticker(cell: str) -> str:
    """A fund's ticker from its header cell (`IBIT`, `IBIT*`), lower case for series keys."""
    return re.sub(r"[^A-Za-z0-9]", "", cell).lower()


def _flow_table(tables: list[_Table]) -> tuple[_Layout, list[list[str]]] | None:
    """Pick the table whose header has Date and Total, preferring Farside's `etf` class."""
    found: list[tuple[bool, _Layout, list[list[str]]]] = []
    for table in tables:
        for index, row in enumerate(table.rows[:8]):
            layout = _layout(row)
            if layout is not None:
                found.append(("etf" in table.classes, layout, table.rows[index + 1 :]))
                break
    if not found:
        return None
    found.sort(key=lambda item: not item[0])
    return found[0][1], found[0][2]


def _is_challenge(html: str) -> bool:
    """Cloudflare's interstitial; normal pages also load its scripts, so only without a table."""
    head = html[:20000].lower()
    return any(marker in head for marker in _CHALLENGE_MARKERS)


# reading cells ------------------------------------------------------------------------------------
def _date(text: str) -> date | None:
    """`11 Jan 2024` → a date; non-dates (Total, Average, Fee) → None; bad dates fail."""
    if not text[:1].isascii() or not text[:1].isdigit():
        return None
    match = _DATE.fullmatch(text)
    month = _MONTHS.get(match[2].lower()) if match else None
    if match is None or month is None:
        raise ParseError(f"farside: expected a date like 11 Jan 2024, found {text!r}")
    try:
        return date(int(match[3]), month, int(match[1]))
    except ValueError:
        raise ParseError(f"farside: no such date: {text!r}") from None


def _musd(text: str, where: str) -> Decimal | None:
    """`1,234.5` and `(95.1)` → US$m; `-` or blank is no reading (None), never zero."""
    if text in _NO_READING:
        return None
    match = _NUMBER.fullmatch(text)
    if match is None or bool(match[1]) != bool(match[5]) or (match[1] and match[2]):
        raise ParseError(f"farside: {where}: expected US$m like 1,234.5 or (95.1), found {text!r}")
    value = Decimal(match[3].replace(",", "") + (match[4] or ""))
    if value > _MAX_MUSD:
        raise ParseError(f"farside: {where}: implausible flow of US${text}m")
    return -value if match[1] or match[2] else value


@dataclass(frozen=True, slots=True)
class _Day:
    """One dated row: each fund's US$m (None = no reading yet) and the printed Total."""

    day: date
    funds: dict[str, Decimal | None]
    printed_total: Decimal | None

    @property
    def reported(self) -> frozenset[str]:
        """Funds with a number this day."""
        return frozenset(t for t, v in self.funds.items() if v is not None)


def _cell(row: list[str], col: int) -> str:
    return row[col] if col < len(row) else ""


def _day(row: list[str], layout: _Layout, day: date) -> _Day:
    """Read one dated row; a number in a column without a ticker cannot be attributed."""
    label = day.isoformat()
    if any(cell not in _NO_READING for cell in row[layout.width :]):
        raise ParseError(f"farside: {label}: row has more cells than the header")
    for col in layout.unnamed:
        if _cell(row, col) not in _NO_READING:
            raise ParseError(f"farside: {label}: column {col + 1} has a number but no ticker")
    funds = {t: _musd(_cell(row, col), f"{label} {t.upper()}") for col, t in layout.funds}
    return _Day(day, funds, _musd(_cell(row, layout.total), f"{label} Total"))


def _days(rows: list[list[str]], layout: _Layout, now: datetime) -> list[_Day]:
    """Every dated row, oldest first; footer rows skipped; duplicates and future dates fail."""
    days: dict[date, _Day] = {}
    for row in rows:
        day = _date(_cell(row, layout.date))
        if day is None:
            continue
        if day in days:
            raise ParseError(f"farside: date {day.isoformat()} appears twice")
        days[day] = _day(row, layout, day)
    if not days:
        raise ParseError("farside: flow table has no dated rows")
    newest = max(days)
    if _midnight(newest) > now + FUTURE_SLACK_DAILY:
        raise ParseError(f"farside: date in the future: {newest.isoformat()}")
    return [days[d] for d in sorted(days)]


# turning days into observations -------------------------------------------------------------------
def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _usd(musd: Decimal) -> float:
    """US$m → USD rounded to cents, computed in decimal so 675.8 is exactly 675,800,000."""
    return float((musd * 1_000_000).quantize(Decimal("0.01"))) + 0.0  # no -0.0


def series_key(asset: str, primary: bool, fund: str | None = None) -> str:
    """The configured ETF provider owns `etf.<asset>.net_flow`; Farside otherwise keeps its own."""
    return etf_flow_key(asset, fund, provider=None if primary else "farside")


@dataclass(frozen=True, slots=True)
class FarsidePage:
    """What one page yielded, plus what a careful reader should hear about."""

    observations: list[Observation]
    withheld: list[tuple[date, tuple[str, ...]]]
    """Days whose total waits for these funds (partially reported days)."""
    warnings: list[str]
    """Printed totals that disagree with the sum of the fund cells."""


def _expected(days: list[_Day], index: int) -> frozenset[str]:
    """Funds that reported a number in any of the previous sessions (days with any number)."""
    sessions = [d for d in days[:index] if d.reported][-LOOKBACK_SESSIONS:]
    return frozenset().union(*(d.reported for d in sessions))


def _check_total(day: _Day, total: Decimal, asset: str) -> list[str]:
    """Compare the sum with the printed Total; a mismatch is worth a log line, not a failure."""
    if day.printed_total is None or abs(total - day.printed_total) <= TOTAL_TOLERANCE:
        return []
    return [
        f"farside {asset} {day.day.isoformat()}: funds sum to {total}, "
        f"Total column says {day.printed_total}; using the sum"
    ]


def _observations(days: list[_Day], asset: str, primary: bool) -> FarsidePage:
    """Each fund's number, and the day's total once no recently active fund is still `-`."""
    page = FarsidePage([], [], [])
    for index, day in enumerate(days):
        ts = _midnight(day.day)
        for ticker, value in day.funds.items():
            if value is not None:
                key = series_key(asset, primary, ticker)
                page.observations.append(Observation(key, ts, _usd(value)))
        if not day.reported:
            continue  # a holiday, or a day nobody has reported yet
        missing = _expected(days, index) - day.reported
        if missing:
            page.withheld.append((day.day, tuple(sorted(missing))))
            continue
        total = sum((v for v in day.funds.values() if v is not None), Decimal(0))
        page.warnings.extend(_check_total(day, total, asset))
        page.observations.append(Observation(series_key(asset, primary), ts, _usd(total)))
    return page


def parse_page(html: str, asset: str, now: datetime, *, primary: bool = True) -> FarsidePage:
    """Read a Farside flow page; a day's total is written only once every active fund reported."""
    found = _flow_table(_read_tables(html))
    if found is None:
        if _is_challenge(html):
            raise ParseError("farside: Cloudflare challenge page")
        raise ParseError("farside: no flow table found")
    layout, rows = found
    return _observations(_days(rows, layout, now), asset, primary)


def parse(html: str, asset: str, now: datetime, *, primary: bool = True) -> list[Observation]:
    """Observations of one Farside page, oldest first; any doubt is a ParseError."""
    return parse_page(html, asset, now, primary=primary).observations


# the source ---------------------------------------------------------------------------------------
class FarsideSource:
    """Polls the recent-flows pages; backfills from the since-launch pages."""

    name = "farside"

    def __init__(self, settings: SourceSettings, app: Settings) -> None:
        self.settings = settings
        self.assets = [a for a in app.markets.assets if a in RECENT_PATHS]
        self.primary = app.etf.provider == "farside"

    def writes(self) -> list[str]:
        """Each asset's total flow and one series per fund, whose tickers the page decides."""
        totals = [series_key(asset, self.primary) for asset in self.assets]
        return [*totals, *(f"{key}.*" for key in totals)]

    async def _page(self, http: HttpClient, path: str, asset: str, now: datetime) -> FarsidePage:
        """Fetch and parse one page; errors name the page, since one poll reads several."""
        try:
            html = await http.get_text(
                f"{self.settings.base_url}{path}",
                headers=HEADERS,
                timeout=self.settings.timeout.total_seconds(),
                retries=self.settings.retries,
            )
        except SourceError as exc:
            raise type(exc)(f"farside {path}: {exc}", permanent=exc.permanent) from exc
        page = parse_page(html, asset, now, primary=self.primary)
        for day, funds in page.withheld:
            log.debug("farside %s %s: total waits for %s", asset, day, ", ".join(funds).upper())
        for warning in page.warnings:
            log.info("%s", warning)  # repeats each poll while the day is on the page
        return page

    async def _fetch(
        self, http: HttpClient, paths: dict[str, str], now: datetime
    ) -> list[Observation]:
        pages = await asyncio.gather(*(self._page(http, paths[a], a, now) for a in self.assets))
        return [point for page in pages for point in page.observations]

    async def poll(self, http: HttpClient, now: datetime) -> list[Observation]:
        """Fetch the recent pages; a day completed since the last poll gets its total now."""
        return await self._fetch(http, RECENT_PATHS, now)

    async def backfill(
        self, http: HttpClient, now: datetime, since: datetime | None
    ) -> list[Observation]:
        """Fetch every day since launch (BTC 2024-01-11, ETH 2024-07-23)."""
        points = await self._fetch(http, ALL_DATA_PATHS, now)
        return [p for p in points if since is None or p.ts >= since]
