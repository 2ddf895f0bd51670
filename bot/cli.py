"""The `stablewatch` command: exit 0 ok, 1 check or test failures, 2 bad usage or configuration."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli_backtest import add_parser as add_backtest_parser
from bot.cli_base import UsageError, date_arg, settings_of
from bot.cli_check import series_issues
from bot.cli_series import series_command
from bot.config import Settings

if TYPE_CHECKING:
    from bot.digest.job import Composed

log = logging.getLogger("stablewatch")
os.environ.setdefault("PTB_TIMEDELTA", "true")  # PTB 22: durations as timedelta, no warnings


def _setup_logging(level: str) -> None:
    """One readable line per event; silence per-request chatter from httpx and APScheduler."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "apscheduler", "telegram.ext.Updater", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# run ---------------------------------------------------------------------------------------------
async def _run_async(settings: Settings) -> None:
    from bot.app import run

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run(settings, stop)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the bot until SIGINT or SIGTERM."""
    from bot.app import StartupError

    settings = settings_of(args)
    _setup_logging(settings.log.level)
    try:
        asyncio.run(_run_async(settings))
    except StartupError as exc:
        raise UsageError(str(exc)) from None
    return 0


# check -------------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    """Validate settings and rule files; print `file:line:col: message` lines."""
    from bot.engine.loader import load_rules

    settings = settings_of(args)
    directory = args.rules or settings.rules.dir
    ruleset = load_rules(directory)
    problems = [str(issue) for issue in ruleset.issues]
    problems += [str(issue) for issue in series_issues(settings, ruleset)]
    if settings.sources.http_json.enabled or settings.sources.http_json.endpoints:
        from bot.sources.http_json import validate_all

        problems += [
            f"sources.http_json: {line}"
            for line in validate_all(settings.sources.http_json.endpoints)
        ]
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"settings ok; {len(ruleset.rules)} rule(s) ok in {directory}")
    return 0


# fetch and backfill ------------------------------------------------------------------------------
async def _fetch(settings: Settings, name: str, as_json: bool) -> int:
    import aiohttp

    from bot.sources import SourceError, registry
    from bot.sources.http import HttpClient

    factory = registry().get(name)
    if factory is None:
        raise UsageError(f"unknown source {name!r}; known: {', '.join(sorted(registry()))}")
    source = factory(getattr(settings.sources, name), settings)
    async with aiohttp.ClientSession() as session:
        try:
            points = await source.poll(HttpClient(session), datetime.now(UTC))
        except SourceError as exc:
            print(f"fetch {name} failed: {exc}", file=sys.stderr)
            return 1
    for p in points:
        if as_json:
            print(json.dumps({"series": p.series, "ts": p.ts.isoformat(), "value": p.value}))
        else:
            print(f"{p.series:<32} {p.ts.isoformat():<26} {p.value:g}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Poll one source once and print what it parsed."""
    return asyncio.run(_fetch(settings_of(args), args.source, args.json))


