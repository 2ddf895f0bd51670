"""Burst benchmark: hundreds of people send /start in the same second; does everyone get an answer?

The real PTB application answers `/start` from a fake Bot API that allows 30 sends in any
sliding second, like Telegram at its limit, and answers 429 beyond it. Runs once with our
limiter (the pacer) and once with PTB's stock `AIORateLimiter()` on the same fake. Reports the
answers received, the 429s provoked and the seconds from the first /start to the last answer.
Then a burst of broadcasts through our limiter shows the share of the limit a fan-out reaches
(what `delivery.global_rate` is chosen for). Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from telegram.ext import AIORateLimiter, BaseRateLimiter

from bot.config import DeliverySettings, TelegramSettings
from bot.delivery.pacer import Lane, Pacer
from bot.store import open_store
from bot.telegram.app import TelegramApp, build_application, start_telegram, stop_telegram
from bot.telegram.limiter import RateLimitArgs
from tests.harness.fake_telegram import FakeTelegram, WaitTimeout

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TOKEN = "123:BURST"
QUIET = 5.0
"""Seconds without a new send after which the run counts as over."""


def now() -> datetime:
    return datetime.now(UTC)


async def watch(tg: FakeTelegram, expected: int, started: float, deadline: float) -> float:
    """Follow the sends until every chat is answered or none came for `QUIET` seconds."""
    last, seen = 0.0, 0
    while seen < expected:
        try:
            sent = await tg.wait_for(seen + 1, timeout=QUIET)
        except WaitTimeout:
            break
        seen, last = len(sent), time.perf_counter() - started
        if last > deadline:
            break
    return last


async def measure(
    chats: int, over: float, limit: int, limiter: BaseRateLimiter[Any] | None, rate: float
) -> dict[str, object]:
    """Send `chats` /start spread over `over` seconds; count what comes back."""
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            open_store(f"sqlite+aiosqlite:///{tmp}/burst.db") as store,
            FakeTelegram(token=TOKEN) as tg,
        ):
            settings = TelegramSettings.model_validate({"token": TOKEN, "api_url": tg.api_url})
            pacer = Pacer.from_settings(DeliverySettings(global_rate=rate))
            app = build_application(settings, store, now, pacer=pacer, rate_limiter=limiter)
            await start(app)
            await tg.wait_for_poll()
            tg.strict_window(limit, window=1.0)
            started = time.perf_counter()
            for chat in range(1, chats + 1):
                tg.inject_message(chat, "/start", first_name=f"U{chat}")
                await asyncio.sleep(over / chats)
            last = await watch(tg, chats, started, deadline=120.0)
            await stop_telegram(app)
            sent = tg.sent()
            throttled = tg.throttled
    answered = {int(s.chat_id) for s in sent if "subscribed" in s.text}
    return {
        "limiter": type(limiter).__name__ if limiter is not None else "PacedRateLimiter",
        "answered": len(answered),
        "unanswered": chats - len(answered),
        "error_replies": sum(1 for s in sent if "went wrong" in s.text),
        "http_429": throttled,
        "seconds_to_last_reply": round(last, 2),
        "sends_per_second": round(len(sent) / last, 2) if last else 0.0,
    }


async def start(app: TelegramApp) -> None:
    """Start polling, then keep start-up objects out of full collections, as the runtime does."""
    await start_telegram(app, poll_timeout=1.0)
    gc.collect()
    gc.freeze()


async def fan_out(messages: int, limit: int, rate: float) -> dict[str, object]:
    """Broadcast to `messages` chats at once through our limiter; how close to the limit?"""
    broadcast: RateLimitArgs = {"lane": Lane.BROADCAST}
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            open_store(f"sqlite+aiosqlite:///{tmp}/burst.db") as store,
            FakeTelegram(token=TOKEN) as tg,
        ):
            settings = TelegramSettings.model_validate({"token": TOKEN, "api_url": tg.api_url})
            pacer = Pacer.from_settings(DeliverySettings(global_rate=rate))
            app = build_application(settings, store, now, pacer=pacer)
            await start(app)
            tg.strict_window(limit, window=1.0)
            started = time.perf_counter()
            sends = [
                app.bot.send_message(chat, "alert", rate_limit_args=broadcast)
                for chat in range(1_000_001, 1_000_001 + messages)
            ]
            outcomes = await asyncio.gather(*sends, return_exceptions=True)
            wall = time.perf_counter() - started
            await stop_telegram(app)
            throttled = tg.throttled
    delivered = sum(1 for outcome in outcomes if not isinstance(outcome, BaseException))
    return {
        "messages": messages,
        "delivered": delivered,
        "http_429": throttled,
        "messages_per_second": round(delivered / wall, 2),
        "fraction_of_limit": round(delivered / wall / limit, 3),
        "global_rate": rate,
    }


async def run(
    chats: int, over: float, limit: int, rate: float, broadcasts: int
) -> dict[str, object]:
    ours = await measure(chats, over, limit, None, rate)
    stock = await measure(chats, over, limit, AIORateLimiter(), rate)
    fan = await fan_out(broadcasts, limit, rate)
    return {
        "benchmark": "burst",
        "chats": chats,
        "starts_over_seconds": over,
        "telegram_limit": f"{limit} sends in any sliding second",
        "ours": {**ours, "global_rate": rate},
        "ptb_aioratelimiter": stock,
        "broadcasts": fan,
        "goal": {
            "ours": {"unanswered": 0, "http_429": 0},
            "broadcasts": {"fraction_of_limit": 0.97, "http_429": 0},
        },
    }


def main() -> None:
    """Run the benchmark and write bench/results/burst.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--over", type=float, default=1.0, help="seconds the /starts span")
    parser.add_argument("--limit", type=int, default=30, help="the fake's sends a second")
    parser.add_argument(
        "--rate", type=float, default=DeliverySettings().global_rate, help="our global_rate"
    )
    parser.add_argument("--broadcasts", type=int, default=900, help="messages in the fan-out")
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    logging.basicConfig(level=logging.WARNING)
    # PTB's limiter logs every re-raised 429 at ERROR and our error handler logs the failed
    # reply; hundreds of tracebacks would bury the result.
    for noisy in ("telegram.ext.AIORateLimiter", "bot.telegram.app"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    result = asyncio.run(run(args.chats, args.over, args.limit, args.rate, args.broadcasts))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "burst.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
