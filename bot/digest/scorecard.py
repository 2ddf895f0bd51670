"""The daily digest: a stabilization scorecard built purely from loaded data, then rendered."""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import partial
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.digest.staleness import Staleness, as_of
from bot.keys import (
    DEFAULT_ICON,
    FEAR_GREED,
    SEVERITY_ICONS,
    VENUES,
    etf_flow_key,
    funding_key,
    oi_key,
    total_oi_key,
    weighted_funding_key,
)
from bot.model import Transition, TransitionKind
from bot.numbers import pct, plain, signed, usd
from bot.store import AlertLog, Observations

Point = tuple[datetime, float]
HISTORY = timedelta(days=45)
"""How far back the loader reads: ~30 ETF sessions, and a month of the other series for charts."""
ETF_SESSIONS, TURN_WINDOW, VENUE_FRESH = 30, 10, timedelta(days=3)
MAX_ALERTS = 8


@dataclass(frozen=True, slots=True)
class AssetData:
    """One asset's raw series for the digest, each oldest first."""

    asset: str
    etf: tuple[Point, ...] = ()
    funding: tuple[Point, ...] = ()
    venues: tuple[tuple[str, float], ...] = ()
    oi: tuple[Point, ...] = ()


@dataclass(frozen=True, slots=True)
class DigestData:
    """Everything the digest and its chart read, so building them needs no store."""

    assets: tuple[AssetData, ...]
    fear_greed: tuple[Point, ...] = ()
    transitions: tuple[Transition, ...] = ()
    newest: tuple[tuple[str, datetime], ...] = ()
    """The newest point of each series with none in the loaded window, to say since when."""


@dataclass(frozen=True, slots=True)
class EtfLine:
    """ETF flows of one asset: the last session, sums, the streak and whether flows are one-way."""

    asset: str
    day: date
    last: float
    five_days: float
    sessions_in_five: int
    week: float
    streak: int
    sign_changes: int
    window: int
    as_of: date | None = None


@dataclass(frozen=True, slots=True)
class FuturesLine:
    """Funding and open interest of one asset; any part may be missing."""

    asset: str
    funding: float | None = None
    run: int = 0
    run_since: datetime | None = None
    venues: tuple[tuple[str, float], ...] = ()
    oi: float | None = None
    oi_24h: float | None = None
    oi_7d: float | None = None
    funding_as_of: date | None = None
    oi_as_of: date | None = None
    funding_since: date | None = None
    oi_since: date | None = None
    since: date | None = None
    """The newest of the asset's futures series when none is recent."""


@dataclass(frozen=True, slots=True)
class Sentiment:
    """The latest fear & greed reading and how far it moved."""

    value: float
    at: datetime
    day_change: float | None
    week_change: float | None
    as_of: date | None = None


@dataclass(frozen=True, slots=True)
class Digest:
    """The scorecard, ready to render; missing sections are empty, never invented."""

    at: datetime
    zone: str
    etf: tuple[EtfLine, ...] = ()
    futures: tuple[FuturesLine, ...] = ()
    sentiment: Sentiment | None = None
    alerts: tuple[Transition, ...] = field(default=())
    etf_since: tuple[tuple[str, date], ...] = ()
    sentiment_since: date | None = None


# building -------------------------------------------------------------------------------------


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def streak(values: Sequence[float]) -> int:
    """How many of the last values share the newest one's sign (0 when it is zero)."""
    if not values or _sign(values[-1]) == 0:
        return 0
    count = 0
    for v in reversed(values):
        if _sign(v) != _sign(values[-1]):
            break
        count += 1
    return count


def sign_changes(values: Sequence[float]) -> int:
    """Flips between inflow and outflow days; flat days neither break nor make a flip."""
    signs = [_sign(v) for v in values if _sign(v)]
    return sum(1 for a, b in itertools.pairwise(signs) if a != b)


def etf_line(asset: str, points: Sequence[Point]) -> EtfLine | None:
    """Summarise a daily flow series: 1 day, 5 sessions, this ISO week, turns in 10 sessions."""
    if not points:
        return None
    values = [v for _, v in points]
    last_day = points[-1][0].date()
    week = sum(v for t, v in points if t.date().isocalendar()[:2] == last_day.isocalendar()[:2])
    window = values[-TURN_WINDOW:]
    return EtfLine(
        asset,
        last_day,
        values[-1],
        sum(values[-5:]),
        len(values[-5:]),
        week,
        streak(values),
        sign_changes(window),
        len(window),
    )


