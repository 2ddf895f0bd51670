"""A series rule's pure pipeline: transforms in order, then its condition."""

from __future__ import annotations

import numpy as np

from bot.engine import rules as r
from bot.engine import series as sx
from bot.engine.conditions import Evaluated, evaluate, holds


def transform(rule: r.SeriesRule, s: sx.Series, now: int) -> sx.Series:
    """Apply the rule's transforms; `now` closes resample buckets that have elapsed."""
    out = s.dropna()
    for step in rule.transform:
        match step:
            case r.Resample(resample=spec):
                every = (
                    int(spec.every.total_seconds())
                    if not isinstance(spec.every, str)
                    else spec.every
                )
                out = sx.resample(out, every, spec.how, rule.session_calendar, now)
            case r.Rolling(rolling=spec):
                amount, unit = r.span(spec.window)
                out = sx.rolling(out, amount, unit, spec.how)
            case r.PctChange(pct_change=spec):
                out = sx.pct_change(out, *r.span(spec.window))
            case r.Diff(diff=spec):
                out = sx.diff(out, *r.span(spec.window))
            case r.ZScore(zscore=spec):
                out = sx.zscore(out, *r.span(spec.window))
            case r.Abs():
                out = sx.absolute(out)
    return out.dropna()


def evaluate_rule(rule: r.SeriesRule, s: sx.Series, now: int) -> tuple[Evaluated, np.ndarray]:
    """Return the condition per point and the matching "resolved" flags (recover or not active)."""
    ev = evaluate(rule.condition, transform(rule, s, now))
    resolved = holds(rule.recover, ev.series.values) if rule.recover else ~ev.active
    return ev, resolved
