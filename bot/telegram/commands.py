"""The command registry: one tuple feeds the handlers, `/help` and `setMyCommands` (design §6)."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import Bot, LinkPreviewOptions, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, MessageEntityType, ParseMode
from telegram.error import TelegramError

from bot.config import TelegramSettings
from bot.model import ChatKind, Clock
from bot.store import Store

log = logging.getLogger(__name__)

ABOUT = (
    "<b>Stablewatch</b> watches the crypto market for stabilization signals: spot-ETF flows "
    "turning from one-way outflows to inflows, perpetual funding turning negative, open "
    "interest flushing out, and the fear &amp; greed index at extreme fear."
)
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Everything a handler may use, passed explicitly so handlers need no globals."""

    settings: TelegramSettings
    store: Store
    clock: Clock
    bot: Bot
    args: tuple[str, ...]
    commands: tuple[Command, ...]


Handler = Callable[[Update, CommandContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    """One chat command; `chat_admin_only` means only a group's admins may run it there."""

    name: str
    description: str
    handler: Handler
    admin_only: bool = False
    chat_admin_only: bool = False


async def reply(update: Update, text: str) -> None:
    """Answer in the chat the update came from, as HTML without link previews."""
    message = update.effective_message
    if message is not None:
        await message.reply_text(text, parse_mode=ParseMode.HTML, link_preview_options=_NO_PREVIEW)


def is_bot_admin(update: Update, settings: TelegramSettings) -> bool:
    """Bot admins are the users listed in `telegram.admin_ids`."""
    user = update.effective_user
    return user is not None and user.id in settings.admin_ids


async def is_chat_admin(update: Update, ctx: CommandContext) -> bool:
    """In a group, only its creator and administrators (also anonymous ones) change its settings."""
    chat, message, user = update.effective_chat, update.effective_message, update.effective_user
    if chat is None or chat.type == ChatType.PRIVATE:
        return True
    if message is not None and message.sender_chat is not None:
        return message.sender_chat.id == chat.id  # an anonymous admin speaks as the group itself
    if user is None:
        return False
    if user.id in ctx.settings.admin_ids:
        return True
    try:
        member = await ctx.bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        log.warning("telegram: cannot check the admins of chat %s: %s", chat.id, exc)
        return False
    return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


async def run_command(command: Command, update: Update, ctx: CommandContext) -> None:
    """Apply the command's access rules, then run it."""
    if command.admin_only and not is_bot_admin(update, ctx.settings):
        await reply(update, f"Sorry, /{command.name} is only for this bot's admins.")
        return
    if command.chat_admin_only and not await is_chat_admin(update, ctx):
        await reply(update, f"Sorry, only this group's admins can use /{command.name} here.")
        return
    await command.handler(update, ctx)


def _allowed(update: Update, settings: TelegramSettings) -> bool:
    """Under `access = "allowlist"`, only listed chats (and bot admins' own chats) may subscribe."""
    chat = update.effective_chat
    if settings.access == "open" or chat is None:
        return True
    if chat.id in settings.allowed_chat_ids:
        return True
    return chat.type == ChatType.PRIVATE and is_bot_admin(update, settings)


async def start(update: Update, ctx: CommandContext) -> None:
    """Subscribe this chat and say what the bot does."""
    chat = update.effective_chat
    if chat is None:
        return
    if not _allowed(update, ctx.settings):
        await reply(
            update,
            f"Sorry, this Stablewatch bot is private: chat <code>{chat.id}</code> is not on "
            "its allowlist.",
        )
        return
    kind = ChatKind(str(chat.type))
    fresh = await ctx.store.subscribe(chat.id, kind, chat.effective_name or "", ctx.clock())
    name = chat.effective_name if kind is not ChatKind.PRIVATE else None
    where = f"<b>{html.escape(name)}</b>" if name else "This chat"
    status = (
        f"✅ {where} is now subscribed: alerts will arrive here."
        if fresh
        else f"✅ {where} was already subscribed."
    )
    await reply(update, f"{ABOUT}\n\n{status}\n/stop ends the alerts; /help lists every command.")


async def stop(update: Update, ctx: CommandContext) -> None:
    """Unsubscribe this chat; its row is kept so a later /start restores it."""
    chat = update.effective_chat
    if chat is None:
        return
    if await ctx.store.unsubscribe(chat.id):
        await reply(update, "🔕 Unsubscribed: no more alerts here. /start subscribes again.")
    else:
        await reply(update, "This chat was not subscribed. /start subscribes it.")


def help_text(commands: tuple[Command, ...]) -> str:
    """Render the command list from the registry, so /help can never drift from the handlers."""
    lines = [ABOUT, "", "<b>Commands</b>"]
    for command in commands:
        note = " <i>(bot admins)</i>" if command.admin_only else ""
        lines.append(f"/{command.name} — {html.escape(command.description)}{note}")
    return "\n".join(lines)


async def help_command(update: Update, ctx: CommandContext) -> None:
    """List every command with its description."""
    await reply(update, help_text(ctx.commands))


def addressed_command(message: Message, bot_username: str) -> str | None:
    """The `/command` a message opens with, if it is meant for us (groups must name the bot)."""
    entities = message.entities
    if not message.text or not entities or entities[0].type != MessageEntityType.BOT_COMMAND:
        return None
    if entities[0].offset != 0:
        return None
    name, _, target = message.parse_entity(entities[0]).partition("@")
    if target:
        return name if target.lower() == bot_username.lower() else None
    return name if message.chat.type == ChatType.PRIVATE else None


async def unknown_command(update: Update, ctx: CommandContext) -> None:
    """Point an unknown command to /help (in groups only when it names this bot)."""
    message = update.effective_message
    if message is None:
        return
    name = addressed_command(message, ctx.bot.username)
    if name is None:
        return
    shown = html.escape(name if len(name) <= 40 else name[:40] + "…")
    await reply(update, f"I don't know {shown}. /help lists what I can do.")


COMMANDS: tuple[Command, ...] = (
    Command("start", "subscribe this chat to alerts", start, chat_admin_only=True),
    Command("stop", "unsubscribe this chat", stop, chat_admin_only=True),
    Command("help", "list the commands", help_command),
)
"""The registry; `/help` and the Telegram command menu are generated from it."""
