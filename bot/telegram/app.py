"""Build the PTB application and start/stop it by hand, so it shares our event loop.

Every message goes through our pacer (`bot/telegram/limiter.py`) rather than PTB's
`AIORateLimiter`, which lets bursts through its token bucket, has no per-private-chat limit and
logs each 429 it re-raises at ERROR level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeAlias

from telegram import BotCommand, BotCommandScopeChat, LinkPreviewOptions, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import Conflict, InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseRateLimiter,
    CallbackContext,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    Defaults,
    ExtBot,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.config import DeliverySettings, TelegramSettings
from bot.delivery.pacer import Pacer
from bot.delivery.stage import Stage
from bot.model import ChatKind, Clock
from bot.store import Deposed, Store
from bot.telegram.commands import (
    Command,
    CommandContext,
    allowed,
    on_callback,
    run_command,
    unknown_command,
)
from bot.telegram.limiter import PacedRateLimiter, RateLimitArgs, ReplyingUpdateProcessor
from bot.telegram.link import Link, WatchedRequest
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.registry import COMMANDS
from bot.telegram.service import Service

log = logging.getLogger(__name__)

# PTB's builder keeps `ExtBot[None]` in the context type even with a rate limiter; we follow it.
Context: TypeAlias = CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]
TelegramApp: TypeAlias = Application[
    ExtBot[RateLimitArgs], Context, dict[Any, Any], dict[Any, Any], dict[Any, Any], None
]
Callback: TypeAlias = Callable[[Update, Context], Coroutine[Any, Any, None]]

ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER)
"""What we ask `getUpdates` for; add a type here when a handler for it is added."""
_WIRING = "stablewatch.wiring"
_GONE = (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)
_PRESENT = (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR)


class TelegramStartError(Exception):
    """Telegram could not be started (refused token, unreachable API); the message is one line."""


@dataclass(frozen=True, slots=True)
class _Wiring:
    """What the callbacks need, kept in `bot_data` so the app carries its own registry."""

    settings: TelegramSettings
    store: Store
    clock: Clock
    commands: tuple[Command, ...]
    stage: Stage
    service: Service | None = None

    def context(self, context: Context) -> CommandContext:
        return CommandContext(
            self.settings,
            self.store,
            self.clock,
            context.bot,
            tuple(context.args or ()),
            self.commands,
            self.stage,
            self.service,
        )


def _wiring(bot_data: dict[Any, Any]) -> _Wiring:
    wiring = bot_data[_WIRING]
    assert isinstance(wiring, _Wiring)
    return wiring


def build_application(
    settings: TelegramSettings,
    store: Store,
    clock: Clock,
    *,
    commands: tuple[Command, ...] = COMMANDS,
    service: Service | None = None,
    pacer: Pacer | None = None,
    rate_limiter: BaseRateLimiter[Any] | None = None,
    link: Link | None = None,
    gate: Callable[[], str | None] | None = None,
) -> TelegramApp:
    """Build (not start) the application: handlers from the registry, no JobQueue, HTML defaults.

    Sends are paced by `pacer` (default: the default `[delivery]` limits); share it with
    everything else sending with this token. `rate_limiter` replaces our limiter altogether, for
    benchmarks that compare PTB's own. `link` learns whether each `getUpdates` got through;
    `gate` may refuse a send right before it leaves (a leader past its renew deadline).
    """
    if rate_limiter is None:
        rate_limiter = PacedRateLimiter(pacer or Pacer.from_settings(DeliverySettings()), gate)
    builder = Application.builder()
    if link is not None:
        builder = builder.get_updates_request(WatchedRequest(link))
    app: TelegramApp = (
        builder.token(settings.token.get_secret_value())
        .base_url(f"{settings.api_url}/bot")
        .base_file_url(f"{settings.api_url}/file/bot")
        .job_queue(None)
        .rate_limiter(rate_limiter)
        .concurrent_updates(ReplyingUpdateProcessor())
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        .build()
    )
    wiring = _Wiring(
        settings, store, clock, commands, Stage(TelegramNotifier(app.bot), store), service
    )
    app.bot_data[_WIRING] = wiring
    app.add_handler(TypeHandler(Update, _first_sight), group=-1)
    only_new = filters.UpdateType.MESSAGE  # an edited "/stop" must not run again
    for command in commands:
        app.add_handler(CommandHandler(command.name, _command_callback(command), only_new))
    app.add_handler(MessageHandler(filters.COMMAND & only_new, _on_unknown_command))
    app.add_handler(CallbackQueryHandler(_on_callback))
    app.add_handler(ChatMemberHandler(_on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_error_handler(_on_error)
    return app


async def _first_sight(update: Update, context: Context) -> None:
    """Handle each update once across replicas: a new leader re-receives unconfirmed ones.

    A deposed replica leaves the update to the leader; when the store cannot say, the update
    is handled anyway (a possible repeat beats a lost command).
    """
    wiring = _wiring(context.bot_data)
    try:
        fresh = await wiring.store.first_sight(update.update_id, wiring.clock())
    except Deposed:
        log.info("telegram: update %d left to the new leader", update.update_id)
        raise ApplicationHandlerStop from None
    except Exception as exc:
        log.warning("telegram: update %d not recorded as handled: %s", update.update_id, exc)
        return
    if not fresh:
        log.info("telegram: update %d was already handled; skipped", update.update_id)
        raise ApplicationHandlerStop


def _command_callback(command: Command) -> Callback:
    """Bind one registry entry to a PTB callback."""

    async def callback(update: Update, context: Context) -> None:
        await run_command(command, update, _wiring(context.bot_data).context(context))

    return callback


async def _on_unknown_command(update: Update, context: Context) -> None:
    """Point people who typed a command we don't have to /help."""
    await unknown_command(update, _wiring(context.bot_data).context(context))


