"""`stablewatch check`'s series check: a rule on a series nothing writes stays silent forever."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path

from bot.config import Settings
from bot.engine.ruleset import RuleIssue, RuleSet
from bot.keys import source_up_key
from bot.sources import known_series, registry


def _written(series: str, patterns: Sequence[str]) -> bool:
    """Whether a pattern of an enabled source (or the derive step) covers the key."""
    return any(fnmatchcase(series, pattern) for pattern in patterns)


def _hint(series: str, candidates: Iterable[str]) -> str:
    """`; did you mean k?` naming the closest known key (not a pattern), if one is close."""
    keys = sorted({c for c in candidates if not any(ch in c for ch in "*?[")})
    close = difflib.get_close_matches(series, keys, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def unwritten_series(
    ruleset: RuleSet, patterns: Sequence[str], stored: Iterable[str]
) -> list[RuleIssue]:
    """One positioned issue per series rule whose series no source writes and the store lacks."""
    held = set(stored)
    issues = []
    for rule in ruleset.series_rules():
        if rule.series in held or _written(rule.series, patterns):
            continue
        path, line, col = ruleset.series_at.get(rule.id, (Path("?"), 1, 1))
        text = (
            f"rule '{rule.id}': series: no enabled source writes {rule.series!r} and the store"
            f" holds no such series{_hint(rule.series, [*patterns, *held])}"
        )
        issues.append(RuleIssue(path, line, col, text))
    return issues


def _absent(url: str) -> bool:
    """A SQLite file that does not exist yet: `check` must not create one by opening it."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file()


async def _stored(url: str) -> list[str] | None:
    """The store's series names; None when it cannot be opened."""
    from bot.store import open_store

    try:
        async with open_store(url) as store:
            return await store.series_names()
    except Exception as exc:  # any failure only skips the store half of the check
        first = (str(exc).splitlines() or [""])[0]
        print(
            f"note: store not read, series checked against sources only: {first}", file=sys.stderr
        )
        return None


def series_issues(settings: Settings, ruleset: RuleSet) -> list[RuleIssue]:
    """The series check against the enabled sources and, when it can be opened, the store."""
    import asyncio

    # the health of a disabled source is a deliberate rule (rules/health.yaml), not a typo
    patterns = [*known_series(settings), *(source_up_key(name) for name in registry())]
    pending = [r for r in ruleset.series_rules() if not _written(r.series, patterns)]
    url = settings.store.url
    stored = asyncio.run(_stored(url)) if pending and not _absent(url) else None
    return unwritten_series(ruleset, patterns, stored or [])
