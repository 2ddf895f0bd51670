"""The command registry: one tuple feeds the handlers, `/help` and `setMyCommands`."""

from __future__ import annotations

from bot.telegram.commands import (
    Command,
    help_command,
    history_command,
    mute_command,
    reload_command,
    rules_command,
    start,
    status_command,
    stop,
    subscribe_command,
    unmute_command,
    unsubscribe_command,
)
from bot.telegram.digest_commands import (
    chart_command,
    digest_command,
    summary_command,
    timezone_command,
)

COMMANDS: tuple[Command, ...] = (
    Command("start", "subscribe this chat to alerts", start, chat_admin_only=True),
    Command("stop", "unsubscribe this chat", stop, chat_admin_only=True),
    Command("help", "list the commands", help_command),
    Command(
        "subscribe",
        "choose the rules or tags this chat receives",
        subscribe_command,
        chat_admin_only=True,
    ),
    Command(
        "unsubscribe", "stop some rules or tags here", unsubscribe_command, chat_admin_only=True
    ),
    Command("rules", "every rule and its state", rules_command),
    Command("summary", "the daily digest, now, with its chart", summary_command),
    Command("status", "data sources: last success, freshness, errors", status_command),
    Command("chart", "SERIES [RANGE] — a chart of one series, e.g. 30d", chart_command),
    Command(
        "mute", "RULE|TAG|all DURATION — silence alerts here", mute_command, chat_admin_only=True
    ),
    Command("unmute", "[RULE|TAG|all] — lift mutes", unmute_command, chat_admin_only=True),
    Command("digest", "[HH:MM|off] — this chat's daily digest time", digest_command),
    Command("timezone", "[ZONE] — this chat's time zone, e.g. Europe/Berlin", timezone_command),
    Command("history", "[N] — the most recent alerts", history_command),
    Command("reload", "reload the rule files now", reload_command, admin_only=True),
)
"""Every command, in menu order; `/help` and the Telegram command menu are generated from it."""
