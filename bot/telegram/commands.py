"""The chat commands about alerts and subscriptions, and the access rules every command obeys."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from telegram import Bot, Chat, LinkPreviewOptions, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, MessageEntityType
from telegram.error import TelegramError

from bot.config import TelegramSettings
from bot.delivery.notifier import Edit, Keyboard, Sent, Text
from bot.delivery.notifier import Message as Outgoing
from bot.delivery.pacer import Lane
from bot.delivery.stage import Stage
from bot.durations import format_duration
from bot.engine.ruleset import RuleSet
from bot.model import ChatKind, Clock
from bot.sources.status import source_statuses
from bot.store import Store
from bot.telegram import views
from bot.telegram.args import (
    Usage,
    known_targets,
    parse_history,
    parse_mute,
    parse_targets,
    parse_unmute,
)
from bot.telegram.service import Service

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
    stage: Stage
    """Every answer goes through it (reply lane), like alerts and digests do (broadcast lane)."""
    service: Service | None = None

    def rules(self) -> RuleSet:
        """The live rules; none without a running bot (unit tests, the console)."""
        return self.service.rule_set() if self.service is not None else RuleSet()

    def now(self) -> datetime:
        """The runtime's time when there is one, else the context clock."""
        return self.service.now() if self.service is not None else self.clock()


