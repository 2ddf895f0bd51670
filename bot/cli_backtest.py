"""`stablewatch backtest`: its own module so bot/cli.py stays small."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli_base import UsageError, date_arg, settings_of
from bot.config import Settings

if TYPE_CHECKING:
    from bot.engine.series import Series


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `backtest` and its options on the `stablewatch` subparsers."""
    p = sub.add_parser("backtest", parents=[common], help="replay history through the rules")
    p.add_argument("--rules", type=Path, help="rules directory (default: rules.dir)")
    p.add_argument("--from", dest="from_date", type=date_arg, metavar="D")
    p.add_argument("--to", dest="to_date", type=date_arg, metavar="D", help="last day replayed")
    p.add_argument(
        "--rule",
        dest="rule_patterns",
        action="append",
        default=[],
        metavar="ID",
        help="only this rule (a glob like 'btc-*'); repeatable",
    )
    p.add_argument("--json", action="store_true", help="a JSON array of events")
    p.add_argument("--chart", type=Path, metavar="FILE.png", help="plot series and events")
    p.set_defaults(fn=cmd_backtest)


async def _load_history(settings: Settings, series: set[str]) -> dict[str, Series]:
    from bot.engine.series import Series
    from bot.store import open_store

    async with open_store(settings.store.url) as store:
        out = {}
        for key in sorted(series):
            out[key] = Series.of(*await store.series_arrays(key))  # arrays, no datetimes
        return out


def _progress() -> tuple[Callable[[str], None], Callable[[], None]]:
    """A rich progress line on a terminal; silence when output is piped."""
    if not sys.stderr.isatty():
        return (lambda _rule: None), (lambda: None)
    from rich.console import Console

    console = Console(stderr=True)
    status = console.status("replaying")
    status.start()
    return (lambda rule: status.update(f"replaying {rule}")), status.stop


def _window(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """`--from` at its day's start and `--to` at its day's end; inverted is a usage error."""
    until = datetime.combine(args.to_date, datetime.max.time(), UTC) if args.to_date else None
    start = datetime.combine(args.from_date, datetime.min.time(), UTC) if args.from_date else None
    if start is not None and until is not None and start > until:
        raise UsageError(
            f"--from {args.from_date.date()} is after --to {args.to_date.date()}: nothing to replay"
        )
    return start, until


def cmd_backtest(args: argparse.Namespace) -> int:
    """Replay stored history through the rules and the lifecycle on a simulated clock."""
    from bot.alerts.backtest import NoSuchRule, cut, replay, select, simulated_end
    from bot.engine.loader import load_rules

    start, until = _window(args)
    settings = settings_of(args)
    rules = load_rules(args.rules or settings.rules.dir)
    if rules.issues:
        for issue in rules.issues:
            print(issue, file=sys.stderr)
        return 1
    only = None
    if args.rule_patterns:
        try:
            rules, only = select(rules, args.rule_patterns)
        except NoSuchRule as exc:
            raise UsageError(str(exc)) from None
    data = asyncio.run(_load_history(settings, {r.series for r in rules.series_rules()}))
    end = simulated_end(data, until)
    data = {key: cut(series, end) for key, series in data.items()}  # counted, drawn: up to --to
    tick, done = _progress()
    try:
        events = replay(rules, data, end, start, tick, only)
    finally:
        done()
    if args.chart:
        from bot.digest.backtest_chart import draw

        draw(args.chart, rules, data, events)
    if args.json:
        print(json.dumps([e.as_json() for e in events], ensure_ascii=False, indent=1))
        return 0
    for e in events:
        value = "—" if e.value is None else f"{e.value:,.10g}"
        print(f"{e.at:%Y-%m-%d %H:%M}  {e.state:<8} {e.rule:<30} {value:>14}  {e.message}")
    print(
        f"{len(events)} event(s) from {sum(len(s) for s in data.values())} stored points",
        file=sys.stderr,
    )
    return 0
