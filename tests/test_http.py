"""The shared HTTP client: what a refusal says, what is retried, what is not JSON."""

from __future__ import annotations

import aiohttp
import pytest

from bot.sources import ParseError, SourceError
from bot.sources.http import HttpClient
from tests.harness.fake_source import FakeSource
from tests.harness.files import fixture_json


async def no_sleep(_: float) -> None:
    return None


async def test_a_4xx_json_error_keeps_the_providers_words_and_is_not_retried() -> None:
    async with FakeSource() as src, aiohttp.ClientSession() as session:
        body = {"code": -1121, "msg": "Invalid symbol."}
        src.route("GET", "/fapi/v1/premiumIndex", body=body, status=400)
        with pytest.raises(SourceError, match=r"HTTP 400: -1121 Invalid symbol\.") as caught:
            await HttpClient(session, no_sleep).get_json(
                src.url("/fapi/v1/premiumIndex"), retries=3
            )
    assert caught.value.permanent
    assert len(src.requests) == 1


async def test_a_451_geo_block_is_named() -> None:
    async with FakeSource() as src, aiohttp.ClientSession() as session:
        src.route("GET", "/x", body=fixture_json("binance", "geo_451.json"), status=451)
        with pytest.raises(SourceError, match="geo-blocked"):
            await HttpClient(session, no_sleep).get_json(src.url("/x"))


async def test_5xx_is_retried_then_succeeds() -> None:
    from tests.harness.fake_source import Answer

    async with FakeSource() as src, aiohttp.ClientSession() as session:
        src.route_sequence("/x", [Answer("busy", status=503), {"ok": 1}])
        assert await HttpClient(session, no_sleep).get_json(src.url("/x"), retries=2) == {"ok": 1}
    assert len(src.requests) == 2


@pytest.mark.parametrize("body", ["<html>maintenance</html>", "1" * 5000])
async def test_what_is_not_json_is_a_parse_error(body: str) -> None:
    async with FakeSource() as src, aiohttp.ClientSession() as session:
        src.route("GET", "/x", body=body, content_type="text/plain")
        with pytest.raises(ParseError, match="expected JSON"):
            await HttpClient(session, no_sleep).get_json(src.url("/x"))