async def _on_callback(update: Update, context: Context) -> None:
    """An inline button (the /subscribe and /unsubscribe keyboards)."""
    await on_callback(update, _wiring(context.bot_data).context(context))


async def _on_my_chat_member(update: Update, context: Context) -> None:
    """Unsubscribe a chat that removed or blocked the bot; subscribe a group or channel adding it.

    Private chats subscribe with /start only: unblocking the bot is not asking for alerts.
    """
    change, wiring = update.my_chat_member, _wiring(context.bot_data)
    if change is None:
        return
    chat, status = change.chat, change.new_chat_member.status
    if status in _GONE:
        if await wiring.store.unsubscribe(chat.id):
            log.info("telegram: chat %s removed the bot; unsubscribed it", chat.id)
        return
    if status not in _PRESENT or chat.type == ChatType.PRIVATE:
        return
    if change.old_chat_member.status in _PRESENT or not allowed(update, wiring.settings):
        return  # a promotion, or a chat not on the allowlist
    kind = ChatKind(str(chat.type))
    if await wiring.store.subscribe(chat.id, kind, chat.effective_name or "", wiring.clock()):
        log.info("telegram: added to %s %s; subscribed it", kind.value, chat.id)


async def _on_error(update: object, context: Context) -> None:
    """Log a failed handler and tell the chat, so one bad update never stops the bot."""
    log.error("telegram: error while handling an update: %s", context.error, exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text(
                "Sorry, something went wrong on my side; it has been logged."
            )
        except TelegramError as exc:
            log.warning("telegram: could not report the error to the chat: %s", exc)


def _on_polling_error(exc: TelegramError) -> None:
    """PTB retries polling by itself; we only say why, in one line."""
    if isinstance(exc, Conflict):
        log.error("telegram: another process is polling with this token: %s", exc.message)
    else:
        log.warning("telegram: polling failed, retrying: %s", exc.message)


def _refused(exc: InvalidToken) -> str:
    """One line without the token (PTB's own message quotes it)."""
    cause = exc.__cause__.message if isinstance(exc.__cause__, TelegramError) else ""
    if cause == "Not Found":
        return (
            "telegram.token was refused by the Bot API (404 Not Found): check the token from "
            "@BotFather and telegram.api_url"
        )
    return (
        "telegram.token was refused by the Bot API (401 Unauthorized): "
        "check the token from @BotFather"
    )


async def _publish_commands(app: TelegramApp) -> None:
    """Fill Telegram's command menu from the registry; admins also see admin commands."""
    wiring = _wiring(app.bot_data)
    public = [BotCommand(c.name, c.description) for c in wiring.commands if not c.admin_only]
    everything = [BotCommand(c.name, c.description) for c in wiring.commands]
    try:
        await app.bot.set_my_commands(public)
    except TelegramError as exc:
        log.warning("telegram: could not publish the command menu: %s", exc.message)
        return
    if len(everything) == len(public):
        return
    for admin_id in wiring.settings.admin_ids:
        try:
            await app.bot.set_my_commands(everything, scope=BotCommandScopeChat(admin_id))
        except TelegramError as exc:  # e.g. the admin never opened a chat with the bot
            log.warning("telegram: no admin command menu for %s: %s", admin_id, exc.message)


async def start_telegram(app: TelegramApp, *, poll_timeout: float = 10.0) -> None:
    """Check the token, publish the commands, then long-poll `getUpdates` in the background."""
    await open_telegram(app)
    await lead_telegram(app, poll_timeout=poll_timeout)


async def open_telegram(app: TelegramApp) -> None:
    """Check the token and start the application; every replica does this, leader or not."""
    try:
        await app.initialize()
    except InvalidToken as exc:
        await app.bot.shutdown()
        raise TelegramStartError(_refused(exc)) from None
    except TelegramError as exc:
        await app.bot.shutdown()
        raise TelegramStartError(
            f"telegram.api_url: cannot reach the Telegram Bot API: {exc.message}"
        ) from None
    await app.start()


async def lead_telegram(
    app: TelegramApp, *, poll_timeout: float = 10.0, link: Link | None = None
) -> None:
    """The leader's part: publish the commands, then long-poll or point the webhook here."""
    settings = _wiring(app.bot_data).settings
    await _publish_commands(app)
    try:
        if settings.mode == "webhook":
            await app.bot.set_webhook(
                settings.webhook_url,
                secret_token=settings.webhook_secret.get_secret_value(),
                allowed_updates=list(ALLOWED_UPDATES),
            )
            if link is not None:
                link.up()
            return
        assert app.updater is not None, "built with an Updater"
        await app.updater.start_polling(
            timeout=timedelta(seconds=poll_timeout),
            allowed_updates=list(ALLOWED_UPDATES),
            error_callback=_on_polling_error,
        )
        if link is not None:
            link.up()  # its bootstrap (deleteWebhook) got through; each getUpdates reports next
    except TelegramError as exc:
        await stop_telegram(app)
        raise TelegramStartError(
            f"telegram: cannot start receiving updates: {exc.message}"
        ) from None


async def follow_telegram(app: TelegramApp) -> None:
    """Stop receiving updates (a replica standing by); sending stays possible for the leader."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()


async def stop_telegram(app: TelegramApp) -> None:
    """Undo `start_telegram` in reverse order; safe after a partial start."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await app.shutdown()