def value_before(points: Sequence[Point], moment: datetime) -> float | None:
    """The last reading at or before a moment, for "vs a day ago" comparisons."""
    earlier = [v for t, v in points if t <= moment]
    return earlier[-1] if earlier else None


def _change(now: float, then: float | None) -> float | None:
    return None if then is None or then == 0 else now / then - 1


class _Check(Protocol):
    def __call__(self, series: str, newest: datetime) -> date | None: ...


def futures_line(data: AssetData) -> FuturesLine | None:
    """Funding with its run length, venue rates, and OI now vs 24 h and 7 d before."""
    if not data.funding and not data.oi and not data.venues:
        return None
    line = FuturesLine(data.asset, venues=data.venues)
    if data.funding:
        values = [v for _, v in data.funding]
        run = max(1, streak(values))
        since = data.funding[-run][0]
        line = FuturesLine(data.asset, values[-1], run, since, data.venues)
    if data.oi:
        at, now = data.oi[-1]
        day = _change(now, value_before(data.oi, at - timedelta(hours=24)))
        week = _change(now, value_before(data.oi, at - timedelta(days=7)))
        return FuturesLine(
            data.asset, line.funding, line.run, line.run_since, line.venues, now, day, week
        )
    return line


def sentiment(points: Sequence[Point]) -> Sentiment | None:
    """The newest fear & greed value and its change vs a day and a week before it."""
    if not points:
        return None
    at, now = points[-1]
    day, week = (value_before(points, at - timedelta(days=d)) for d in (1, 7))
    return Sentiment(
        now, at, None if day is None else now - day, None if week is None else now - week
    )


def _dated_futures(
    line: FuturesLine, data: AssetData, newest: dict[str, datetime], check: _Check
) -> FuturesLine:
    """A futures line with the date of each stale part, and since when a missing part is gone."""
    funding, oi = weighted_funding_key(data.asset), total_oi_key(data.asset)
    old_funding, old_oi = newest.get(funding), newest.get(oi)
    return replace(
        line,
        funding_as_of=check(funding, data.funding[-1][0]) if data.funding else None,
        oi_as_of=check(oi, data.oi[-1][0]) if data.oi else None,
        funding_since=None if old_funding is None else old_funding.date(),
        oi_since=None if old_oi is None else old_oi.date(),
    )


def build_digest(
    data: DigestData, now: datetime, tz: str, staleness: Staleness | None = None
) -> Digest:
    """Turn loaded series into the scorecard; pure, so it is tested on real market data."""
    check: _Check = partial((staleness or Staleness()).note, now=now)
    newest = dict(data.newest)
    etf = tuple(
        replace(line, as_of=check(etf_flow_key(a.asset), a.etf[-1][0]))
        for a in data.assets
        if (line := etf_line(a.asset, a.etf)) is not None
    )
    etf_since = tuple(
        (a.asset, newest[etf_flow_key(a.asset)].date())
        for a in data.assets
        if not a.etf and etf_flow_key(a.asset) in newest
    )
    futures = tuple(
        _dated_futures(futures_of, a, newest, check)
        for a in data.assets
        if (futures_of := futures_line(a) or _gone(a, newest)) is not None
    )
    recent = tuple(t for t in data.transitions if now - timedelta(hours=24) <= t.at <= now)
    mood_now = sentiment(data.fear_greed)
    if mood_now is not None:
        mood_now = replace(mood_now, as_of=check(FEAR_GREED, mood_now.at))
    old_mood = newest.get(FEAR_GREED)
    return Digest(
        now.astimezone(ZoneInfo(tz)),
        tz,
        etf,
        futures,
        mood_now,
        recent,
        etf_since,
        None if old_mood is None else old_mood.date(),
    )


def _gone(data: AssetData, newest: dict[str, datetime]) -> FuturesLine | None:
    """An empty futures line for an asset whose funding and OI all stopped before the window."""
    found = [newest[k] for k in _futures_keys(data.asset) if k in newest]
    return FuturesLine(data.asset, since=max(found).date()) if found else None


def _futures_keys(asset: str) -> list[str]:
    """Every funding and OI series of an asset, derived first."""
    keys = [weighted_funding_key(asset), total_oi_key(asset)]
    return keys + [k for v in VENUES for k in (funding_key(asset, v), oi_key(asset, v))]