Handler = Callable[[Update, CommandContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    """One chat command; `chat_admin_only` means only a group's admins may run it there."""

    name: str
    description: str
    handler: Handler
    admin_only: bool = False
    chat_admin_only: bool = False


def thread(update: Update) -> int | None:
    """The forum topic the command came from, so the answer lands in it too."""
    message = update.effective_message
    return message.message_thread_id if message is not None and message.is_topic_message else None


async def answer(ctx: CommandContext, update: Update, message: Outgoing) -> None:
    """Send an answer through the delivery stage in the reply lane: paced, retried, never lost."""
    chat = update.effective_chat
    if chat is None:
        return
    done = await ctx.stage.deliver(str(chat.id), message, Lane.REPLY)
    if not isinstance(done.verdict, Sent):
        log.warning("telegram: no answer reached chat %s: %s", chat.id, done.verdict)


async def reply(
    ctx: CommandContext, update: Update, text: str, keyboard: Keyboard | None = None
) -> None:
    """Answer in the chat (and topic) the update came from, as HTML without link previews."""
    await answer(ctx, update, Text(text, keyboard, thread(update)))


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
    if not allowed(update, ctx.settings):
        chat_id = update.effective_chat.id if update.effective_chat else "?"
        await reply(
            ctx,
            update,
            f"Sorry, this Stablewatch bot is private: chat <code>{chat_id}</code> is not on "
            "its allowlist.",
        )
        return
    if command.admin_only and not is_bot_admin(update, ctx.settings):
        await reply(ctx, update, f"Sorry, /{command.name} is only for this bot's admins.")
        return
    if command.chat_admin_only and not await is_chat_admin(update, ctx):
        await reply(ctx, update, f"Sorry, only this group's admins can use /{command.name} here.")
        return
    await command.handler(update, ctx)


def allowed(update: Update, settings: TelegramSettings) -> bool:
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
    kind = ChatKind(str(chat.type))
    fresh = await ctx.store.subscribe(chat.id, kind, chat.effective_name or "", ctx.clock())
    name = chat.effective_name if kind is not ChatKind.PRIVATE else None
    where = f"<b>{html.escape(name)}</b>" if name else "This chat"
    status = (
        f"✅ {where} is now subscribed: alerts will arrive here."
        if fresh
        else f"✅ {where} was already subscribed."
    )
    await reply(
        ctx, update, f"{ABOUT}\n\n{status}\n/stop ends the alerts; /help lists every command."
    )


async def stop(update: Update, ctx: CommandContext) -> None:
    """Unsubscribe this chat; its row is kept so a later /start restores it."""
    chat = update.effective_chat
    if chat is None:
        return
    if await ctx.store.unsubscribe(chat.id):
        await reply(ctx, update, "🔕 Unsubscribed: no more alerts here. /start subscribes again.")
    else:
        await reply(ctx, update, "This chat was not subscribed. /start subscribes it.")


def help_text(commands: tuple[Command, ...]) -> str:
    """Render the command list from the registry, so /help can never drift from the handlers."""
    lines = [ABOUT, "", "<b>Commands</b>"]
    for command in commands:
        note = " <i>(bot admins)</i>" if command.admin_only else ""
        lines.append(f"/{command.name} — {html.escape(command.description, quote=False)}{note}")
    return "\n".join(lines)


async def help_command(update: Update, ctx: CommandContext) -> None:
    """List every command with its description."""
    await reply(ctx, update, help_text(ctx.commands))


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
    await reply(ctx, update, f"I don't know {shown}. /help lists what I can do.")


def _kind(chat: Chat) -> ChatKind:
    """Our name for a Telegram chat type."""
    return ChatKind(str(chat.type))


async def chat_filter(ctx: CommandContext, chat: Chat) -> set[str]:
    """The chat's current filter; empty means every alert."""
    return (await ctx.store.filters()).get(str(chat.id), set())


async def save_choice(ctx: CommandContext, chat: Chat, chosen: set[str] | None) -> str:
    """Store a chat's new filter (subscribing it), or unsubscribe it; say what it gets now."""
    await ctx.store.set_filter(str(chat.id), sorted(chosen or ()))
    if chosen is None:
        await ctx.store.unsubscribe(chat.id)
        return "🔕 Unsubscribed: no more alerts here. /start subscribes again."
    await ctx.store.subscribe(chat.id, _kind(chat), chat.effective_name or "", ctx.clock())
    return f"✅ {views.filter_text(chosen)}"


async def subscribe_command(update: Update, ctx: CommandContext) -> None:
    """Narrow (or widen) what this chat receives: typed targets, or buttons without arguments."""
    chat = update.effective_chat
    if chat is None:
        return
    rules = ctx.rules()
    parsed = parse_targets(ctx.args, rules, "subscribe")
    if isinstance(parsed, Usage):
        await reply(ctx, update, parsed.text)
        return
    current = await chat_filter(ctx, chat)
    if parsed:
        for target in parsed:
            current = views.choose(current, target)
        await reply(ctx, update, await save_choice(ctx, chat, current))
        return
    keys = views.keyboard(views.SUBSCRIBE, known_targets(rules), current)
    text = f'{views.filter_text(current)}\nPick a tag or rule to receive ("everything" resets).'
    await reply(ctx, update, text, keys)


async def unsubscribe_command(update: Update, ctx: CommandContext) -> None:
    """Stop receiving some rules or tags: typed targets, or buttons without arguments."""
    chat = update.effective_chat
    if chat is None:
        return
    rules = ctx.rules()
    parsed = parse_targets(ctx.args, rules, "unsubscribe")
    if isinstance(parsed, Usage):
        await reply(ctx, update, parsed.text)
        return
    current: set[str] | None = await chat_filter(ctx, chat)
    if parsed:
        for target in parsed:
            current = views.drop(current, target, rules) if current is not None else None
        await reply(ctx, update, await save_choice(ctx, chat, current))
        return
    shown = sorted(current) if current else known_targets(rules)
    keys = views.keyboard(views.UNSUBSCRIBE, shown, set())
    text = f'{views.filter_text(current or ())}\nPick what to stop ("everything" = /stop).'
    await reply(ctx, update, text, keys)


def _choice(action: str, target: str, current: set[str], rules: RuleSet) -> set[str] | None:
    """The filter after pressing a /subscribe or /unsubscribe button."""
    if action == views.SUBSCRIBE:
        return views.choose(current, target)
    return views.drop(current, target, rules)


async def on_callback(update: Update, ctx: CommandContext) -> None:
    """A /subscribe or /unsubscribe button: same access rules as typing the command."""
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None:
        return
    action, _, target = (query.data or "").partition(":")
    rules = ctx.rules()
    if action not in (views.SUBSCRIBE, views.UNSUBSCRIBE) or (
        target != "all" and target not in known_targets(rules)
    ):
        await query.answer("That button is out of date; send the command again.")
        return
    if not allowed(update, ctx.settings) or not await is_chat_admin(update, ctx):
        await query.answer("Only this group's admins can change its alerts.", show_alert=True)
        return
    chosen = _choice(action, target, await chat_filter(ctx, chat), rules)
    text = await save_choice(ctx, chat, chosen)
    await query.answer()
    keys = views.keyboard(action, known_targets(rules), chosen or set())
    if query.message is not None:
        edit = Edit(query.message.message_id, text, keys if chosen is not None else None)
        await answer(ctx, update, edit)


async def rules_command(update: Update, ctx: CommandContext) -> None:
    """Each rule with its state and since when."""
    states = await ctx.store.alert_states()
    await reply(ctx, update, views.rules_text(ctx.rules(), states, ctx.now()))


async def status_command(update: Update, ctx: CommandContext) -> None:
    """Source health: last success, freshness, last error."""
    if ctx.service is None:
        await reply(ctx, update, "Source status is only available from the running bot.")
        return
    health = await ctx.store.source_health()
    statuses = source_statuses(health, ctx.service.settings, ctx.now())
    await reply(ctx, update, views.status_text(statuses))


async def mute_command(update: Update, ctx: CommandContext) -> None:
    """Silence a rule, a tag or everything in this chat for a while."""
    chat = update.effective_chat
    if chat is None:
        return
    parsed = parse_mute(ctx.args, ctx.rules())
    if isinstance(parsed, Usage):
        await reply(ctx, update, parsed.text)
        return
    until = ctx.now() + parsed.duration
    await ctx.store.mute(str(chat.id), parsed.target, until, "/mute")
    await reply(
        ctx,
        update,
        f"🔇 Muted <code>{html.escape(parsed.target)}</code> here for "
        f"{format_duration(parsed.duration)} (until {until:%Y-%m-%d %H:%M} UTC). /unmute lifts it.",
    )


async def unmute_command(update: Update, ctx: CommandContext) -> None:
    """Lift one mute, or every mute of this chat."""
    chat = update.effective_chat
    if chat is None:
        return
    muted = (await ctx.store.mutes(ctx.now())).get(str(chat.id), {})
    parsed = parse_unmute(ctx.args, ctx.rules(), set(muted))
    if isinstance(parsed, Usage):
        await reply(ctx, update, parsed.text)
        return
    lifted = await ctx.store.unmute(str(chat.id), parsed)
    await reply(ctx, update, f"🔔 Lifted {lifted} mute(s)." if lifted else "Nothing was muted.")


async def history_command(update: Update, ctx: CommandContext) -> None:
    """The most recent alert transitions."""
    count = parse_history(ctx.args)
    if isinstance(count, Usage):
        await reply(ctx, update, count.text)
        return
    transitions = await ctx.store.transitions(limit=count)
    await reply(ctx, update, views.history_text(transitions, ctx.rules()))


async def reload_command(update: Update, ctx: CommandContext) -> None:
    """Reload the rule files now and say what was wrong if they were refused."""
    if ctx.service is None:
        await reply(ctx, update, "Reloading is only available from the running bot.")
        return
    accepted, problems = await ctx.service.reload()
    if accepted:
        await reply(ctx, update, f"✅ Rules reloaded: {len(ctx.service.rule_set().rules)} rule(s).")
        return
    detail = html.escape("\n".join(problems)[:3000])
    await reply(
        ctx, update, f"⚠️ Not reloaded; the previous rules keep running.\n<pre>{detail}</pre>"
    )
