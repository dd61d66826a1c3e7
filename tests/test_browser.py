"""The chat in a real browser: Playwright driving Debian's chromium against the real server.

Sign in with the one-time local URL, start a chat, send a message, watch the reply
stream in over the websocket (its Markdown rendered as it comes), the thread list name
the new chat at once, reload, and find the conversation restored; an empty message gets
a hint; Stop keeps the partial reply marked "Stopped" in every tab and after a reload;
a phone's 375 px fit without sideways scrolling, the thread list in a drawer; ask the
demo workspace for tomorrow's agenda and the unread mail and see both rendered; approve a
meeting on its approval card (in two tabs, across a reload) and reject an email with a
reason, Google being the Workspace emulator in a process of its own.

Playwright never downloads a browser here: ``scripts/install-browser.sh`` (run by
``make test``) installs Debian's chromium, and the test fails — it is not skipped —
when that browser is missing, so CI cannot pass without running it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e_support import LiveServer, WorkspaceStub

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


# The offline model's pace here: a reply of ~45 words takes ~4.5 s, time enough to press
# Stop in the middle of it (slower than its default, 0.08; the other e2e tests' 0.02).
WORD_DELAY = "0.1"


@pytest.fixture(scope="module")
def server(chromium: str) -> Iterator[LiveServer]:
    with LiveServer(extra_env={"AGENTICPAL_OFFLINE_WORD_DELAY": WORD_DELAY}) as live:
        yield live


@contextlib.asynccontextmanager
async def browser_page(chromium: str, **options: object) -> AsyncIterator[Page]:
    """A page of a fresh headless chromium context (``options``: the context's).
    Playwright's async API: the test runs on pytest-asyncio's loop like the rest of the
    suite (the sync API would keep a loop of its own running in this thread)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            context = await browser.new_context(**options)
            page = await context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            await browser.close()


@pytest.fixture
async def page(chromium: str) -> AsyncIterator[Page]:
    async with browser_page(chromium) as page:
        yield page


PHONE_WIDTH = 375


@pytest.fixture
async def phone(chromium: str) -> AsyncIterator[Page]:
    """A page as a phone shows it: 375 px wide."""
    viewport = {"width": PHONE_WIDTH, "height": 740}
    async with browser_page(chromium, viewport=viewport, is_mobile=True) as page:
        yield page


# Records, from the page's own DOM changes, the bold text of a reply still streaming.
WATCH_STREAMING_BOLD = """() => {
  window.boldWhileStreaming = [];
  new MutationObserver(() => {
    document.querySelectorAll("li.msg.assistant.streaming strong")
      .forEach((el) => window.boldWhileStreaming.push(el.textContent));
  }).observe(document.getElementById("messages"),
             {childList: true, subtree: true, characterData: true});
}"""


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
    title = page.locator("#thread-list li.current .thread-title")
    await expect(title).to_have_text("New chat")

    # An empty message is not sent: a hint says why, and goes when something is typed.
    hint = page.locator("#composer-hint")
    await page.locator("#message").fill("   ")
    await page.locator("#message").press("Enter")
    await expect(hint).to_be_visible()
    await expect(hint).to_contain_text("Type a message first")
    await expect(page.locator("li.msg.user")).to_have_count(0)
    assert not [f for f in frames if f.get("type") == "user"]

    await page.evaluate(WATCH_STREAMING_BOLD)
    await page.locator("#message").fill("Hello, my name is Ada.")
    await expect(hint).to_be_hidden()
    await page.locator("#message").press("Enter")

    await expect(page.locator("li.msg.user").last).to_have_text("Hello, my name is Ada.")
    await expect(title).to_have_text("Hello, my name is Ada.")  # named at once, no reload
    await expect(page).to_have_title("Hello, my name is Ada. · AgenticPal")
    reply = page.locator("li.msg.assistant").last
    await expect(reply).not_to_have_class(_has("streaming"), timeout=30_000)
    done = [f for f in frames if f.get("type") == "done"]
    assert done, f"no done event reached the page: {[f.get('type') for f in frames]}"
    tokens = [f for f in frames if f.get("type") == "token"]
    assert len(tokens) >= 2, "the reply was not streamed token by token"
    answer = done[-1]["content"]
    await expect(reply).to_contain_text(answer.split()[0])
    # "Nice to meet you, **Ada**!": bold while it streamed, not only once it was done.
    assert "**Ada**" in answer
    assert "Ada" in await page.evaluate("window.boldWhileStreaming"), "no <strong> before done"
    await expect(reply.locator("strong")).to_have_text("Ada")
    assert "**" not in await reply.inner_text()
    await expect(page.locator("#send")).to_be_enabled()

    await page.reload()
    await expect(page.locator("li.msg.user")).to_have_text(["Hello, my name is Ada."])
    await expect(page.locator("li.msg.assistant")).to_have_count(1)
    await expect(page.locator("li.msg.assistant")).to_contain_text(answer.split()[0])
    await expect(page.locator("li.msg.assistant strong")).to_have_text("Ada")
    await expect(chat).to_have_class(_has("live"))  # and the socket is back after the reload
    await expect(title).to_have_text("Hello, my name is Ada.")


async def test_stop_keeps_the_partial_reply_marked_stopped_in_every_tab(
    server: LiveServer, page: Page
) -> None:
    await page.goto(server.login_url())
    await page.get_by_role("button", name="Start a new chat").click()
    chat = page.locator("#chat")
    await expect(chat).to_have_class(_has("live"))
    other = await page.context.new_page()  # a second tab on the same chat
    await other.goto(page.url)
    await expect(other.locator("#chat")).to_have_class(_has("live"))

    await page.locator("#message").fill("Tell me about yourself")
    await page.locator("#message").press("Enter")
    streaming = page.locator("li.msg.assistant.streaming")
    await expect(streaming).to_contain_text("You said")  # the reply has begun
    await expect(page.locator("#stop")).to_be_enabled()
    await page.locator("#stop").click()

    for tab in (page, other):
        reply = tab.locator("li.msg.assistant").last
        await expect(reply).to_have_class(_has("stopped"))
        await expect(reply.locator(".stopped-mark")).to_have_text("Stopped")
        await expect(reply).not_to_have_class(_has("streaming"))
        await expect(reply.locator(".body")).to_contain_text("You said")
        await expect(tab.locator("#stop")).to_be_disabled()
    kept = await page.locator("li.msg.assistant .body").inner_text()
    assert "use a real model" not in kept, "the reply was not stopped in the middle"

    await page.reload()  # the page's rendering, then the history's
    reply = page.locator("li.msg.assistant")
    await expect(reply).to_have_count(1)
    await expect(reply.locator(".stopped-mark")).to_have_text("Stopped")
    await expect(chat).to_have_class(_has("live"))
    await expect(reply.locator(".stopped-mark")).to_have_text("Stopped")
    await expect(reply.locator(".body")).to_contain_text("You said")
    assert "use a real model" not in await reply.locator(".body").inner_text()
    await expect(page.locator("#send")).to_be_enabled()


async def scroll_width(page: Page) -> int:
    return await page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )


