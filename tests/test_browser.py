"""The chat in a real browser: Playwright driving Debian's chromium against the real server.

Sign in with the one-time local URL, start a chat, send a message, watch the reply
stream in over the websocket, reload, and find the conversation restored; ask the demo
workspace for tomorrow's agenda and the unread mail and see both rendered.

Playwright never downloads a browser here: ``scripts/install-browser.sh`` (run by
``make test``) installs Debian's chromium, and the test fails — it is not skipped —
when that browser is missing, so CI cannot pass without running it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e_support import LiveServer

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"chromium not found at {CHROMIUM}: the browser test needs Debian's chromium. "
            "Run `bash scripts/install-browser.sh` (as root it apt-installs it; `make test` "
            "runs it), or set CHROMIUM_PATH to a chromium binary.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def server(chromium: str) -> Iterator[LiveServer]:
    with LiveServer() as live:
        yield live


@pytest.fixture
async def page(chromium: str) -> AsyncIterator[Page]:
    """A page of a fresh headless chromium context. Playwright's async API: the test
    runs on pytest-asyncio's loop like the rest of the suite (the sync API would keep a
    loop of its own running in this thread)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            await browser.close()


async def test_sign_in_chat_streamed_reply_and_history_after_reload(
    server: LiveServer, page: Page
) -> None:
    frames: list[dict] = []

    def watch(ws) -> None:
        ws.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", watch)

    await page.goto(server.login_url())
    await expect(page).to_have_url(f"{server.url}/")  # signed in, on the chat index
    await page.get_by_role("button", name="Start a new chat").click()
    await expect(page).to_have_url(re.compile(rf"{re.escape(server.url)}/chat/[A-Za-z0-9_-]+/$"))
    chat = page.locator("#chat")
    await expect(chat).to_have_class(_has("live"))  # the websocket is open

    await page.locator("#message").fill("Hello, my name is Ada.")
    await page.locator("#message").press("Enter")

    await expect(page.locator("li.msg.user").last).to_have_text("Hello, my name is Ada.")
    reply = page.locator("li.msg.assistant").last
    await expect(reply).not_to_have_class(_has("streaming"), timeout=30_000)
    done = [f for f in frames if f.get("type") == "done"]
    assert done, f"no done event reached the page: {[f.get('type') for f in frames]}"
    tokens = [f for f in frames if f.get("type") == "token"]
    assert len(tokens) >= 2, "the reply was not streamed token by token"
    answer = done[-1]["content"]
    await expect(reply).to_contain_text(answer.split()[0])
    await expect(page.locator("#send")).to_be_enabled()

    await page.reload()
    await expect(page.locator("li.msg.user")).to_have_text(["Hello, my name is Ada."])
    await expect(page.locator("li.msg.assistant")).to_have_count(1)
    await expect(page.locator("li.msg.assistant")).to_contain_text(answer.split()[0])
    await expect(chat).to_have_class(_has("live"))  # and the socket is back after the reload


async def test_the_demo_workspace_renders_an_agenda_and_the_unread_mail(
    server: LiveServer, page: Page
) -> None:
    """``make run``'s default set-up: no Google, a local sign-in, the demo workspace."""
    await page.goto(server.login_url())
    await expect(page.locator("#google-state")).to_contain_text("Demo workspace")
    await page.get_by_role("button", name="Start a new chat").click()
    await expect(page.locator("#chat")).to_have_class(_has("live"))

    await page.locator("#message").fill("What's on my calendar tomorrow?")
    await page.locator("#message").press("Enter")
    agenda = page.locator("li.msg.tool table.agenda")
    await expect(agenda).to_be_visible(timeout=30_000)
    assert await agenda.locator("tbody tr").count() >= 1
    await expect(page.locator("li.msg.tool .demo-label").first).to_contain_text(
        "not your Google account"
    )
    await expect(page.locator("li.msg.assistant").last).to_contain_text("event(s)")
    await expect(page.locator("#send")).to_be_enabled(timeout=30_000)

    await page.locator("#message").fill("Show my unread emails")
    await page.locator("#message").press("Enter")
    inbox = page.locator("li.msg.tool table.inbox")
    await expect(inbox).to_be_visible(timeout=30_000)
    await expect(inbox.locator("tr.unread").first).to_be_visible()
    await expect(inbox).to_contain_text("Urgent: action required")  # shown as data, nothing more

    await page.reload()  # the no-JS rendering of the same results
    await expect(page.locator("table.agenda")).to_be_visible()
    await expect(page.locator("table.inbox")).to_be_visible()


def _has(css_class: str) -> re.Pattern:
    """Matches a ``class`` attribute that includes ``css_class``."""
    return re.compile(rf"(^|\s){re.escape(css_class)}(\s|$)")
