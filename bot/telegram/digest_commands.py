"""The digest commands: `/summary`, `/chart`, `/digest` and `/timezone`."""

from __future__ import annotations

import asyncio
import difflib
import html
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from telegram import Update
from telegram.constants import ChatAction
from telegram.error import TelegramError

from bot.config import DigestSettings, MarketsSettings, SourcesSettings
from bot.delivery.notifier import Photo
from bot.delivery.split import split_html
from bot.digest.chart import render_series_chart
from bot.digest.job import Composer
from bot.digest.schedule import next_digest_at
from bot.model import OFF, DigestSchedule
from bot.numbers import for_series
from bot.telegram.args import Usage, parse_chart, parse_digest, parse_timezone
from bot.telegram.commands import (
    CommandContext,
    answer,
    chat_filter,
    is_chat_admin,
    reply,
    thread,
)

log = logging.getLogger(__name__)
NOT_SUBSCRIBED = "This chat is not subscribed, so it gets no digest. /start subscribes it."


def _digest_settings(ctx: CommandContext) -> DigestSettings:
    return ctx.service.settings.digest if ctx.service is not None else DigestSettings()


def _sources(ctx: CommandContext) -> SourcesSettings | None:
    return ctx.service.settings.sources if ctx.service is not None else None


def _assets(ctx: CommandContext) -> list[str]:
    return ctx.service.settings.markets.assets if ctx.service else MarketsSettings().assets


def _local(moment: datetime, tz: str) -> str:
    """A moment as the chat reads it, written like the digest: "Sun 2 Nov 08:00 Europe/Berlin"."""
    local = moment.astimezone(ZoneInfo(tz))
    return f"{local:%a} {local.day} {local:%b %H:%M} {html.escape(tz)}"


async def _busy(update: Update, ctx: CommandContext) -> None:
    """Show "sending photo…" while a chart is drawn; only cosmetic, so failures are ignored."""
    chat = update.effective_chat
    if chat is None:
        return
    try:
        await ctx.bot.send_chat_action(chat.id, ChatAction.UPLOAD_PHOTO)
    except TelegramError as exc:
        log.info("telegram: no chat action for %s: %s", chat.id, exc.message)


async def _reply_photo(ctx: CommandContext, update: Update, png: bytes, caption: str) -> None:
    await answer(ctx, update, Photo(png, caption, thread(update)))


async def summary_command(update: Update, ctx: CommandContext) -> None:
    """The daily digest, now, in this chat's time zone: the scorecard and its chart."""
    chat = update.effective_chat
    if chat is None:
        return
    await _busy(update, ctx)
    schedule = await ctx.store.digest_schedule(chat.id)
    tz = (schedule.timezone if schedule else None) or _digest_settings(ctx).timezone
    only = frozenset(await chat_filter(ctx, chat))
    composer = Composer(ctx.store, _assets(ctx), ctx.now(), _sources(ctx))
    composed = await composer.compose(tz, "Stablewatch summary", only, ctx.rules())
    for chunk in split_html(composed.text):
        await reply(ctx, update, chunk)
    await _reply_photo(ctx, update, composed.chart, composed.caption)


async def _unknown_series(update: Update, ctx: CommandContext, series: str) -> None:
    """Say there is no such series, suggesting close names (or the first few there are)."""
    names = await ctx.store.series_names()
    close = difflib.get_close_matches(series, names, n=3, cutoff=0.6) or names[:5]
    hint = ", ".join(f"<code>{html.escape(n)}</code>" for n in close)
    suggestion = f" Try {hint}." if hint else " No data has been collected yet."
    await reply(ctx, update, f"No data for <code>{html.escape(series)}</code>.{suggestion}")


async def chart_command(update: Update, ctx: CommandContext) -> None:
    """One series over a range as a PNG, e.g. `/chart funding.btc.oi_weighted 7d`."""
    parsed = parse_chart(ctx.args)
    if isinstance(parsed, Usage):
        await reply(ctx, update, parsed.text)
        return
    latest = await ctx.store.latest(parsed.series)
    if latest is None:
        await _unknown_series(update, ctx, parsed.series)
        return
    now = ctx.now()
    rows = await ctx.store.observations(parsed.series, now - parsed.span, now)
    if not rows:
        await reply(
            ctx,
            update,
            f"<code>{html.escape(parsed.series)}</code> has no points in the last "
            f"{html.escape(parsed.label)}; the newest is from {latest.ts:%Y-%m-%d %H:%M} UTC.",
        )
        return
    await _busy(update, ctx)
    points = [(o.ts, o.value) for o in rows]
    png = await asyncio.to_thread(render_series_chart, parsed.series, points, parsed.label)
    newest = rows[-1]
    caption = (
        f"<b>{html.escape(parsed.series)}</b> · last {html.escape(parsed.label)} · "
        f"newest {for_series(parsed.series, newest.value)} at {newest.ts:%d %b %H:%M} UTC"
    )
    await _reply_photo(ctx, update, png, caption)


