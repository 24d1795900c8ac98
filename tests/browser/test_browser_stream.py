"""A chat page on one origin streams from the gateway on another, in a real Chromium.

The page (tests/browser/page/index.html) is served by a tiny aiohttp server on one port;
the gateway runs on simulated providers on another port, so every call is cross-origin.
The page sends `Authorization` and `Content-Type: application/json`, so Chromium sends a
CORS preflight first (seen here through the DevTools protocol), then reads the SSE answer
with a ReadableStream reader.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from tests.stack import Stack, stack

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.timeout(900)  # the first test may install Chromium with apt-get

PAGE_DIR = Path(__file__).parent / "page"
KEY = "k-page"
ANSWER = "one two three four five six seven eight"
# Tokens 40 ms apart: each leaves the gateway in its own write, as a model's tokens would.
SERVERS = {
    "sim": {
        "kind": "openai",
        "models": {"m": {"ttft_ms": 5, "itl_ms": 40, "text": ANSWER}},
    }
}
CORS = {"allow_origins": ["http://localhost:*"]}
CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "count"}]}


@pytest.fixture
async def page_port() -> AsyncIterator[int]:
    """The static server of the chat page; it has two origins: localhost and 127.0.0.1."""

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE_DIR / "index.html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def gateway() -> AsyncIterator[Stack]:
    async with stack(SERVERS, auth={"keys": [KEY]}, cors=CORS) as s:
        yield s


async def open_page(browser: Browser, url: str) -> tuple[Page, list[tuple[str, str]]]:
    """The page, and the (method, url) of every request Chromium sends, preflights included
    (Playwright's own request events leave preflights out; the DevTools protocol does not)."""
    page = await browser.new_page()
    sent: list[tuple[str, str]] = []
    cdp = await page.context.new_cdp_session(page)
    cdp.on(
        "Network.requestWillBeSent",
        lambda event: sent.append((event["request"]["method"], event["request"]["url"])),
    )
    await cdp.send("Network.enable")
    await page.goto(url)
    return page, sent


async def stream_chat(page: Page, gateway_url: str, key: str) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(
        "([gateway, key, body]) => streamChat(gateway, key, body)", [gateway_url, key, CHAT]
    )
    return result


async def test_page_streams_an_answer_in_pieces_through_preflight(
    browser: Browser, page_port: int, gateway: Stack
) -> None:
    page, sent = await open_page(browser, f"http://localhost:{page_port}/")
    result = await stream_chat(page, gateway.url, KEY)
    assert result["status"] == 200, result
    assert result["text"] == ANSWER and result["done"]
    partial = [text for text in result["reads"] if text and text != ANSWER]
    assert partial, f"the answer arrived in one piece: {result['reads']}"
    assert all(ANSWER.startswith(text) for text in result["reads"])
    assert result["deployment"] == "m"  # an exposed header, readable by the page
    assert result["requestId"].startswith("req_")
    chat_url = f"{gateway.url}/v1/chat/completions"
    to_gateway = sorted(method for method, url in sent if url == chat_url)
    assert to_gateway == ["OPTIONS", "POST"], sent  # the preflight, then the request
    assert await page.text_content("#answer") == ANSWER


async def test_page_reads_a_wrong_key_error(
    browser: Browser, page_port: int, gateway: Stack
) -> None:
    page, _ = await open_page(browser, f"http://localhost:{page_port}/")
    result = await stream_chat(page, gateway.url, "wrong-key")
    assert result["status"] == 401, result
    error = result["error"]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key"
    assert result["requestId"].startswith("req_")
    assert gateway.log.records == []


async def test_page_on_an_origin_not_allowed_cannot_call(
    browser: Browser, page_port: int, gateway: Stack
) -> None:
    page, sent = await open_page(browser, f"http://127.0.0.1:{page_port}/")  # not localhost
    with pytest.raises(Exception, match="Failed to fetch"):
        await stream_chat(page, gateway.url, KEY)
    chat_url = f"{gateway.url}/v1/chat/completions"
    assert ("OPTIONS", chat_url) in sent
    assert gateway.log.records == [], "the preflight failed: the POST was never sent"
