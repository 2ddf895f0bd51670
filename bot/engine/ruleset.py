"""A loaded set of rules, and the positioned issues found while loading it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.engine.rules import AnyRule, CompositeRule, SeriesRule


@dataclass(frozen=True)
class RuleIssue:
    """One problem in one rule file, with the position of the offending YAML node."""

    file: Path
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


@dataclass(frozen=True)
class RuleSet:
    """The rules loaded from a directory, and every issue found while loading them."""

    rules: tuple[AnyRule, ...] = ()
    issues: tuple[RuleIssue, ...] = field(default_factory=tuple)
    series_at: dict[str, tuple[Path, int, int]] = field(default_factory=dict)
    """Where each series rule's `series` value is written (file, line, column), by rule id."""

    def series_rules(self) -> list[SeriesRule]:
        """Rules that read a series."""
        return [r for r in self.rules if isinstance(r, SeriesRule)]

    def composites(self) -> list[CompositeRule]:
        """Composite rules, members before the composites that use them."""
        return [r for r in self.rules if isinstance(r, CompositeRule)]

    def get(self, rule_id: str) -> AnyRule | None:
        """A rule by id."""
        return next((r for r in self.rules if r.id == rule_id), None)