async def test_a_phone_375_px_wide_scrolls_only_down(server: LiveServer, phone: Page) -> None:
    page = phone
    await page.goto(server.login_url())
    await expect(page.get_by_role("button", name="Start a new chat")).to_be_visible()
    assert await scroll_width(page) <= PHONE_WIDTH
    await page.get_by_role("button", name="Start a new chat").click()
    await expect(page.locator("#chat")).to_have_class(_has("live"))
    assert await scroll_width(page) <= PHONE_WIDTH

    # The thread list is a drawer above the chat, closed on a chat page, a tap away.
    drawer = page.locator("#thread-drawer")
    current = page.locator("#thread-list li.current a")
    await expect(current).to_be_hidden()
    await expect(page.locator("#message")).to_be_in_viewport()
    await drawer.locator("summary").click()
    await expect(current).to_be_visible()
    await expect(current).to_have_attribute("href", re.compile(r"^/chat/[A-Za-z0-9_-]+/$"))

    # A wide reply (an agenda table, a long word) still fits the width.
    await page.locator("#message").fill("What's on my calendar tomorrow? " + "x" * 120)
    await page.locator("#message").press("Enter")
    await expect(page.locator("li.msg.tool table.agenda")).to_be_visible(timeout=30_000)
    await expect(page.locator("#send")).to_be_enabled(timeout=30_000)
    assert await scroll_width(page) <= PHONE_WIDTH
    await page.reload()
    await expect(page.locator("table.agenda")).to_be_visible()
    assert await scroll_width(page) <= PHONE_WIDTH


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


LOCAL_EMAIL = "developer@localhost"  # who a local sign-in is
GOOGLE_TOKEN = f"demo.{LOCAL_EMAIL}"  # their user in the emulator


@pytest.fixture(scope="module")
def google(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkspaceStub]:
    """The demo workspace (the emulator) as Google, in a process of its own: the test
    can look at what it holds and what it received."""
    stub = WorkspaceStub(0, Path(tmp_path_factory.mktemp("stub")) / "stub.log").start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def google_server(google: WorkspaceStub) -> Iterator[tuple[LiveServer, str]]:
    """The server with the local user connected to ``google``, and a sign-in URL (one
    Django start-up for both: each takes seconds)."""
    env = {"WORKSPACE_DEMO": "false", "GOOGLE_API_BASE_URL": google.url}
    with LiveServer(extra_env=env) as live:
        code = (
            "from datetime import UTC, datetime, timedelta\n"
            "from django.urls import reverse\n"
            "from workspace.credentials import GoogleCredentials, save_credentials\n"
            "from workspace.views import issue_login_token\n"
            "expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)\n"
            f"save_credentials({LOCAL_EMAIL!r}, GoogleCredentials({GOOGLE_TOKEN!r}, "
            "'refresh', 'cid', 'secret', [], expiry))\n"
            f"print({live.url!r} + reverse('local_login', args=[issue_login_token()]))\n"
        )
        result = live.manage("shell", "-c", code)
        assert result.returncode == 0, result.stderr
        yield live, result.stdout.strip().splitlines()[-1]


