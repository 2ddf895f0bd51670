"""A fake Telegram Bot API on 127.0.0.1, so tests drive the real PTB application over real HTTP.

It speaks the wire format PTB uses (form, multipart or JSON bodies; `{"ok": …}` envelopes; the
HTTP status PTB maps to exceptions) and keeps just enough state to look like Telegram: chats,
per-chat message ids, pending updates with long polling, bot commands and chat members. Tests
inject updates, read what the bot sent, and plan faults (429, 403, migrations, parse errors).
Flood control is either a token bucket (`rate_limit`) or a strict sliding window
(`strict_window`). Not modelled: webhooks, `allowed_updates` filtering (accepted, ignored),
per-chat flood limits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import html
import itertools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn, Self

from aiohttp import web

JSON = dict[str, Any]
Handler = Callable[[JSON, dict[str, bytes]], Awaitable[Any]]

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
ANONYMOUS_ADMIN_ID = 1087968824  # Telegram's "GroupAnonymousBot", the sender of anonymous admins
DEFAULT_GROUP_USER_ID = 7_000_001
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}
_MIGRATED = "Bad Request: group chat was migrated to a supergroup chat"
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,64})?")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>")
_ENTITY = re.compile(r"&(?:#[0-9]+|#x[0-9A-Fa-f]+|lt|gt|amp|quot);")

# fmt: off
# Methods that deliver something to a chat: what `block`, `rate_limit` and `strict_window` act on.
SEND_METHODS = frozenset({
    "sendmessage", "sendphoto", "senddocument", "sendmediagroup", "sendchataction",
    "editmessagetext", "editmessagecaption", "editmessagereplymarkup", "copymessage",
    "forwardmessage",
})
# Form fields that stay strings even when they look like JSON (a text of "42" is not a number).
_TEXT_FIELDS = frozenset({
    "text", "caption", "parse_mode", "description", "short_description", "callback_query_id",
    "action", "url", "name", "title", "language_code", "inline_message_id",
    "business_connection_id", "message_effect_id", "emoji", "query", "secret_token",
    "ip_address",
})
# The HTML subset Telegram accepts with parse_mode=HTML.
_HTML_TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "tg-emoji", "code", "pre", "blockquote",
})
_ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories",
)
# fmt: on


class WaitTimeout(AssertionError):
    """A bounded wait ran out; an AssertionError so pytest reports it as a plain test failure."""


class ApiError(Exception):
    """An error answer like Telegram's: HTTP status, description and optional `parameters`."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters or {}

    def envelope(self) -> JSON:
        """Build the JSON body Telegram sends with an error status."""
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass(frozen=True, slots=True)
class Call:
    """One request the bot made, kept so tests can assert on exactly what crossed the wire."""

    method: str
    params: JSON
    status: int
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    """When the request was answered (the event loop's clock), for pacing tests."""


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the bot sent or edited, in the shape a test wants to assert on."""

    method: str
    chat_id: int | str
    message_id: int
    text: str
    plain: str
    parse_mode: str | None = None
    reply_markup: JSON | None = None
    photo: bytes | None = None
    params: JSON = field(default_factory=dict)


@dataclass(slots=True)
class _Fault:
    """A planned error answer for the next `remaining` matching calls (forever when negative)."""

    method: str
    chat_id: str | None
    error: ApiError | None
    delay: float
    remaining: int

    def matches(self, method: str, chat_id: str | None) -> bool:
        return self.method == method and (self.chat_id is None or self.chat_id == chat_id)


@dataclass(slots=True)
class _Bucket:
    """A token bucket: `rate` tokens a second up to `capacity`; Telegram-style flood control."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Spend one token; return 0, or the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(slots=True)
class _Window:
    """At most `limit` accepted sends in any sliding `seconds`: Telegram at its limit, no slack."""

    limit: int
    seconds: float
    stamps: collections.deque[float] = field(default_factory=collections.deque)

    def take(self, now: float) -> float:
        """Accept one send; return 0, or the seconds until the window has room again."""
        while self.stamps and self.stamps[0] <= now - self.seconds:
            self.stamps.popleft()
        if len(self.stamps) < self.limit:
            self.stamps.append(now)
            return 0.0
        return self.stamps[0] + self.seconds - now


