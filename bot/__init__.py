"""Stablewatch: a Telegram bot that watches crypto market-stabilization signals."""

__version__ = "0.1.0"