# rendering ------------------------------------------------------------------------------------


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 22nd: for "3rd day in a row"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def flow(value: float) -> str:
    """A flow with its direction: +$238.4M, −$903.1M."""
    return f"+{usd(value)}" if value > 0 else usd(value)


def change_pct(value: float | None) -> str:
    """A relative change with its sign and one decimal: +3.1 %, −12 %."""
    if value is None:
        return "n/a"
    text = pct(value, 1)
    return f"+{text}" if value > 0 and text != "0 %" else text


def _day(d: date) -> str:
    return f"{d:%a} {d.day} {d:%b}"


def _moment(at: datetime) -> str:
    return f"{at:%b} {at.day} {at:%H:%M} UTC"


def _stale(day: date | None, today: date) -> str:
    """What a stale line ends with; nothing for a fresh one, so fresh lines read as before."""
    return "" if day is None else f" · as of {as_of(day, today)}"


def _missing(since: date | None, today: date) -> str:
    """A missing part: "no data yet", or the newest date when there is old data."""
    return "no data yet" if since is None else f"no data since {as_of(since, today)}"


def _etf_text(line: EtfLine, today: date) -> str:
    name = html.escape(line.asset.upper())
    kind = "inflows" if line.last > 0 else "outflows"
    if line.streak == 1:
        run = f"first day of {kind}"
    elif line.streak:
        run = f"{kind}, {ordinal(line.streak)} day in a row"
    else:
        run = "flat"
    if line.sign_changes == 0:
        way = "one-way"
    else:
        turns = "sign change" if line.sign_changes == 1 else "sign changes"
        way = f"two-way, {line.sign_changes} {turns}"
    five = "5 days" if line.sessions_in_five == 5 else f"{line.sessions_in_five} days"
    return (
        f"<b>{name}</b> {_day(line.day)}: {flow(line.last)} ({run}){_stale(line.as_of, today)}\n"
        f"    {five} {flow(line.five_days)} · this week {flow(line.week)} · "
        f"last {line.window} sessions {way}"
    )


def _futures_text(line: FuturesLine, today: date) -> str:
    name = html.escape(line.asset.upper())
    if line.funding is None and line.oi is None and not line.venues and line.since:
        return f"<b>{name}</b>: {_missing(line.since, today)}"
    parts = [f"<b>{name}</b>"]
    if line.funding is not None and line.run_since is not None:
        side = "negative" if line.funding < 0 else "positive"
        readings = "reading" if line.run == 1 else "readings in a row"
        parts.append(
            f"funding {pct(line.funding)} (OI-weighted), {side} for {line.run} {readings} "
            f"since {_moment(line.run_since)}{_stale(line.funding_as_of, today)}"
        )
    else:
        parts.append(f"OI-weighted funding: {_missing(line.funding_since, today)}")
    if line.venues:
        venues = " · ".join(f"{html.escape(v)} {pct(r)}" for v, r in line.venues)
        parts.append(f"\n    {venues}")
    if line.oi is not None:
        parts.append(
            f"\n    open interest {usd(line.oi)}: 24 h {change_pct(line.oi_24h)}, "
            f"7 d {change_pct(line.oi_7d)}{_stale(line.oi_as_of, today)}"
        )
    else:
        parts.append(f"\n    open interest: {_missing(line.oi_since, today)}")
    return " ".join(parts[:2]) + "".join(parts[2:])


def mood(value: float) -> str:
    """alternative.me's classification of a fear & greed value."""
    for limit, name in ((25, "extreme fear"), (45, "fear"), (56, "neutral"), (76, "greed")):
        if value < limit:
            return name
    return "extreme greed"


def _sentiment_text(s: Sentiment, today: date) -> str:
    day = "n/a" if s.day_change is None else signed(s.day_change, 0)
    week = "n/a" if s.week_change is None else signed(s.week_change, 0)
    return (
        f"Fear &amp; Greed <b>{plain(s.value)}</b> ({mood(s.value)}) on {_day(s.at.date())}: "
        f"{day} vs a day before, {week} vs a week before{_stale(s.as_of, today)}"
    )


