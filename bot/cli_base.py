"""What every `stablewatch` command module shares, kept below them so they need not import cli."""

from __future__ import annotations

import argparse
from datetime import datetime

from bot.config import ConfigError, Settings, load_settings


class UsageError(Exception):
    """Bad arguments or configuration: print one line, exit 2."""


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings `--config` names; a bad file is a usage error, not a traceback."""
    try:
        return load_settings(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def date_arg(text: str) -> datetime:
    """An ISO date or time for argparse, with a message that shows the expected shape."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2025-10-01, found {text!r}"
        ) from None