class _Signal:
    """A broadcast wake-up usable from plain methods: waiters re-check a predicate on each fire."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; callers bound this with `asyncio.timeout`."""
        while True:
            event = self._event  # taken before the check, so a fire in between is never lost
            if predicate():
                return
            await event.wait()


def parse_html(text: str) -> str:
    """Check Telegram's HTML subset and return the text as shown; raise ApiError like Telegram."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "<":
            offset = len(text[:i].encode())
            match = _TAG.match(text, i)
            if match is None:
                raise _cant_parse(f'Unsupported start tag "" at byte offset {offset}')
            closing, name = match[1] == "/", match[2].lower()
            if name not in _HTML_TAGS:
                kind = "end" if closing else "start"
                raise _cant_parse(f'Unsupported {kind} tag "{name}" at byte offset {offset}')
            if not closing:
                stack.append(name)
            elif not stack:
                raise _cant_parse(f"Unexpected end tag at byte offset {offset}")
            elif stack[-1] != name:
                raise _cant_parse(
                    f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1]}>", '
                    f'found "</{name}>"'
                )
            else:
                stack.pop()
            i = match.end()
            continue
        if char == "&" and (entity := _ENTITY.match(text, i)):
            out.append(html.unescape(entity[0]))
            i = entity.end()
            continue
        out.append(char)
        i += 1
    if stack:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _cant_parse(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {detail}")


def _utf16_len(text: str) -> int:
    """Telegram measures entity offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[JSON]:
    """Mark every `/command` (and `/command@bot`) the way Telegram's clients do."""
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: match.start()]),
            "length": _utf16_len(match[0]),
        }
        for match in _COMMAND.finditer(text)
    ]


def _decode(name: str, value: str) -> Any:
    """Undo PTB's form encoding: nested objects, numbers and booleans arrive as JSON strings."""
    if name in _TEXT_FIELDS:
        return value
    if name == "chat_id" and not re.fullmatch(r"-?\d+", value):
        return value  # "@channelusername"
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _read_params(request: web.Request) -> tuple[JSON, dict[str, bytes]]:
    """Read a Bot API call from the query string and a JSON, urlencoded or multipart body."""
    params: JSON = {key: _decode(key, value) for key, value in request.query.items()}
    files: dict[str, bytes] = {}
    if not request.can_read_body:
        return params, files
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params, files
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            files[key] = value.file.read()
        elif isinstance(value, str):
            params[key] = _decode(key, value)
        else:
            params[key] = _decode(key, bytes(value).decode())
    return params, files


def _chat_key(chat_id: Any) -> str | None:
    return None if chat_id is None else str(chat_id)


def chat_member(user: JSON, status: str) -> JSON:
    """Build a ChatMember object with the fields PTB requires for each status."""
    member: JSON = {"user": user, "status": status}
    if status == "administrator":
        member |= {"can_be_edited": False, "is_anonymous": False}
        member |= dict.fromkeys(_ADMIN_RIGHTS, True)
    elif status == "creator":
        member["is_anonymous"] = False
    elif status == "kicked":
        member["until_date"] = 0
    elif status not in ("member", "left"):
        raise ValueError(f"unsupported chat member status {status!r}")
    return member