def _describe(schedule: DigestSchedule, defaults: DigestSettings) -> str:
    """What this chat's digest setting is, in one line."""
    tz = schedule.timezone or defaults.timezone
    if schedule.digest_time == OFF:
        return f"🔕 The daily digest is off here (time zone {html.escape(tz)})."
    hhmm = schedule.digest_time or defaults.time
    line = f"🗓 Daily digest here at {hhmm} {html.escape(tz)}"
    if schedule.next_at is not None and schedule.active:
        line += f"; next {_local(schedule.next_at, tz)}"
    return line + "."


async def _may_change(update: Update, ctx: CommandContext, command: str) -> bool:
    """Anyone may look; only a group's admins may change its digest."""
    if await is_chat_admin(update, ctx):
        return True
    await reply(ctx, update, f"Sorry, only this group's admins can change /{command} here.")
    return False


async def _schedule_of(
    update: Update, ctx: CommandContext, parsed: str | Usage | None
) -> DigestSchedule | None:
    """The chat's digest schedule, or None once the chat was told what is wrong."""
    chat = update.effective_chat
    if chat is None:
        return None
    if isinstance(parsed, Usage):
        await reply(ctx, update, parsed.text)
        return None
    schedule = await ctx.store.digest_schedule(chat.id)
    if schedule is None:
        await reply(ctx, update, NOT_SUBSCRIBED)
    return schedule


async def _save(
    ctx: CommandContext, schedule: DigestSchedule, hhmm: str, tz: str
) -> DigestSchedule:
    """Store a new time or zone with its next due moment (none while off or unsubscribed)."""
    on = hhmm != OFF and schedule.active
    due = next_digest_at(hhmm, tz, ctx.now()) if on else None
    await ctx.store.set_digest(schedule.chat_id, hhmm, tz, due)
    updated = await ctx.store.digest_schedule(schedule.chat_id)
    assert updated is not None, "a chat row is never deleted"
    return updated


async def digest_command(update: Update, ctx: CommandContext) -> None:
    """Show, set (`HH:MM` in the chat's zone) or turn off this chat's daily digest."""
    parsed = parse_digest(ctx.args)
    schedule = await _schedule_of(update, ctx, parsed)
    if schedule is None or isinstance(parsed, Usage):
        return
    defaults = _digest_settings(ctx)
    if parsed is None:
        help_line = "/digest HH:MM sets the time, /digest off stops it, /timezone ZONE the zone."
        await reply(ctx, update, f"{_describe(schedule, defaults)}\n{help_line}")
        return
    if not await _may_change(update, ctx, "digest"):
        return
    updated = await _save(ctx, schedule, parsed, schedule.timezone or defaults.timezone)
    if parsed == OFF:
        await reply(
            ctx, update, "🔕 Daily digest off here. /digest HH:MM turns it on; /summary any time."
        )
        return
    await reply(ctx, update, f"✅ {_describe(updated, defaults)}")


async def timezone_command(update: Update, ctx: CommandContext) -> None:
    """Show or set this chat's IANA time zone, which the digest time is read in."""
    parsed = parse_timezone(ctx.args)
    schedule = await _schedule_of(update, ctx, parsed)
    if schedule is None or isinstance(parsed, Usage):
        return
    defaults = _digest_settings(ctx)
    if parsed is None:
        tz = schedule.timezone or defaults.timezone
        now = _local(ctx.now(), tz).rsplit(" ", 1)[0]
        await reply(
            ctx, update, f"🌍 This chat's time zone is {html.escape(tz)} (there it is {now})."
        )
        return
    if not await _may_change(update, ctx, "timezone"):
        return
    updated = await _save(ctx, schedule, schedule.digest_time or defaults.time, parsed)
    await reply(
        ctx, update, f"✅ Time zone set to {html.escape(parsed)}.\n{_describe(updated, defaults)}"
    )
