"""The real python-telegram-bot application started against the fake Bot API, and a fake runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.config import Settings, TelegramSettings
from bot.delivery.pacer import Pacer, loop_time
from bot.engine.loader import load_rules
from bot.engine.ruleset import RuleSet
from bot.model import Clock
from bot.store import Store
from bot.telegram.app import TelegramApp, build_application, start_telegram, stop_telegram
from bot.telegram.service import Service
from tests.harness.clock import SteppingClock
from tests.harness.fake_telegram import FakeTelegram, Sent
from tests.harness.files import ROOT

TOKEN = "123456:TEST-token_abc"
BOT = "stablewatch_test_bot"
POLL = 0.5  # seconds; stop cancels the long poll, so this only bounds idle round trips
RULES = load_rules(ROOT / "rules")


@dataclass
class FakeService:
    """The runtime as commands see it, with a reload outcome chosen by the test."""

    clock: SteppingClock
    rules: RuleSet = RULES
    problems: list[str] = field(default_factory=list)
    settings: Settings = field(
        default_factory=lambda: Settings(_env_file=None)  # type: ignore[call-arg]
    )

    def rule_set(self) -> RuleSet:
        return self.rules

    def now(self) -> datetime:
        return self.clock()

    async def reload(self) -> tuple[bool, list[str]]:
        return not self.problems, list(self.problems)


def pacer_clock(clock: Clock) -> Callable[[], float]:
    """The loop's time plus however far the test stepped its clock: flood waits pass with it."""
    if not isinstance(clock, SteppingClock):
        return loop_time
    start = clock.now
    return lambda: loop_time() + (clock.now - start).total_seconds()


def quick_pacer(clock: Clock) -> Pacer:
    """Telegram's limits loosened a thousandfold: tests of behaviour don't wait on pacing."""
    return Pacer(1000, 1000, 60_000, clock=pacer_clock(clock))


def telegram_settings(tg: FakeTelegram, **overrides: Any) -> TelegramSettings:
    """Settings pointing the bot at the fake Bot API."""
    return TelegramSettings.model_validate({"token": TOKEN, "api_url": tg.api_url, **overrides})


@asynccontextmanager
async def running(
    tg: FakeTelegram,
    store: Store,
    clock: Clock | None = None,
    *,
    service: Service | None = None,
    pacer: Pacer | None = None,
    **overrides: Any,
) -> AsyncIterator[TelegramApp]:
    """The application polling the fake; the clock defaults to the service's, else a fixed one.

    Sends are paced by `pacer`, by default `quick_pacer`: pass `Pacer.from_settings(...)` to
    test against Telegram's real limits.
    """
    if clock is None:
        clock = service.now if service is not None else SteppingClock(datetime(2025, 11, 1, 12))
    if pacer is None:
        stepping = service.clock if isinstance(service, FakeService) else clock
        pacer = quick_pacer(stepping)
    settings = telegram_settings(tg, **overrides)
    app = build_application(settings, store, clock, service=service, pacer=pacer)
    await start_telegram(app, poll_timeout=POLL)
    try:
        yield app
    finally:
        await stop_telegram(app)


async def ask(tg: FakeTelegram, chat: int, text: str, **kwargs: Any) -> Sent:
    """Send one command and return the bot's answer to it."""
    before = len(tg.sent(chat))
    tg.inject_message(chat, text, **kwargs)
    return (await tg.wait_for(before + 1, chat_id=chat))[-1]
