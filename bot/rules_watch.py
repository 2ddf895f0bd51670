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

    def check(self, *, force: bool = False) -> Reload:
        """A new rule set after a good edit, problems after a bad one, else nothing.

        `force` loads even when no file changed (`/reload`), so a person asking always hears
        whether the files on disk are good.
        """
        current = snapshot(self.directory)
        if current == self._seen and not force:
            return Reload()
        self._seen = current
        loaded = load_rules(self.directory)
        if loaded.issues:
            return Reload(None, tuple(str(issue) for issue in loaded.issues))
        return Reload(loaded)


class LiveRules:
    """The rule set running now, and the one path that replaces it (file watcher and /reload)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._watcher = RulesWatcher(directory)
        self.current = RuleSet()

    def load(self) -> RuleSet:
        """Load at start: a broken file is logged and the rules of the other files still run."""
        self.current = load_rules(self.directory)
        for issue in self.current.issues:
            log.error("rules: %s", issue)
        log.info("loaded %d rule(s) from %s", len(self.current.rules), self.directory)
        return self.current

    def reload(self, *, force: bool = False) -> Reload:
        """Take a clean edit of the files; a set with any issue is refused and the old one kept."""
        result = self._watcher.check(force=force)
        if result.rules is not None:
            self.current = result.rules
            log.info("rules reloaded: %d rule(s)", len(result.rules.rules))
        elif result.problems:
            log.error("rule files not reloaded:\n%s", "\n".join(result.problems))
        return result
