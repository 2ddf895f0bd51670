"""What chat commands need from the running bot, as a tiny protocol so tests can fake it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.config import Settings
from bot.engine.ruleset import RuleSet


class Service(Protocol):
    """The runtime as commands see it: settings, the live rule set, a forced reload, the clock."""

    @property
    def settings(self) -> Settings:
        """The whole configuration (`/status` needs the sources' intervals)."""
        ...

    def rule_set(self) -> RuleSet:
        """The rules running now; replaced wholesale on reload, so read it per command."""
        ...

    async def reload(self) -> tuple[bool, list[str]]:
        """Reload the rule files now; (accepted, problems) — a bad edit keeps the old rules."""
        ...

    def now(self) -> datetime:
        """The runtime's clock, so commands and alerts agree on time."""
        ...
