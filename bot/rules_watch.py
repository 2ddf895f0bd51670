"""Hot reload of rule files: notice a save within seconds, keep the last good set on a bad edit."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bot.engine.loader import load_rules
from bot.engine.ruleset import RuleSet

log = logging.getLogger(__name__)
Snapshot = tuple[tuple[str, int, int], ...]


def snapshot(directory: Path) -> Snapshot:
    """Names, modification times and sizes of the rule files: cheap to compare every second."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    out = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(out)


@dataclass
class Reload:
    """The outcome of a check: a new rule set to use, or problems to tell the admins."""

    rules: RuleSet | None = None
    problems: tuple[str, ...] = ()


class RulesWatcher:
    """Compares snapshots; on change loads the directory and accepts it only if it is clean."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seen = snapshot(directory)

    def check(self) -> Reload:
        """Return a new rule set after a good edit, problems after a bad one, else nothing."""
        current = snapshot(self.directory)
        if current == self._seen:
            return Reload()
        self._seen = current
        loaded = load_rules(self.directory)
        if loaded.issues:
            return Reload(None, tuple(str(issue) for issue in loaded.issues))
        return Reload(loaded)
