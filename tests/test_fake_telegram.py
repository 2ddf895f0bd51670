"""The loopback fakes themselves behave like the servers they stand in for (Telegram, a source)."""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.harness.fake_source import Answer, FakeSource
from tests.harness.fake_telegram import (
    ApiError,
    FakeTelegram,
    WaitTimeout,
    command_entities,
    parse_html,
)

TOKEN = "123:ABC"


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    tg: FakeTelegram,
    method: str,
    *,
    token: str = TOKEN,
    form: dict[str, str] | aiohttp.FormData | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST like PTB does (form fields, JSON-encoded nested values) and return status and body."""
    url = f"{tg.api_url}/bot{token}/{method}"
    async with http.post(url, data=form, json=body) as response:
        return response.status, await response.json()


# envelope and errors ----------------------------------------------------------------------------
async def test_get_me_answers_in_the_ok_envelope(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, tg, "getMe")
    assert status == 200
    assert body["ok"] is True
    assert body["result"]["is_bot"] is True
    assert body["result"]["username"] == tg.bot_username


async def test_wrong_token_is_401_unauthorized(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, tg, "getMe", token="123:WRONG")
    assert (status, body) == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )


async def test_unknown_method_is_400_not_404(tg: FakeTelegram, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, tg, "sendCarrierPigeon")
    assert status == 400
    assert body["ok"] is False and body["error_code"] == 400


async def test_form_fields_are_decoded_like_the_bot_api(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    markup = {"inline_keyboard": [[{"text": "Mute", "callback_data": "mute:x"}]]}
    form = {"chat_id": "42", "text": "123", "reply_markup": json.dumps(markup)}
    status, body = await call(http, tg, "sendMessage", form=form)
    assert status == 200
    assert body["result"]["chat"] == {"id": 42, "type": "private", "first_name": "User42"}
    assert body["result"]["reply_markup"] == markup
    [sent] = tg.sent(42)
    assert (sent.chat_id, sent.text, sent.reply_markup) == (42, "123", markup)


async def test_json_bodies_work_too(tg: FakeTelegram, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, tg, "sendMessage", body={"chat_id": -500, "text": "hi"})
    assert status == 200
    assert body["result"]["chat"]["type"] == "group"
    assert body["result"]["from"]["id"] == 123


async def test_message_ids_increase_per_chat(tg: FakeTelegram, http: aiohttp.ClientSession) -> None:
    ids = [
        (await call(http, tg, "sendMessage", form={"chat_id": chat, "text": "x"}))[1]["result"][
            "message_id"
        ]
        for chat in ("1", "1", "2", "1")
    ]
    assert ids == [1, 2, 1, 3]


async def test_multipart_photo_is_recorded_with_its_bytes(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", "42")
    form.add_field("caption", "<b>flows</b>")
    form.add_field("parse_mode", "HTML")
    form.add_field("photo", b"\x89PNG...", filename="chart.png", content_type="image/png")
    status, body = await call(http, tg, "sendPhoto", form=form)
    assert status == 200
    assert body["result"]["caption"] == "flows"
    [sent] = tg.sent(42)
    assert (sent.method, sent.photo, sent.text) == ("sendPhoto", b"\x89PNG...", "<b>flows</b>")


async def test_too_long_text_is_refused(tg: FakeTelegram, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, tg, "sendMessage", form={"chat_id": "1", "text": "x" * 4097})
    assert (status, body["description"]) == (400, "Bad Request: message is too long")
    ok, _ = await call(http, tg, "sendMessage", form={"chat_id": "1", "text": "x" * 4096})
    assert ok == 200


async def test_unbalanced_html_cannot_be_parsed(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    form = {"chat_id": "1", "text": "<b>bold <i>both</b></i>", "parse_mode": "HTML"}
    status, body = await call(http, tg, "sendMessage", form=form)
    assert status == 400
    assert body["description"].startswith("Bad Request: can't parse entities: ")
    assert tg.sent() == []


def test_html_subset_is_checked_like_telegram() -> None:
    assert parse_html('<b>a</b> &lt;3 <a href="https://x">y</a> &amp; z') == "a <3 y & z"
    for bad in ("<b>open", "x </b>", "<br>", "a < b", "<b><i>x</b></i>"):
        with pytest.raises(ApiError, match="can't parse entities"):
            parse_html(bad)


@given(st.text(min_size=1))
def test_escaped_text_always_parses_back_to_itself(text: str) -> None:
    assert parse_html(html.escape(text)) == text


async def test_editing_needs_a_change_and_an_existing_message(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    await call(http, tg, "sendMessage", form={"chat_id": "1", "text": "firing"})
    edit = {"chat_id": "1", "message_id": "1", "text": "resolved"}
    assert (await call(http, tg, "editMessageText", form=edit))[0] == 200
    status, body = await call(http, tg, "editMessageText", form=edit)
    assert status == 400 and "message is not modified" in body["description"]
    missing = {**edit, "message_id": "9"}
    status, body = await call(http, tg, "editMessageText", form=missing)
    assert (status, body["description"]) == (400, "Bad Request: message to edit not found")
    assert [(s.method, s.text) for s in tg.sent(1)] == [
        ("sendMessage", "firing"),
        ("editMessageText", "resolved"),
    ]


# fault plan ---------------------------------------------------------------------------------------
async def test_fail_next_answers_like_telegram_flood_control(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    tg.fail_next("sendMessage", chat_id=1, retry_after=5, times=2)
    form = {"chat_id": "1", "text": "x"}
    for _ in range(2):
        status, body = await call(http, tg, "sendMessage", form=form)
        assert (status, body) == (
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 5",
                "parameters": {"retry_after": 5},
            },
        )
    assert (await call(http, tg, "sendMessage", form={"chat_id": "2", "text": "x"}))[0] == 200
    assert (await call(http, tg, "sendMessage", form=form))[0] == 200
    assert [c.status for c in tg.calls("sendMessage")] == [429, 429, 200, 200]


async def test_fail_next_migration_carries_the_new_chat(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    tg.fail_next("sendMessage", migrate_to_chat_id=-1009)
    status, body = await call(http, tg, "sendMessage", form={"chat_id": "-5", "text": "x"})
    assert status == 400
    assert body["parameters"] == {"migrate_to_chat_id": -1009}
    assert "migrated to a supergroup" in body["description"]


async def test_blocked_chat_gets_403_on_every_send(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    tg.block(7)
    for method in ("sendMessage", "sendChatAction"):
        status, body = await call(http, tg, method, form={"chat_id": "7", "text": "x"})
        assert (status, body["description"]) == (403, "Forbidden: bot was blocked by the user")
    tg.unblock(7)
    assert (await call(http, tg, "sendMessage", form={"chat_id": "7", "text": "x"}))[0] == 200


async def test_rate_limit_throttles_above_the_rate_and_counts(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    tg.rate_limit(2, burst=2)
    answers = [
        await call(http, tg, "sendMessage", form={"chat_id": str(n), "text": "x"})
        for n in range(1, 6)
    ]
    statuses = [status for status, _ in answers]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]
    assert tg.throttled == statuses.count(429)
    throttled = next(body for status, body in answers if status == 429)
    assert throttled["parameters"]["retry_after"] >= 1
    assert (await call(http, tg, "getMe"))[0] == 200  # only sends are limited


async def test_strict_window_allows_no_burst_beyond_the_limit_in_any_window(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    tg.strict_window(3, window=60)
    answers = [
        await call(http, tg, "sendMessage", form={"chat_id": str(n), "text": "x"})
        for n in range(1, 6)
    ]
    assert [status for status, _ in answers] == [200, 200, 200, 429, 429]
    assert tg.throttled == 2
    assert answers[3][1]["parameters"]["retry_after"] in range(58, 61)
    assert (await call(http, tg, "getMe"))[0] == 200  # only sends are limited
    tg.clear_faults()
    assert (await call(http, tg, "sendMessage", form={"chat_id": "9", "text": "x"}))[0] == 200


# long polling -------------------------------------------------------------------------------------
async def test_get_updates_waits_until_an_update_arrives(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    poll = asyncio.create_task(call(http, tg, "getUpdates", form={"timeout": "3"}))
    await tg.wait_for_poll()
    assert not poll.done()
    started = time.monotonic()
    tg.inject_message(42, "/start")
    status, body = await asyncio.wait_for(poll, 2)
    assert time.monotonic() - started < 1
    assert status == 200
    [update] = body["result"]
    assert update["message"]["text"] == "/start"
    assert update["message"]["from"]["id"] == 42


async def test_get_updates_times_out_empty(tg: FakeTelegram, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    status, body = await call(http, tg, "getUpdates", form={"timeout": "0.2"})
    elapsed = time.monotonic() - started
    assert (status, body["result"]) == (200, [])
    assert 0.15 < elapsed < 1.5


async def test_offset_confirms_updates(tg: FakeTelegram, http: aiohttp.ClientSession) -> None:
    first = tg.inject_message(1, "a")
    second = tg.inject_message(2, "b")
    _, body = await call(http, tg, "getUpdates", form={"timeout": "0"})
    assert [u["update_id"] for u in body["result"]] == [first["update_id"], second["update_id"]]
    offset = str(second["update_id"])
    _, body = await call(http, tg, "getUpdates", form={"offset": offset, "timeout": "0"})
    assert [u["update_id"] for u in body["result"]] == [second["update_id"]]
    assert tg.pending_updates == 1
    _, body = await call(
        http, tg, "getUpdates", form={"offset": str(second["update_id"] + 1), "timeout": "0"}
    )
    assert body["result"] == []
    assert tg.pending_updates == 0


async def test_a_second_poller_terminates_the_first_with_409(
    tg: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    first = asyncio.create_task(call(http, tg, "getUpdates", form={"timeout": "3"}))
    await tg.wait_for_poll()
    second = asyncio.create_task(call(http, tg, "getUpdates", form={"timeout": "0.1"}))
    status, body = await asyncio.wait_for(first, 2)
    assert status == 409 and "terminated by other getUpdates" in body["description"]
    assert (await asyncio.wait_for(second, 2))[0] == 200


def test_commands_get_entities_in_utf16_units() -> None:
    text = "📈 /start@stablewatch_test_bot now /help"
    assert command_entities(text) == [
        {"type": "bot_command", "offset": 3, "length": 27},
        {"type": "bot_command", "offset": 35, "length": 5},
    ]


async def test_wait_for_is_bounded(tg: FakeTelegram) -> None:
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="nothing matching"):
        await tg.wait_for(1, timeout=0.1)
    assert time.monotonic() - started < 1


async def test_closing_the_server_ends_a_pending_long_poll_at_once(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeTelegram(token=TOKEN) as server:
        poll = asyncio.create_task(call(http, server, "getUpdates", form={"timeout": "5"}))
        await server.wait_for_poll()
        started = time.monotonic()
    status, body = await asyncio.wait_for(poll, 2)
    assert (status, body["result"]) == (200, [])
    assert time.monotonic() - started < 1


# the fake data source -----------------------------------------------------------------------------
async def test_source_serves_routes_and_logs_requests(http: aiohttp.ClientSession) -> None:
    async with FakeSource() as src:
        src.route("GET", "/fng/", body={"data": [{"value": "12"}]})
        src.route("GET", "/page", body="<html>flows</html>", content_type="text/html")
        async with http.get(src.url("/fng/?limit=2")) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            assert await response.json() == {"data": [{"value": "12"}]}
        async with http.get(src.url("/page")) as response:
            assert (response.content_type, await response.text()) == (
                "text/html",
                "<html>flows</html>",
            )
        async with http.get(src.url("/missing")) as response:
            assert response.status == 404
    assert [(r.method, r.path, r.query) for r in src.requests] == [
        ("GET", "/fng/", {"limit": "2"}),
        ("GET", "/page", {}),
        ("GET", "/missing", {}),
    ]


async def test_source_sequence_repeats_its_last_answer(http: aiohttp.ClientSession) -> None:
    async with FakeSource() as src:
        src.route_sequence("/x", [Answer("busy", status=503), Answer("ok"), b"last"])
        seen = []
        for _ in range(4):
            async with http.get(src.url("/x")) as response:
                seen.append((response.status, await response.text()))
    assert seen == [(503, "busy"), (200, "ok"), (200, "last"), (200, "last")]


async def test_source_down_refuses_connections_and_up_reopens_the_same_port(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeSource() as src:
        src.route("GET", "/x", body="ok")
        port = src.port
        async with http.get(src.url("/x")) as response:
            assert await response.text() == "ok"
        await src.down()
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(src.url("/x")):
                pass
        await src.up()
        assert src.port == port
        async with http.get(src.url("/x")) as response:
            assert await response.text() == "ok"


async def test_source_delay_lets_clients_time_out(http: aiohttp.ClientSession) -> None:
    async with FakeSource(latency=0.01) as src:
        src.route("GET", "/slow", body="late", delay=2.0)
        with pytest.raises(TimeoutError):
            async with http.get(src.url("/slow"), timeout=aiohttp.ClientTimeout(total=0.1)):
                pass