async def _backfill(settings: Settings, names: Sequence[str], since: datetime | None) -> int:
    import aiohttp

    from bot.sources import SourceError, build_sources, registry
    from bot.sources.http import HttpClient
    from bot.store import open_store

    unknown = [n for n in names if n not in registry()]
    if unknown:
        raise UsageError(f"unknown source(s): {', '.join(unknown)}")
    enabled = settings.sources.enabled()
    chosen = {n: getattr(settings.sources, n) for n in names} if names else enabled
    failed = 0
    async with open_store(settings.store.url) as store, aiohttp.ClientSession() as session:
        http = HttpClient(session)
        sources = build_sources(chosen, settings)
        with _bar(len(sources)) as advance:
            for source in sources:
                advance(f"backfilling {source.name}")
                try:
                    points = await source.backfill(http, datetime.now(UTC), since)
                except SourceError as exc:
                    print(f"{source.name}: failed: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                await store.upsert_observations(points)
                print(f"{source.name}: {len(points)} point(s) stored")
    return 1 if failed else 0


@contextmanager
def _bar(total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on a terminal; nothing when output is piped (CI, logs)."""
    if not sys.stderr.isatty():
        yield lambda _label: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("starting", total=total)

        def advance(label: str) -> None:
            progress.update(task, description=label, advance=1)

        yield advance


def cmd_backfill(args: argparse.Namespace) -> int:
    """Load history from sources that offer it."""
    since = datetime.combine(args.since, datetime.min.time(), UTC) if args.since else None
    return asyncio.run(_backfill(settings_of(args), args.sources, since))


# status ------------------------------------------------------------------------------------------
async def _status(settings: Settings) -> int:
    from bot.engine.loader import load_rules
    from bot.store import open_store

    async with open_store(settings.store.url) as store:
        health = await store.source_health()
        states = await store.alert_states()
    from bot.sources.status import source_statuses

    print("sources:")
    for status in source_statuses(health, settings, datetime.now(UTC)):
        print(f"  {status.line()}")
    print("rules:")
    for rule in load_rules(settings.rules.dir).rules:
        s = states.get(rule.id)
        since = f" since {s.since.isoformat()}" if s and s.since else ""
        print(f"  {rule.id:<28} {s.status.value if s else 'inactive'}{since}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print per-source health and per-rule state."""
    return asyncio.run(_status(settings_of(args)))


# test and schema (backtest: bot/cli_backtest.py) --------------------------------------------------
def cmd_test(args: argparse.Namespace) -> int:
    """Run rule unit tests; exit 1 when one fails."""
    from bot.alerts.ruletests import run_file

    settings = settings_of(args)
    files = list(args.files) or sorted((settings.rules.dir / "tests").glob("*.yaml"))
    if not files:
        raise UsageError(f"no rule test files in {settings.rules.dir / 'tests'}")
    failed = passed = 0
    for path in files:
        for outcome in run_file(path):
            if outcome.failures:
                failed += 1
                print(f"FAIL {path}: {outcome.case}")
                for line in outcome.failures:
                    print(f"     {line}")
            else:
                passed += 1
                print(f"ok   {path}: {outcome.case}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of rule files."""
    from bot.engine.rules import rule_schema

    print(json.dumps(rule_schema(), indent=2))
    return 0


# import and export -------------------------------------------------------------------------------
async def _import(settings: Settings, path: Path) -> int:
    from bot.interchange import read_csv
    from bot.store import open_store

    try:
        with path.open(encoding="utf-8", newline="") as handle:
            points, issues = read_csv(handle)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    for issue in issues:
        print(f"{path}:{issue.line}: {issue.message}", file=sys.stderr)
    if issues:
        print(f"nothing imported: {len(issues)} bad row(s)", file=sys.stderr)
        return 1
    async with open_store(settings.store.url) as store:
        count = await store.upsert_observations(points)
    series = len({p.series for p in points})
    print(f"imported {count} point(s) in {series} series from {path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Upsert observations from an interchange CSV file."""
    return asyncio.run(_import(settings_of(args), args.file))


async def _export(settings: Settings, out: Path | None) -> int:
    from bot.interchange import write_csv
    from bot.store import open_store

    async with open_store(settings.store.url) as store:
        handle = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
        try:
            async for chunk in write_csv(store.iter_observations()):
                handle.write(chunk)
        finally:
            if out:
                handle.close()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write every observation as interchange CSV."""
    return asyncio.run(_export(settings_of(args), args.output))


def cmd_series(args: argparse.Namespace) -> int:
    """List every stored series: first and last time, point count, the source writing it."""
    return series_command(settings_of(args), args.json)


# summary -----------------------------------------------------------------------------------------
async def _summary(settings: Settings, at: datetime | None, tz: str) -> Composed:
    from bot.digest.job import Composer
    from bot.store import open_store

    now = (at or datetime.now(UTC)).astimezone(UTC)
    async with open_store(settings.store.url) as store:
        return await Composer(store, settings.markets.assets, now, settings.sources).compose(
            tz, "Stablewatch summary"
        )


def cmd_summary(args: argparse.Namespace) -> int:
    """Print the digest as `/summary` shows it, from the store, at a chosen moment."""
    from bot.delivery.split import to_plain
    from bot.digest.page import summary_page
    from bot.timezones import zone_name

    settings = settings_of(args)
    tz = zone_name(args.zone) if args.zone else settings.digest.timezone
    if tz is None:
        raise UsageError(
            f"--zone: expected an IANA time zone like Europe/Berlin, found {args.zone!r}"
        )
    at = args.at if args.at is None or args.at.tzinfo else args.at.replace(tzinfo=UTC)
    composed = asyncio.run(_summary(settings, at, tz))
    print(to_plain(composed.text))
    chart, page = args.chart, args.html
    if chart is not None:
        chart.write_bytes(composed.chart)
        print(f"chart written to {chart}", file=sys.stderr)
    if page is not None:
        image = chart.name if chart is not None and chart.parent == page.parent else None
        page.write_text(summary_page(composed.text, composed.caption, image), encoding="utf-8")
        print(f"page written to {page}", file=sys.stderr)
    return 0


# parser ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser; every subcommand accepts --config."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, help="settings file (default settings/stablewatch.toml)"
    )
    parser = argparse.ArgumentParser(
        prog="stablewatch", description="Alerts on crypto market-stabilization signals."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "run", parents=[common], help="poll, evaluate, alert, serve chat commands"
    ).set_defaults(fn=cmd_run)
    p = sub.add_parser("check", parents=[common], help="validate settings and rule files")
    p.add_argument("--rules", type=Path, help="rules directory (default: rules.dir)")
    p.set_defaults(fn=cmd_check)
    p = sub.add_parser("fetch", parents=[common], help="poll one source once and print it")
    p.add_argument("source")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(fn=cmd_fetch)
    p = sub.add_parser("backfill", parents=[common], help="load history from sources")
    p.add_argument("sources", nargs="*", metavar="SOURCE")
    p.add_argument("--since", type=date_arg, metavar="DATE")
    p.set_defaults(fn=cmd_backfill)
    sub.add_parser("status", parents=[common], help="source health and rule states").set_defaults(
        fn=cmd_status
    )
    p = sub.add_parser("test", parents=[common], help="run rule unit tests")
    p.add_argument("files", nargs="*", type=Path, metavar="FILE")
    p.set_defaults(fn=cmd_test)
    add_backtest_parser(sub, common)
    sub.add_parser("schema", parents=[common], help="JSON Schema of rule files").set_defaults(
        fn=cmd_schema
    )
    p = sub.add_parser("summary", parents=[common], help="print the digest, as /summary shows it")
    p.add_argument("--at", type=date_arg, metavar="TIME", help="as of this UTC time (default: now)")
    p.add_argument("--zone", metavar="ZONE", help="IANA time zone (default: digest.timezone)")
    p.add_argument("--chart", type=Path, metavar="FILE.png", help="write the chart")
    p.add_argument("--html", type=Path, metavar="FILE.html", help="write a page with both")
    p.set_defaults(fn=cmd_summary)
    p = sub.add_parser("import", parents=[common], help="upsert observations from a CSV file")
    p.add_argument("file", type=Path, metavar="FILE.csv")
    p.set_defaults(fn=cmd_import)
    p = sub.add_parser("export", parents=[common], help="write observations as CSV")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("series", parents=[common], help="stored series, their span and source")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(fn=cmd_series)
    return parser


def _stdout_gone() -> int:
    """The reader left (`stablewatch export | head -1`): the Python docs' SIGPIPE recipe. Point
    stdout at devnull so the flush at exit cannot fail again; exit 128 + SIGPIPE, as a process
    killed by the pipe would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.fn(args)
        sys.stdout.flush()  # a closed pipe shows here, not as noise at exit
    except UsageError as exc:
        print(f"stablewatch: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
