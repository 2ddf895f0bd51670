"""Digest and series charts as PNG bytes; matplotlib is imported lazily with the Agg backend.

Figures are built with the object API (no pyplot), so charts share no global state and can be
drawn in a worker thread while the event loop keeps serving chats.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.digest.scorecard import AssetData, DigestData, Point
from bot.keys import is_etf

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

GREEN, RED, BLUE, GREY, ORANGE = "#2e7d32", "#c62828", "#1565c0", "#9e9e9e", "#ef6c00"
DAY = 86_400.0
LINE_COLOURS = (BLUE, ORANGE, "#6a1b9a", "#00838f")


def _figure(width: float, height: float) -> Figure:
    """A new Agg-backed figure; matplotlib is imported on first use only, never at start-up."""
    figure: Any = importlib.import_module("matplotlib.figure")
    fig: Figure = figure.Figure(figsize=(width, height))
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)  # a bare Figure draws with the Agg canvas
    return buffer.getvalue()


def _empty(ax: Axes, title: str) -> None:
    """A panel without data says so instead of drawing an empty frame."""
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
    ax.text(0.5, 0.5, "no data yet", ha="center", va="center", fontsize=13, color=GREY)
    ax.set_xticks([])
    ax.set_yticks([])


def _style(ax: Axes, title: str) -> None:
    """Big labels and a light grid, so a phone screen can read the panel."""
    dates: Any = importlib.import_module("matplotlib.dates")
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=10)
    ax.xaxis.set_major_formatter(dates.DateFormatter("%d %b"))
    for label in ax.get_xticklabels():
        label.set_rotation(0)


def _split(points: Sequence[Point]) -> tuple[list[float], list[float]]:
    """Times as matplotlib date numbers (days since 1970, its default epoch), values as they are."""
    return [t.timestamp() / DAY for t, _ in points], [v for _, v in points]


def _etf_panel(ax: Axes, data: AssetData) -> None:
    """Daily flows in $M as green/red bars, with the rolling 5-session sum as a line."""
    title = f"{data.asset.upper()} ETF daily net flows, $M (line: 5-day sum)"
    if not data.etf:
        _empty(ax, title)
        return
    when, values = _split(data.etf)
    millions = [v / 1e6 for v in values]
    ax.bar(when, millions, color=[GREEN if v >= 0 else RED for v in millions], width=0.8)
    five = [sum(millions[max(0, i - 4) : i + 1]) for i in range(len(millions))]
    ax.plot(when, five, color=BLUE, linewidth=2)
    ax.axhline(0, color=GREY, linewidth=0.8)
    _style(ax, title)


def _lines_panel(
    ax: Axes,
    title: str,
    series: Sequence[tuple[str, Sequence[Point]]],
    scale: float,
    *,
    zero_line: bool,
) -> None:
    """One line per asset, scaled (to % or $B); funding gets a zero line, OI keeps its range."""
    present = [(name, points) for name, points in series if points]
    if not present:
        _empty(ax, title)
        return
    for colour, (name, points) in zip(LINE_COLOURS, present, strict=False):
        when, values = _split(points)
        ax.plot(when, [v * scale for v in values], color=colour, linewidth=2, label=name.upper())
    if zero_line:
        ax.axhline(0, color=GREY, linewidth=0.8)
    ax.legend(fontsize=10, loc="upper left")
    _style(ax, title)


def _fear_greed_panel(ax: Axes, points: Sequence[Point]) -> None:
    """The index on its fixed 0–100 scale, with the extreme-fear zone shaded."""
    title = "Fear & Greed index"
    if not points:
        _empty(ax, title)
        return
    when, values = _split(points)
    ax.axhspan(0, 25, color=RED, alpha=0.08)
    ax.axhspan(75, 100, color=GREEN, alpha=0.08)
    ax.plot(when, values, color=ORANGE, linewidth=2, marker="o", markersize=3)
    ax.set_ylim(0, 100)
    _style(ax, title)


def render_chart(data: DigestData, now: datetime) -> bytes:
    """The digest's PNG: ETF flows per asset, OI-weighted funding, total OI, fear & greed."""
    rows = len(data.assets) + 3
    fig = _figure(8, 2.6 * rows)
    axes = fig.subplots(rows, 1, squeeze=False)
    panels = list(axes[:, 0])
    for ax, asset in zip(panels, data.assets, strict=False):
        _etf_panel(ax, asset)
    funding = [(a.asset, a.funding) for a in data.assets]
    oi = [(a.asset, a.oi) for a in data.assets]
    _lines_panel(panels[-3], "Funding, OI-weighted, % per 8 h", funding, 100, zero_line=True)
    _lines_panel(panels[-2], "Open interest, total, $B", oi, 1e-9, zero_line=False)
    _fear_greed_panel(panels[-1], data.fear_greed)
    fig.suptitle(f"Stablewatch · {now:%d %b %Y %H:%M} UTC", fontsize=13)
    # fixed margins: `tight_layout` would draw the whole figure once more just to measure it
    height = fig.get_figheight()
    fig.subplots_adjust(
        left=0.09, right=0.98, top=1 - 0.75 / height, bottom=0.35 / height, hspace=0.5
    )
    return _png(fig)


def render_series_chart(key: str, points: Sequence[Point], span: str) -> bytes:
    """One series over a range, for `/chart SERIES [RANGE]`; ETF flows as bars."""
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    title = f"{key} · last {span}"
    if not points:
        _empty(ax, title)
        return _png(fig)
    when, values = _split(points)
    if is_etf(key):
        ax.bar(when, values, color=[GREEN if v >= 0 else RED for v in values], width=0.8)
    else:
        ax.plot(when, values, color=BLUE, linewidth=2)
    if min(values) < 0 < max(values):
        ax.axhline(0, color=GREY, linewidth=0.8)
    _style(ax, title)
    fig.tight_layout()
    return _png(fig)
