"""The backtest chart: each series a rule reads, with its firing and resolving marks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bot.alerts.backtest import Event
from bot.engine.ruleset import RuleSet
from bot.engine.series import Series
from bot.keys import is_etf


def draw(path: Path, rules: RuleSet, data: Mapping[str, Series], events: Sequence[Event]) -> None:
    """Write a PNG; matplotlib is imported here only, with the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rule_series = {r.id: r.series for r in rules.series_rules()}
    keys = [k for k in dict.fromkeys(rule_series.values()) if len(data.get(k, Series.of([], [])))]
    fig, axes = plt.subplots(
        max(1, len(keys)), 1, figsize=(11, 2.6 * max(1, len(keys))), sharex=True, squeeze=False
    )
    for ax, key in zip(axes[:, 0], keys, strict=False):
        s = data[key]
        when = [datetime.fromtimestamp(int(t), UTC) for t in s.ts]
        if is_etf(key):
            colours = ["#2e7d32" if v >= 0 else "#c62828" for v in s.values]
            ax.bar(when, s.values, color=colours, width=0.8)
        else:
            ax.plot(when, s.values, color="#1565c0", linewidth=1.2)
        ax.axhline(0, color="#9e9e9e", linewidth=0.6)
        ax.set_title(key, loc="left", fontsize=10)
        ax.grid(alpha=0.25)
        for e in events:
            if rule_series.get(e.rule) != key:
                continue
            style = ("^", "#d32f2f") if e.state == "firing" else ("v", "#388e3c")
            y = e.value if e.value is not None else 0.0
            ax.scatter([e.at], [y], marker=style[0], color=style[1], s=60, zorder=3)
            ax.annotate(e.rule, (e.at, y), fontsize=7, xytext=(3, 6), textcoords="offset points")
    fig.suptitle("Stablewatch backtest: ▲ firing  ▼ resolved", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
