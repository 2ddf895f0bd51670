"""Fan-out benchmark: one alert to thousands of chats through the real delivery path.

A real SQLite store holds the subscriptions and one transition's outbox rows; the real PTB
application and TelegramNotifier send them through our OutboxWorker to the fake Bot API, which
allows 30 sends in any sliding second like Telegram at its limit. Reports the rate achieved
against that limit, the 429s provoked, messages lost or duplicated, and how long a person who
writes to the bot mid fan-out waits for the answer; then the same with python-telegram-bot's
stock AIORateLimiter. Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from telegram.ext import AIORateLimiter

from bot.config import DeliverySettings, TelegramSettings
from bot.delivery.outbox import OutboxWorker
from bot.delivery.pacer import Pacer
from bot.model import ChatKind, Delivery, Transition, TransitionKind
from bot.store import Store, open_store
from bot.telegram.app import build_application, start_telegram, stop_telegram
from bot.telegram.notifier import TelegramNotifier
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.store_rows import pending_outbox

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TOKEN = "123:FANOUT"
NEWCOMER = 42
"""A chat that writes to the bot in the middle of the fan-out."""


def now() -> datetime:
    return datetime.now(UTC)


async def prepare(store: Store, chats: int) -> list[str]:
    """Subscribe the chats and enqueue one firing alert for each of them."""
    ids = list(range(1_000_001, 1_000_001 + chats))
    for chat in ids:
        await store.subscribe(chat, ChatKind.PRIVATE, f"user {chat}", now())
    alert = Transition("btc_funding_flip", TransitionKind.FIRING, now(), -0.01, "funding flipped")
    text = "🚨 <b>BTC funding flipped negative</b>\n−0.010% on Binance, Bybit and OKX"
    at = now()
    deliveries = [Delivery(0, str(chat), text, at) for chat in ids]
    await store.record_evaluation([], [alert], deliveries, at)
    return [str(chat) for chat in ids]


async def measure(chats: int, limit: int, rate: float, *, stock: bool = False) -> dict[str, object]:
    """Drain one fan-out against a fake Telegram allowing `limit` sends in any one second.

    A chat that never wrote before sends /help five seconds in; its answer's delay is reported.
    `stock` swaps our pacer for python-telegram-bot's own `AIORateLimiter` (PTB's defaults).
    """
    delivery = DeliverySettings(global_rate=rate)
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store(f"sqlite+aiosqlite:///{tmp}/fanout.db") as store:
            expected = await prepare(store, chats)
            async with FakeTelegram(token=TOKEN) as tg:
                settings = TelegramSettings.model_validate({"token": TOKEN, "api_url": tg.api_url})
                limiter = AIORateLimiter() if stock else None
                app = build_application(
                    settings,
                    store,
                    now,
                    pacer=Pacer.from_settings(delivery),
                    rate_limiter=limiter,
                )
                await start_telegram(app, poll_timeout=1.0)
                worker = OutboxWorker(store, TelegramNotifier(app.bot), now, "bench", delivery)
                tg.strict_window(limit)
                started = time.perf_counter()
                drain = asyncio.create_task(worker.drain())
                await asyncio.sleep(5)
                asked = time.perf_counter()
                tg.inject_message(NEWCOMER, "/help")
                await tg.wait_for(1, chat_id=NEWCOMER, timeout=600)
                answered = time.perf_counter() - asked
                rows = await drain
                wall = time.perf_counter() - started
                await stop_telegram(app)
                received = Counter(
                    str(item.chat_id) for item in tg.sent() if item.chat_id != NEWCOMER
                )
                throttled = tg.throttled
            pending = await pending_outbox(store)
    delivered = sum(received.values())
    per_second = delivered / wall
    return {
        "limiter": "AIORateLimiter (PTB defaults)" if stock else "ours",
        "worker_global_rate": None if stock else rate,
        "rows_marked_sent": rows,
        "messages_delivered": delivered,
        "messages_per_second": round(per_second, 2),
        "fraction_of_limit": round(per_second / limit, 3),
        "http_429": throttled,
        "lost": sum(1 for chat in expected if received[chat] == 0),
        "duplicated": sum(max(0, received[chat] - 1) for chat in expected),
        "still_pending": pending,
        "wall_seconds": round(wall, 2),
        "newcomer_reply_seconds": round(answered, 2),
    }


def main() -> None:
    """Run the benchmark and write bench/results/fanout.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=3000)
    parser.add_argument("--limit", type=int, default=30, help="sends the fake takes per second")
    parser.add_argument("--rate", type=float, default=DeliverySettings().global_rate)
    parser.add_argument("--no-stock", action="store_true", help="skip PTB's AIORateLimiter run")
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)
    ours = asyncio.run(measure(args.chats, args.limit, args.rate))
    result: dict[str, object] = {
        "benchmark": "fanout",
        "chats": args.chats,
        "telegram_limit": f"{args.limit} sends in any sliding second",
        **ours,
        "goal": {"fraction_of_limit": 0.97, "http_429": 0, "lost": 0, "duplicated": 0},
    }
    if not args.no_stock:
        result["ptb_aioratelimiter"] = asyncio.run(
            measure(args.chats, args.limit, args.rate, stock=True)
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fanout.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
