"""A clock tests move by hand, injected wherever the bot asks for the time."""

from __future__ import annotations

from datetime import datetime, timedelta


class SteppingClock:
    """Nothing in the suite sleeps to make time pass: tests advance this clock instead."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now