def _alert_text(t: Transition) -> str:
    message = t.message if len(t.message) <= 140 else t.message[:139] + "…"
    if t.kind is TransitionKind.RESOLVED:
        return f"✅ <b>{html.escape(t.rule_id)}</b> resolved: {html.escape(message)}"
    icon = SEVERITY_ICONS.get(t.severity, DEFAULT_ICON)
    return f"{icon} <b>{html.escape(t.rule_id)}</b>: {html.escape(message)}"


def _alerts_text(alerts: Sequence[Transition]) -> list[str]:
    if not alerts:
        return ["none"]
    lines = [_alert_text(t) for t in alerts[:MAX_ALERTS]]
    if len(alerts) > MAX_ALERTS:
        lines.append(f"… and {len(alerts) - MAX_ALERTS} more (/history)")
    return lines


def render_digest(d: Digest, title: str = "Stablewatch daily digest") -> str:
    """Telegram HTML with every value escaped; a missing section says "no data yet"."""
    when = f"{_day(d.at.date())}, {d.at:%H:%M} {html.escape(d.zone)}"
    lines = [f"📊 <b>{html.escape(title)}</b> · {when}", "", "<b>ETF flows</b>"]
    today = d.at.date()
    etf = [_etf_text(line, today) for line in d.etf]
    etf += [f"<b>{html.escape(a.upper())}</b>: {_missing(s, today)}" for a, s in d.etf_since]
    lines += etf or ["no data yet"]
    lines += ["", "<b>Futures</b>"]
    lines += [_futures_text(line, today) for line in d.futures] or ["no data yet"]
    lines += ["", "<b>Sentiment</b>"]
    lines.append(
        _sentiment_text(d.sentiment, today)
        if d.sentiment
        else f"Fear &amp; Greed: {_missing(d.sentiment_since, today)}"
    )
    lines += ["", "<b>Alerts, last 24 h</b>", *_alerts_text(d.alerts)]
    return "\n".join(lines)


# loading --------------------------------------------------------------------------------------


class DigestReads(Observations, AlertLog, Protocol):
    """What the digest reads: series for the scorecard and chart, transitions for its alerts."""


async def _points(
    store: Observations, series: str, since: datetime, now: datetime
) -> tuple[Point, ...]:
    return tuple((o.ts, o.value) for o in await store.observations(series, since, now))


async def _venues(store: Observations, asset: str, now: datetime) -> tuple[tuple[str, float], ...]:
    """The latest rate of each venue that reported within a few days."""
    found = []
    for venue in VENUES:
        latest = await store.latest(funding_key(asset, venue))
        if latest is not None and now - VENUE_FRESH <= latest.ts <= now:
            found.append((venue, latest.value))
    return tuple(found)


async def _asset(store: Observations, asset: str, now: datetime) -> AssetData:
    since = now - HISTORY
    etf = await _points(store, etf_flow_key(asset), since - HISTORY, now)
    return AssetData(
        asset,
        etf[-ETF_SESSIONS:],
        await _points(store, weighted_funding_key(asset), since, now),
        await _venues(store, asset, now),
        await _points(store, total_oi_key(asset), since, now),
    )


async def _newest(
    store: Observations, assets: Sequence[AssetData], fear_greed: Sequence[Point], now: datetime
) -> tuple[tuple[str, datetime], ...]:
    """The newest point, at or before now, of each digest series with nothing in its window."""
    empty = [FEAR_GREED] if not fear_greed else []
    for a in assets:
        empty += [etf_flow_key(a.asset)] if not a.etf else []
        if not a.funding and not a.oi and not a.venues:
            empty += _futures_keys(a.asset)
        else:
            empty += [weighted_funding_key(a.asset)] if not a.funding else []
            empty += [total_oi_key(a.asset)] if not a.oi else []
    found = []
    for series in empty:
        latest = await store.latest(series)
        if latest is not None and latest.ts <= now:
            found.append((series, latest.ts))
    return tuple(found)


async def load_digest_data(store: DigestReads, assets: Sequence[str], now: datetime) -> DigestData:
    """Read what the digest and its chart need; a few small queries per asset."""
    loaded = tuple([await _asset(store, a, now) for a in assets])
    fear_greed = await _points(store, FEAR_GREED, now - HISTORY, now)
    recent = [t for t in await store.transitions(200) if t.at >= now - timedelta(hours=24)]
    newest = await _newest(store, loaded, fear_greed, now)
    return DigestData(loaded, fear_greed, tuple(reversed(recent)), newest)