def google_get(google: WorkspaceStub, path: str, **params: object) -> dict:
    answer = httpx.get(
        f"{google.url}{path}", params=params, headers={"Authorization": f"Bearer {GOOGLE_TOKEN}"}
    )
    answer.raise_for_status()
    return answer.json()


def sent_mail(google: WorkspaceStub) -> list[str]:
    found = google_get(google, "/gmail/v1/users/me/messages", labelIds="SENT")
    return [m["id"] for m in found.get("messages", [])]


async def test_approve_a_meeting_and_reject_an_email_on_their_cards(
    google_server: tuple[LiveServer, str], google: WorkspaceStub, page: Page
) -> None:
    _server, login_url = google_server
    sent_frames: list[dict] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framesent", lambda payload: sent_frames.append(json.loads(payload))),
    )
    sent_before = sent_mail(google)
    await page.goto(login_url)
    await page.get_by_role("button", name="Start a new chat").click()
    chat = page.locator("#chat")
    await expect(chat).to_have_class(_has("live"))

    await page.locator("#message").fill("add a meeting with ann@example.com next Tuesday at 2pm")
    await page.locator("#message").press("Enter")
    cards = page.locator("li.msg.approval")
    await expect(cards).to_have_count(1, timeout=30_000)
    await expect(cards.locator(".approval-summary")).to_contain_text("ann@example.com")
    badge = page.locator("#thread-list li.current .thread-badge")
    await expect(badge).to_have_text("Needs approval")
    assert not _meetings(google), "the meeting was created before it was approved"
    # A card that came as an event gets the page's CSRF token (for the no-socket POST).
    assert await cards.locator("input[name=csrfmiddlewaretoken]").input_value()

    await page.reload()  # the card survives a reload, once (the page's, then history's)
    await expect(chat).to_have_class(_has("live"))
    await expect(cards).to_have_count(1)
    await expect(badge).to_have_text("Needs approval")
    other = await page.context.new_page()  # a second tab on the same chat
    await other.goto(page.url)
    await expect(other.locator("#chat")).to_have_class(_has("live"))
    await expect(other.locator("li.msg.approval")).to_have_count(1)

    card = cards.first
    await card.get_by_role("button", name="Approve").click()
    await expect(card.locator(".approval-state")).to_contain_text("Approved")
    await expect(card.get_by_role("button", name="Approve")).to_be_disabled()
    await expect(other.locator("li.msg.approval .approval-state")).to_contain_text("Approved")
    done = page.locator("li.msg.tool .result-action .action-done")
    await expect(done).to_contain_text("Done", timeout=30_000)
    await expect(other.locator("li.msg.tool .result-action .action-done")).to_contain_text("Done")
    await expect(page.locator("#send")).to_be_enabled()
    await expect(badge).to_have_count(0)  # idle: no badge
    await other.close()
    decisions = [f for f in sent_frames if f.get("type") == "decision"]
    assert [list(d["decisions"].values()) for d in decisions] == [[{"type": "approve"}]]
    (meeting,) = _meetings(google)
    assert "ann@example.com" in [a["email"] for a in meeting.get("attendees", [])]

    await page.locator("#message").fill("send an email to ann@example.com saying hello")
    await page.locator("#message").press("Enter")
    waiting = page.locator("li.msg.approval:not(.decided)")
    await expect(waiting).to_have_count(1, timeout=30_000)
    await expect(waiting.locator(".approval-summary")).to_contain_text("ann@example.com")
    reason = waiting.get_by_label("Reason for rejecting")
    await reason.fill("I will call her instead")
    await reason.press("Enter")  # rejects (never the form's first button, Approve)
    rejected = page.locator("li.msg.approval").last
    await expect(rejected.locator(".approval-state")).to_contain_text("Rejected")
    outcome = page.locator("li.msg.tool .result-action").last
    await expect(outcome).to_contain_text("Not done", timeout=30_000)
    await expect(page.locator("li.msg.assistant").last).to_contain_text("I will call her instead")
    await expect(page.locator("#send")).to_be_enabled()
    decisions = [f for f in sent_frames if f.get("type") == "decision"]
    assert list(decisions[-1]["decisions"].values()) == [
        {"type": "reject", "message": "I will call her instead"}
    ]
    assert sent_mail(google) == sent_before  # no new SENT message
    assert google.logged(r"POST /gmail/v1/users/me/messages/send") == 0

    await page.reload()  # decided: the outcomes stay, no card waits
    await expect(page.locator("li.msg.approval")).to_have_count(0)
    await expect(page.locator("li.msg.tool .result-action")).to_have_count(2)


def _meetings(google: WorkspaceStub) -> list[dict]:
    found = google_get(google, "/calendar/v3/calendars/primary/events", q="Meeting with ann")
    return [e for e in found.get("items", []) if e.get("summary") == "Meeting with ann@example.com"]


def _has(css_class: str) -> re.Pattern:
    """Matches a ``class`` attribute that includes ``css_class``."""
    return re.compile(rf"(^|\s){re.escape(css_class)}(\s|$)")
