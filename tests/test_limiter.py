"""The pacer as PTB's rate limiter, on fake requests: what takes a turn, in which lane, after a 429."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from telegram.error import BadRequest, RetryAfter

from bot.delivery.pacer import Lane, Pacer
from bot.telegram.limiter import PacedRateLimiter, RateLimitArgs, ReplyingUpdateProcessor, seconds

Result = bool | dict[str, Any] | list[dict[str, Any]]


class SpyPacer(Pacer):
    """Notes turns and holds; every turn is granted at once."""

    def __init__(self) -> None:
        super().__init__(1000)
        self.turns: list[tuple[int | str | None, Lane, bool]] = []
        self.holds: list[tuple[float, int | str | None]] = []

    async def turn(
        self, chat: int | str | None, lane: Lane = Lane.BROADCAST, *, paid: bool = False
    ) -> None:
        self.turns.append((chat, lane, paid))

    def hold(self, seconds: float, chat: int | str | None = None) -> None:
        self.holds.append((seconds, chat))


def answers(*outcomes: Exception | Result) -> Callable[..., Awaitable[Result]]:
    """A request that fails or succeeds in this order."""
    queue = list(outcomes)

    async def request(*args: Any, **kwargs: Any) -> Result:
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return request


async def send(
    limiter: PacedRateLimiter,
    request: Callable[..., Awaitable[Result]],
    endpoint: str = "sendMessage",
    args: RateLimitArgs | None = None,
    **data: Any,
) -> Result:
    return await limiter.process_request(request, (), {}, endpoint, data, args)


@pytest.fixture
def pacer() -> SpyPacer:
    return SpyPacer()


@pytest.fixture
def limiter(pacer: SpyPacer) -> PacedRateLimiter:
    return PacedRateLimiter(pacer)


@pytest.mark.parametrize(
    "endpoint", ["getMe", "setMyCommands", "answerCallbackQuery", "getChatMember", "getChat"]
)
async def test_requests_telegram_does_not_count_go_straight_through(
    limiter: PacedRateLimiter, pacer: SpyPacer, endpoint: str
) -> None:
    assert await send(limiter, answers(True), endpoint, chat_id=42) is True
    assert pacer.turns == []


@pytest.mark.parametrize(
    "endpoint",
    ["sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageReplyMarkup"],
)
async def test_sends_and_edits_take_a_turn_for_their_chat(
    limiter: PacedRateLimiter, pacer: SpyPacer, endpoint: str
) -> None:
    assert await send(limiter, answers({"ok": 1}), endpoint, chat_id=-500) == {"ok": 1}
    assert pacer.turns == [(-500, Lane.BROADCAST, False)]


async def test_the_lane_comes_from_rate_limit_args_and_paid_from_the_request(
    limiter: PacedRateLimiter, pacer: SpyPacer
) -> None:
    await send(limiter, answers(True), args={"lane": Lane.REPLY}, chat_id=42)
    await send(limiter, answers(True), chat_id=42, allow_paid_broadcast=True)
    assert pacer.turns == [(42, Lane.REPLY, False), (42, Lane.BROADCAST, True)]


async def test_whatever_an_update_handler_sends_is_a_reply(
    limiter: PacedRateLimiter, pacer: SpyPacer
) -> None:
    processor = ReplyingUpdateProcessor()
    await processor.do_process_update(object(), send(limiter, answers(True), chat_id=42))
    await processor.do_process_update(
        object(), send(limiter, answers(True), args={"lane": Lane.BROADCAST}, chat_id=43)
    )
    await send(limiter, answers(True), chat_id=44)  # after the update: a broadcast again
    assert pacer.turns == [
        (42, Lane.REPLY, False),
        (43, Lane.BROADCAST, False),
        (44, Lane.BROADCAST, False),
    ]


async def test_a_reply_is_retried_after_each_429_until_it_goes(
    limiter: PacedRateLimiter, pacer: SpyPacer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    flood = RetryAfter(timedelta(seconds=3))
    request = answers(flood, flood, {"message_id": 1})
    reply: RateLimitArgs = {"lane": Lane.REPLY}
    assert await send(limiter, request, args=reply, chat_id=42) == {"message_id": 1}
    assert len(pacer.turns) == 3
    assert pacer.holds == [(3.0, None), (3.0, None)]  # a private chat: we flood overall
    records = [r for r in caplog.records if r.name == "bot.telegram.limiter"]
    assert [r.levelno for r in records] == [logging.INFO, logging.INFO]
    assert "retry in 3s" in records[0].getMessage()


async def test_a_broadcast_429_holds_the_group_and_is_handed_back(
    limiter: PacedRateLimiter, pacer: SpyPacer
) -> None:
    with pytest.raises(RetryAfter):
        await send(limiter, answers(RetryAfter(timedelta(seconds=9))), chat_id="@news")
    assert pacer.holds == [(9.0, "@news")]
    assert len(pacer.turns) == 1


async def test_a_429_without_a_chat_holds_everything(
    limiter: PacedRateLimiter, pacer: SpyPacer
) -> None:
    request = answers(RetryAfter(timedelta(seconds=2)))
    with pytest.raises(RetryAfter):
        await send(limiter, request, "editMessageText", inline_message_id="x")
    assert pacer.holds == [(2.0, None)]


async def test_other_errors_pass_through_unchanged(
    limiter: PacedRateLimiter, pacer: SpyPacer
) -> None:
    error = BadRequest("Bad Request: chat not found")
    with pytest.raises(BadRequest) as caught:
        await send(limiter, answers(error), args={"lane": Lane.REPLY}, chat_id=42)
    assert caught.value is error
    assert pacer.holds == []


def test_retry_after_is_read_as_seconds_either_way() -> None:
    assert seconds(7) == 7.0
    assert seconds(timedelta(seconds=7)) == 7.0


async def test_a_closed_gate_keeps_the_send_from_leaving(pacer: SpyPacer) -> None:
    from telegram.error import NetworkError

    reasons = ["not the leader", None]
    limiter = PacedRateLimiter(pacer, gate=lambda: reasons[0])
    sent: list[str] = []

    async def request(*args: Any, **kwargs: Any) -> Result:
        sent.append("sent")
        return True

    with pytest.raises(NetworkError, match="not the leader"):  # kept for later, not given up
        await send(limiter, request, chat_id=1)
    assert sent == []
    reasons.pop(0)
    assert await send(limiter, request, chat_id=1) is True
    assert sent == ["sent"]
