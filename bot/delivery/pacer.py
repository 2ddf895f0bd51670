"""Placeholder until the pacer lands: the two lanes every send goes through."""

from __future__ import annotations

import enum


class Lane(enum.IntEnum):
    """A person waiting for a reply goes before broadcast fan-out."""

    REPLY = 0
    BROADCAST = 1