class FakeTelegram:
    """The fake server: `async with FakeTelegram(token="123:ABC") as tg:`, then use `tg.api_url`."""

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        bot_username: str = "stablewatch_test_bot",
        bot_name: str = "Stablewatch",
        strict_chats: bool = False,
        max_poll_seconds: float = 5.0,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.bot_user: JSON = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
        }
        self.strict_chats = strict_chats
        self.max_poll_seconds = max_poll_seconds
        self.throttled = 0
        self.polls_waiting = 0
        self.conflicts = 0
        """409 answers to getUpdates: overlapping long polls, or polling while a webhook is set."""
        self.webhook: JSON = {}
        """What setWebhook set (url, secret_token, allowed_updates); empty: polling."""
        self.port = 0
        self._calls: list[Call] = []
        self._sent: list[Sent] = []
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[str, int] = {}
        self._messages: dict[tuple[str, int], JSON] = {}
        self._chats: dict[str, JSON] = {}
        self._members: dict[tuple[str, int], str] = {}
        self._commands: dict[str, list[JSON]] = {}
        self._files: dict[str, bytes] = {}
        self._faults: list[_Fault] = []
        self._blocked: dict[str, str] = {}
        self._bucket: _Bucket | None = None
        self._window: _Window | None = None
        self._poll_generation = 0
        self._closing = False
        self._updates_signal = _Signal()
        self._recorded_signal = _Signal()
        self._channel_ids = itertools.count(1_000_000_001)
        self._callback_ids = itertools.count(4_000_000_001)
        self._bot_messages: set[tuple[str, int]] = set()
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, Handler] = {
            "getme": self._get_me,
            "logout": self._true,
            "close": self._true,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._webhook_info,
            "getupdates": self._get_updates,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "editmessagetext": self._edit_message_text,
            "answercallbackquery": self._true,
            "sendchataction": self._true,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
            "getfile": self._get_file,
        }

    # lifecycle ----------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """What goes into `telegram.api_url`; the bot appends `/bot{token}/{method}`."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._download)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        self._updates_signal.fire()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # test API: injecting updates ----------------------------------------------------------------
    def add_chat(
        self,
        chat_id: int,
        chat_type: str = "private",
        *,
        title: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
    ) -> JSON:
        """Make a chat known (as if the bot had met it) and return its Chat object."""
        chat: JSON = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name or f"User{chat_id}"
        else:
            chat["title"] = title or f"{chat_type.title()} {chat_id}"
        if username:
            chat["username"] = username
        self._chats[str(chat_id)] = chat
        return chat

    def inject_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: str = "private",
        username: str | None = "alice",
        first_name: str = "Alice",
        title: str | None = None,
        anonymous: bool = False,
    ) -> JSON:
        """Queue a `message` update, with `bot_command` entities; `anonymous` = anonymous admin."""
        chat = self._incoming_chat(chat_id, chat_type, title, username, first_name)
        message = self._incoming_message(chat, text, user_id, username, first_name, anonymous)
        return self._push({"message": message})

    def inject_edited_message(self, chat_id: int, message_id: int, text: str) -> JSON:
        """Queue an `edited_message` update for a message injected earlier."""
        original = self._messages.get((str(chat_id), message_id))
        if original is None:
            raise KeyError(f"no message {message_id} in chat {chat_id}")
        edited = original | {"text": text, "edit_date": int(time.time())}
        entities = command_entities(text)
        edited.pop("entities", None)
        if entities:
            edited["entities"] = entities
        self._messages[(str(chat_id), message_id)] = edited
        return self._push({"edited_message": edited})

    def inject_callback_query(
        self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None
    ) -> JSON:
        """Queue a `callback_query` update, as if someone pressed an inline button."""
        message = self._messages.get((str(chat_id), message_id))
        if message is None:
            raise KeyError(f"no message {message_id} in chat {chat_id}")
        user = self._user(user_id if user_id is not None else abs(chat_id), "alice", "Alice")
        query: JSON = {
            "id": str(next(self._callback_ids)),
            "from": user,
            "chat_instance": str(chat_id),
            "data": data,
            "message": message,
        }
        return self._push({"callback_query": query})

    def inject_my_chat_member(
        self,
        chat_id: int,
        *,
        new_status: str,
        old_status: str | None = None,
        chat_type: str = "group",
        title: str | None = None,
        user_id: int | None = None,
    ) -> JSON:
        """Queue a `my_chat_member` update: the bot added to or removed from a chat, or blocked."""
        chat = self._chats.get(str(chat_id)) or self.add_chat(chat_id, chat_type, title=title)
        if old_status is None:
            old_status = "member" if new_status in ("left", "kicked") else "left"
        actor = self._user(user_id if user_id is not None else abs(chat_id), "alice", "Alice")
        change: JSON = {
            "chat": chat,
            "from": actor,
            "date": int(time.time()),
            "old_chat_member": chat_member(self.bot_user, old_status),
            "new_chat_member": chat_member(self.bot_user, new_status),
        }
        self._members[(str(chat_id), self.bot_user["id"])] = new_status
        return self._push({"my_chat_member": change})

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """Set what `getChatMember` answers, e.g. make a user an administrator of a group."""
        chat_member({}, status)  # validates the status
        self._members[(str(chat_id), user_id)] = status

    @property
    def pending_updates(self) -> int:
        """Updates injected but not yet confirmed by a later `getUpdates` offset."""
        return len(self._updates)

    # test API: inspecting -----------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        """Every request received (answered or failed), optionally of one method."""
        if method is None:
            return list(self._calls)
        return [call for call in self._calls if call.method.lower() == method.lower()]

    def sent(self, chat_id: int | str | None = None) -> list[Sent]:
        """Messages sent and edited successfully, optionally to one chat, in order."""
        if chat_id is None:
            return list(self._sent)
        return [item for item in self._sent if str(item.chat_id) == str(chat_id)]

    def commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """The command list last set with `setMyCommands` for a scope (default scope if None)."""
        return list(self._commands.get(self._commands_key(scope, language_code), []))

    def chat(self, chat_id: int | str) -> JSON | None:
        """The Chat object the fake knows under this id."""
        return self._chats.get(str(chat_id))

    async def wait_for(
        self,
        condition: int | Callable[[list[Sent]], bool],
        *,
        chat_id: int | str | None = None,
        timeout: float = 5.0,
    ) -> list[Sent]:
        """Wait until `condition` messages were sent (or it holds on them); return the messages."""
        check: Callable[[list[Sent]], bool]
        if isinstance(condition, int):
            count = condition

            def check(items: list[Sent]) -> bool:
                return len(items) >= count

        else:
            check = condition
        try:
            async with asyncio.timeout(timeout):
                await self._recorded_signal.wait_until(lambda: check(self.sent(chat_id)))
        except TimeoutError:
            seen = [(item.method, item.chat_id, item.text[:80]) for item in self.sent()]
            raise WaitTimeout(
                f"nothing matching after {timeout}s (chat {chat_id}); sent so far: {seen}"
            ) from None
        return self.sent(chat_id)

    async def wait_for_calls(
        self, method: str, count: int = 1, *, timeout: float = 5.0
    ) -> list[Call]:
        """Wait until `method` was called at least `count` times; return those calls."""
        try:
            async with asyncio.timeout(timeout):
                await self._recorded_signal.wait_until(lambda: len(self.calls(method)) >= count)
        except TimeoutError:
            got = len(self.calls(method))
            raise WaitTimeout(
                f"{method} called {got} times after {timeout}s, wanted {count}"
            ) from None
        return self.calls(method)

    async def wait_for_poll(self, *, timeout: float = 5.0) -> None:
        """Wait until a `getUpdates` long poll is parked here, i.e. the bot is listening."""
        try:
            async with asyncio.timeout(timeout):
                await self._recorded_signal.wait_until(lambda: self.polls_waiting > 0)
        except TimeoutError:
            raise WaitTimeout(f"no getUpdates long poll within {timeout}s") from None

    # test API: faults ---------------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        *,
        chat_id: int | str | None = None,
        status: int | None = None,
        description: str | None = None,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of `method` (to `chat_id`) with an error, like Telegram.

        `status` defaults to 400 with `migrate_to_chat_id`, else 429 (then `retry_after` defaults
        to 1); `times=-1` fails every call until `clear_faults`.
        """
        if status is None:
            status = 400 if migrate_to_chat_id is not None else 429
        parameters: JSON = {}
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        if status == 429 and retry_after is None:
            retry_after = 1
        if retry_after is not None:
            parameters["retry_after"] = retry_after
        if description is None:
            if migrate_to_chat_id is not None:
                description = _MIGRATED
            elif status == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(status, "Error")
        error = ApiError(status, description, parameters)
        self._faults.append(_Fault(method.lower(), _chat_key(chat_id), error, 0.0, times))

    def delay_next(
        self, method: str, seconds: float, *, chat_id: int | str | None = None, times: int = 1
    ) -> None:
        """Hold the next `times` answers of `method` for `seconds`, to provoke client timeouts."""
        self._faults.append(_Fault(method.lower(), _chat_key(chat_id), None, seconds, times))

    def clear_faults(self) -> None:
        """Forget planned faults, blocks and the rate limits."""
        self._faults.clear()
        self._blocked.clear()
        self._bucket = None
        self._window = None

    def block(
        self, chat_id: int | str, description: str = "Forbidden: bot was blocked by the user"
    ) -> None:
        """Answer 403 to every send to this chat, as when a user blocks the bot."""
        self._blocked[str(chat_id)] = description

    def unblock(self, chat_id: int | str) -> None:
        """Let sends to this chat through again."""
        self._blocked.pop(str(chat_id), None)

    def rate_limit(self, per_second: float | None, *, burst: int | None = None) -> None:
        """Flood control like Telegram's; above the rate, answer 429 with `retry_after`."""
        if per_second is None:
            self._bucket = None
            return
        capacity = float(burst if burst is not None else max(1, math.ceil(per_second)))
        self._bucket = _Bucket(per_second, capacity, capacity, time.monotonic())

    def strict_window(self, per_second: int | None = 30, window: float = 1.0) -> None:
        """Telegram at its limit, no burst: past `per_second` sends in any `window` seconds, 429."""
        self._window = None if per_second is None else _Window(per_second, window)

    # HTTP plumbing ------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await _read_params(request)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = self._methods.get(method.lower())
            if handler is None:
                raise ApiError(400, f"Bad Request: method {method!r} is not implemented here")
            await self._apply_faults(method.lower(), params)
            result = await handler(params, files)
        except ApiError as error:
            self._record(Call(method, params, error.status, files))
            return web.json_response(error.envelope(), status=error.status)
        self._record(Call(method, params, 200, files))
        return web.json_response({"ok": True, "result": result})

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(ApiError(404, "Not Found").envelope(), status=404)

    async def _download(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if request.match_info["token"] != self.token or path not in self._files:
            return web.json_response(ApiError(404, "Not Found").envelope(), status=404)
        return web.Response(body=self._files[path], content_type="application/octet-stream")

    async def _apply_faults(self, method: str, params: JSON) -> None:
        chat = _chat_key(params.get("chat_id"))
        for fault in list(self._faults):
            if not fault.matches(method, chat):
                continue
            if fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
            if fault.delay:
                await self._sleep(fault.delay)
            if fault.error is not None:
                raise fault.error
        if method not in SEND_METHODS:
            return
        if chat is not None and chat in self._blocked:
            raise ApiError(403, self._blocked[chat])
        now = time.monotonic()
        if self._bucket is not None and (wait := self._bucket.take(now)) > 0:
            self._throttle(wait)
        if self._window is not None and (wait := self._window.take(now)) > 0:
            self._throttle(wait)

    def _throttle(self, wait: float) -> NoReturn:
        """Answer 429 like Telegram: a whole number of seconds, at least one."""
        self.throttled += 1
        seconds = max(1, math.ceil(wait))
        raise ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server closes so shutdown stays fast."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._updates_signal.wait_until(lambda: self._closing)

    def _record(self, call: Call) -> None:
        self._calls.append(call)
        self._recorded_signal.fire()

    def _push(self, payload: JSON) -> JSON:
        update = {"update_id": next(self._update_ids), **payload}
        self._updates.append(update)
        self._updates_signal.fire()
        return update

    # state helpers ------------------------------------------------------------------------------
    def _user(self, user_id: int, username: str | None, first_name: str) -> JSON:
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        return user

    def _incoming_chat(
        self,
        chat_id: int,
        chat_type: str,
        title: str | None,
        username: str | None,
        first_name: str,
    ) -> JSON:
        known = self._chats.get(str(chat_id))
        if known is not None and known["type"] == chat_type and title is None:
            return known
        if chat_type == "private":
            return self.add_chat(chat_id, "private", username=username, first_name=first_name)
        return self.add_chat(chat_id, chat_type, title=title)

    def _incoming_message(
        self,
        chat: JSON,
        text: str,
        user_id: int | None,
        username: str | None,
        first_name: str,
        anonymous: bool,
    ) -> JSON:
        key = str(chat["id"])
        message: JSON = {
            "message_id": self._next_message_id(key),
            "date": int(time.time()),
            "chat": chat,
            "text": text,
        }
        if anonymous:
            message["from"] = {
                "id": ANONYMOUS_ADMIN_ID,
                "is_bot": True,
                "first_name": "Group",
                "username": "GroupAnonymousBot",
            }
            message["sender_chat"] = chat
        else:
            if user_id is None:
                user_id = chat["id"] if chat["type"] == "private" else DEFAULT_GROUP_USER_ID
            message["from"] = self._user(user_id, username, first_name)
        if entities := command_entities(text):
            message["entities"] = entities
        self._messages[(key, message["message_id"])] = message
        return message

    def _next_message_id(self, key: str) -> int:
        self._message_ids[key] = self._message_ids.get(key, 0) + 1
        return self._message_ids[key]

    def _target_chat(self, chat_id: Any) -> JSON:
        """Resolve a `chat_id` parameter the way Telegram does, inventing chats unless strict."""
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        key = str(chat_id)
        known = self._chats.get(key)
        if known is not None:
            return known
        if self.strict_chats:
            raise ApiError(400, "Bad Request: chat not found")
        if key.startswith("@"):
            chat: JSON = {
                "id": -(10**12) - next(self._channel_ids),
                "type": "channel",
                "title": key[1:],
                "username": key[1:],
            }
            self._chats[key] = chat
            return chat
        if not re.fullmatch(r"-?\d+", key):
            raise ApiError(400, "Bad Request: chat not found")
        number = int(key)
        if number > 0:
            return self.add_chat(number, "private")
        return self.add_chat(number, "supergroup" if key.startswith("-100") else "group")

    def _bot_message(self, key: str, chat: JSON) -> JSON:
        message: JSON = {
            "message_id": self._next_message_id(key),
            "date": int(time.time()),
            "chat": chat,
        }
        if chat["type"] == "channel":
            message["sender_chat"] = chat
        else:
            message["from"] = self.bot_user
        self._bot_messages.add((key, message["message_id"]))
        return message

    def _check_reply(self, key: str, params: JSON) -> None:
        reply = params.get("reply_parameters")
        target = reply.get("message_id") if isinstance(reply, dict) else None
        target = target if target is not None else params.get("reply_to_message_id")
        allow = bool(
            (reply or {}).get("allow_sending_without_reply")
            or params.get("allow_sending_without_reply")
        )
        if target is not None and (key, int(target)) not in self._messages and not allow:
            raise ApiError(400, "Bad Request: message to be replied not found")

    def _commands_key(self, scope: JSON | None, language_code: str) -> str:
        scope = scope or {"type": "default"}
        return json.dumps(scope, sort_keys=True) + "|" + language_code

    # Bot API methods ----------------------------------------------------------------------------
    async def _true(self, params: JSON, files: dict[str, bytes]) -> bool:
        return True

    async def _get_me(self, params: JSON, files: dict[str, bytes]) -> JSON:
        return self.bot_user | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _delete_webhook(self, params: JSON, files: dict[str, bytes]) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = {}
        return True

    async def _set_webhook(self, params: JSON, files: dict[str, bytes]) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return await self._delete_webhook(params, files)
        if not url.startswith("https://"):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = str(params.get("secret_token") or "")
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {
            k: params[k] for k in ("url", "secret_token", "allowed_updates") if k in params
        }
        self._poll_generation += 1  # a pending long poll ends with 409, as on the real server
        self._updates_signal.fire()
        return True

    async def _webhook_info(self, params: JSON, files: dict[str, bytes]) -> JSON:
        url = str(self.webhook.get("url", ""))
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    async def _get_updates(self, params: JSON, files: dict[str, bytes]) -> list[JSON]:
        if self.webhook:
            self.conflicts += 1
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = min(max(float(params.get("timeout") or 0), 0.0), self.max_poll_seconds)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_signal.fire()  # an older long poll learns it was superseded

        def ready() -> bool:
            return bool(self._updates) or self._closing or generation != self._poll_generation

        self.polls_waiting += 1
        self._recorded_signal.fire()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._updates_signal.wait_until(ready)
        finally:
            self.polls_waiting -= 1
        if generation != self._poll_generation:
            self.conflicts += 1
            raise ApiError(409, _DEFAULT_DESCRIPTIONS[409])
        return self._updates[:limit]

    async def _set_my_commands(self, params: JSON, files: dict[str, bytes]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be a list of at most 100 commands")
        for command in commands:
            name = str(command.get("command", ""))
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(params.get("scope"), str(params.get("language_code") or ""))
        self._commands[key] = [dict(command) for command in commands]
        return True

    async def _get_my_commands(self, params: JSON, files: dict[str, bytes]) -> list[JSON]:
        key = self._commands_key(params.get("scope"), str(params.get("language_code") or ""))
        return self._commands.get(key, [])

    async def _delete_my_commands(self, params: JSON, files: dict[str, bytes]) -> bool:
        key = self._commands_key(params.get("scope"), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True

    def _rendered(self, params: JSON, field_name: str, limit: int, *, required: bool) -> str:
        """Validate text or caption like Telegram: parse entities, then check the length."""
        text = str(params.get(field_name) or "")
        if required and not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        mode = str(params.get("parse_mode") or "")
        plain = parse_html(text) if mode.lower() == "html" else text
        if len(plain) > limit:
            what = "message is too long" if field_name == "text" else "message caption is too long"
            raise ApiError(400, f"Bad Request: {what}")
        if required and not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        return plain

    async def _send_message(self, params: JSON, files: dict[str, bytes]) -> JSON:
        chat = self._target_chat(params.get("chat_id"))
        key = str(params["chat_id"])
        plain = self._rendered(params, "text", MAX_TEXT_LENGTH, required=True)
        self._check_reply(key, params)
        message = self._bot_message(key, chat) | {"text": plain}
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self._messages[(key, message["message_id"])] = message
        self._sent.append(self._sent_record("sendMessage", params, message, "text"))
        return message

    async def _send_photo(self, params: JSON, files: dict[str, bytes]) -> JSON:
        chat = self._target_chat(params.get("chat_id"))
        key = str(params["chat_id"])
        photo_ref = params.get("photo")
        photo: bytes | None = files.get("photo")
        if isinstance(photo_ref, str) and photo_ref.startswith("attach://"):
            photo = files.get(photo_ref.removeprefix("attach://"))
        if photo is None and not isinstance(photo_ref, str):
            raise ApiError(400, "Bad Request: there is no photo in the request")
        plain = self._rendered(params, "caption", MAX_CAPTION_LENGTH, required=False)
        self._check_reply(key, params)
        message = self._bot_message(key, chat)
        file_id = f"photo-{key}-{message['message_id']}"
        if photo is not None:
            self._files[file_id] = photo
        message["photo"] = [
            {
                "file_id": file_id,
                "file_unique_id": file_id,
                "width": 1280,
                "height": 720,
                "file_size": len(photo or b""),
            }
        ]
        if plain:
            message["caption"] = plain
        self._messages[(key, message["message_id"])] = message
        self._sent.append(self._sent_record("sendPhoto", params, message, "caption", photo))
        return message

    async def _edit_message_text(self, params: JSON, files: dict[str, bytes]) -> JSON | bool:
        if params.get("inline_message_id"):
            self._rendered(params, "text", MAX_TEXT_LENGTH, required=True)
            return True
        self._target_chat(params.get("chat_id"))
        key = str(params["chat_id"])
        message_id = int(params.get("message_id") or 0)
        original = self._messages.get((key, message_id))
        if original is None or (key, message_id) not in self._bot_messages:
            raise ApiError(400, "Bad Request: message to edit not found")
        plain = self._rendered(params, "text", MAX_TEXT_LENGTH, required=True)
        markup = params.get("reply_markup")
        markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if original.get("text") == plain and original.get("reply_markup") == markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        edited = original | {"text": plain, "edit_date": int(time.time())}
        edited.pop("reply_markup", None)
        if markup is not None:
            edited["reply_markup"] = markup
        self._messages[(key, message_id)] = edited
        self._sent.append(self._sent_record("editMessageText", params, edited, "text"))
        return edited

    async def _get_chat(self, params: JSON, files: dict[str, bytes]) -> JSON:
        chat = self._target_chat(params.get("chat_id"))
        return chat | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _get_chat_member(self, params: JSON, files: dict[str, bytes]) -> JSON:
        chat = self._target_chat(params.get("chat_id"))
        user_id = int(params.get("user_id") or 0)
        status = self._members.get((str(chat["id"]), user_id), "member")
        user = (
            self.bot_user if user_id == self.bot_user["id"] else self._user(user_id, None, "User")
        )
        return chat_member(user, status)

    async def _get_file(self, params: JSON, files: dict[str, bytes]) -> JSON:
        file_id = str(params.get("file_id") or "")
        if file_id not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": file_id,
            "file_size": len(self._files[file_id]),
            "file_path": file_id,
        }

    def _sent_record(
        self,
        method: str,
        params: JSON,
        message: JSON,
        text_field: str,
        photo: bytes | None = None,
    ) -> Sent:
        markup = params.get("reply_markup")
        return Sent(
            method=method,
            chat_id=params["chat_id"],
            message_id=int(message["message_id"]),
            text=str(params.get(text_field) or ""),
            plain=str(message.get(text_field) or ""),
            parse_mode=params.get("parse_mode"),
            reply_markup=markup if isinstance(markup, dict) else None,
            photo=photo,
            params=dict(params),
        )


__all__ = [
    "ApiError",
    "Call",
    "FakeTelegram",
    "Sent",
    "WaitTimeout",
    "chat_member",
    "command_entities",
    "parse_html",
]
