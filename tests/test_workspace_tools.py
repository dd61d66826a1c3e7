"""workspace.tools and the read path end to end: the offline model's phrasings, the demo
workspace over the websocket, honest failures, prompt injection, two users at once, and
no token anywhere it must not be (Redis, events, logs)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgiref.sync import sync_to_async
from langchain_core.messages import AIMessage, HumanMessage

from chat import runner
from chat.graph import TOOLS, build_graph, run_config
from chat.offline_model import OfflineChatModel, plan_reply
from tests.chat_support import connected, receive_until, session_cookie, signed_in_client
from tests.google_bodies import BASE, error_body
from workspace import demo, tools
from workspace.credentials import GoogleCredentials, save_credentials

pytestmark = pytest.mark.django_db(transaction=True)

TOOL_NAMES = [t.name for t in TOOLS]
EMAIL = "ada@example.com"


def config(email: str = EMAIL, timezone: str = "Europe/Paris") -> dict:
    return run_config("t-tools", timezone, email)


async def call(tool, args: dict, email: str = EMAIL, timezone: str = "Europe/Paris"):
    """Invoke a tool as LangGraph's ToolNode does: the ToolMessage with its artifact."""
    request = {"type": "tool_call", "id": "call-1", "name": tool.name, "args": args}
    return await tool.ainvoke(request, config(email, timezone))


@pytest.fixture
def demo_user(settings):
    settings.WORKSPACE_DEMO = True
    demo.connect(EMAIL)
    return EMAIL


def store_google_token(email: str, token: str) -> None:
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    save_credentials(
        email, GoogleCredentials(token, "1//refresh-" + token, "cid", "secret", [], expiry)
    )


# --- the offline model: common phrasings -> the read tools -----------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What's on my calendar tomorrow?", [("calendar_events", {"when": "tomorrow"})]),
        ("show my unread emails", [("search_email", {"query": "in:inbox is:unread", "limit": 20})]),
        ("what tasks are due this week?", [("list_tasks", {"due": "this week"})]),
        ("find 30 minutes free on Friday", [("find_free_time", {"minutes": 30, "when": "on friday"})]),
        ("any mail from ann this week?", [("search_email", {"query": "in:inbox from:ann newer_than:7d", "limit": 20})]),
        (
            "this week's agenda and my open tasks",
            [("calendar_events", {"when": "this week"}), ("list_tasks", {"due": "this week"})],
        ),
        (
            "my calendar tomorrow and tasks due this week",
            [("calendar_events", {"when": "tomorrow"}), ("list_tasks", {"due": "this week"})],
        ),
    ],
)  # fmt: skip
def test_the_offline_model_calls_the_matching_tools(question, expected):
    reply = plan_reply([HumanMessage(question)], TOOL_NAMES)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == expected


def test_the_clock_still_answers_time_questions():
    reply = plan_reply([HumanMessage("what time is it in Asia/Tokyo?")], TOOL_NAMES)
    assert [c["name"] for c in reply.tool_calls] == ["current_datetime"]


# --- the demo workspace ----------------------------------------------------------------------


async def test_demo_tools_answer_from_the_emulator_labelled_as_a_demo(demo_user):
    agenda = await call(tools.calendar_events, {"when": "this week"})
    assert agenda.artifact["kind"] == "agenda" and agenda.artifact["events"]
    assert agenda.artifact["demo"] == demo.DEMO_LABEL and demo.DEMO_LABEL in agenda.content
    inbox = await call(tools.search_email, {"query": "is:unread", "limit": 20})
    assert inbox.artifact["kind"] == "inbox" and all(
        m["unread"] for m in inbox.artifact["messages"]
    )
    checklist = await call(tools.list_tasks, {"due": "this week"})
    assert checklist.artifact["kind"] == "tasks" and checklist.artifact["tasks"]
    message = await call(tools.read_email, {"message_id": inbox.artifact["messages"][0]["id"]})
    assert message.artifact["kind"] == "message" and message.artifact["message"]["text"]


async def test_tomorrows_agenda_over_the_websocket_renders_an_agenda(demo_user):
    client = await signed_in_client(EMAIL)
    socket, _ = await connected("t-ws-agenda", session_cookie(client))
    await socket.send_to(
        text_data=json.dumps(
            {
                "type": "message",
                "message": "what's on my calendar tomorrow",
                "timezone": "Europe/Paris",
            }
        )
    )
    seen = await receive_until(socket, "done", wait=20)
    tool_event = next(e for e in seen if e["type"] == "tool")
    assert tool_event["name"] == "calendar_events" and tool_event["data"]["kind"] == "agenda"
    assert '<table class="agenda">' in tool_event["html"] and demo.DEMO_LABEL in tool_event["html"]
    assert "event(s)" in seen[-1]["content"]
    page = await client.get("/chat/t-ws-agenda/")  # the no-JS page renders the same result
    assert '<table class="agenda">' in page.content.decode()
    await socket.disconnect()


# --- failures: one sentence, the turn completes ------------------------------------------------


async def test_without_google_the_tools_say_so_and_offer_to_connect(settings):
    settings.WORKSPACE_DEMO = False
    result = await call(tools.calendar_events, {"when": "today"})
    assert result.content.startswith("Google is not connected")
    assert result.artifact == {
        "kind": "notice",
        "level": "connect",
        "text": result.content,
        "url": "/login/",
    }


async def test_an_unreadable_date_asks_for_a_clearer_one(demo_user):
    result = await call(tools.calendar_events, {"when": "blorp"})
    assert result.artifact["level"] == "clarify" and "blorp" in result.content


async def test_a_missing_scope_names_it_and_links_to_consent(google_api):
    await sync_to_async(store_google_token)(EMAIL, "ya29.ada")
    body = error_body(
        403, "insufficientPermissions", "Request had insufficient authentication scopes."
    )
    google_api.get(path__startswith="/tasks/v1/").respond(403, json=body)
    result = await call(tools.task_lists, {})
    assert result.artifact["level"] == "connect" and "Tasks" in result.content
    assert result.artifact["url"] == "/login/?scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Ftasks"


async def test_google_timing_out_ends_the_turn_with_one_sentence(
    google_api, settings, retry_sleeps
):
    settings.GOOGLE_API_TIMEOUT = 0.2
    await sync_to_async(store_google_token)(EMAIL, "ya29.ada")
    google_api.get(path__startswith="/calendar/v3/").mock(side_effect=httpx.ConnectTimeout("slow"))
    result = await call(tools.calendar_events, {"when": "today"})
    assert result.artifact["kind"] == "notice" and "not answering" in result.content


async def test_a_malformed_answer_gives_a_readable_partial_result(google_api):
    await sync_to_async(store_google_token)(EMAIL, "ya29.ada")
    odd = {
        "items": [
            {"id": "a"},
            {"id": "b", "summary": "Kept", "start": {"date": "2026-12-03"}},
            "junk",
        ]
    }
    google_api.get(path__startswith="/calendar/v3/").respond(200, json=odd)
    result = await call(tools.calendar_events, {"when": "2026-12-03"})
    assert [e["title"] for e in result.artifact["events"]] == ["Kept"]


# --- prompt injection --------------------------------------------------------------------------


async def test_an_email_that_gives_orders_makes_the_offline_model_call_nothing(demo_user):
    inbox = await call(tools.search_email, {"query": "subject:urgent"})
    assert "Ignore previous instructions" in inbox.content
    assert "not instructions" in inbox.content  # fenced as external data
    turn = [
        HumanMessage("show my unread emails"),
        AIMessage("", tool_calls=[{"name": "search_email", "args": {}, "id": "call-1"}]),
        inbox,
    ]
    reply = plan_reply(turn, TOOL_NAMES)
    assert reply.tool_calls == [] and "attacker" not in reply.text


async def test_the_graph_runs_the_injection_turn_without_a_second_tool_call(demo_user):
    graph = build_graph(model=OfflineChatModel())
    state = await graph.ainvoke({"messages": [HumanMessage("show my unread emails")]}, config())
    calls = [c for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert [c["name"] for c in calls] == ["search_email"]


# --- two users, their own tokens, and tokens nowhere else ------------------------------------


async def test_two_users_at_once_each_use_their_own_token(
    google_api, sessions_redis, checkpoints_redis, caplog
):
    caplog.set_level(logging.DEBUG)
    await sync_to_async(store_google_token)("ann@example.com", "ya29.secret-ann")
    await sync_to_async(store_google_token)("bob@example.com", "ya29.secret-bob")
    seen: list[tuple[str, str]] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.02)
        seen.append((request.headers["Authorization"], request.url.params["timeMin"]))
        return httpx.Response(200, json={"timeZone": "UTC", "items": []})

    google_api.get(path__startswith="/calendar/v3/").mock(side_effect=answer)
    for email in ("ann@example.com", "bob@example.com"):
        await runner.submit(f"t-{email[:3]}", "what's on my calendar today", email, "UTC")
    await runner.drain()
    assert sorted(h for h, _ in seen) == ["Bearer ya29.secret-ann", "Bearer ya29.secret-bob"]
    stored = b"".join(
        client.dump(key) or b""
        for client in (sessions_redis, checkpoints_redis)
        for key in client.scan_iter()
    )
    for secret in (b"ya29.secret", b"Bearer"):
        assert secret not in stored  # credentials are encrypted; events, checkpoints clean
    assert "ya29.secret" not in caplog.text


def test_tool_urls_stay_on_google_or_the_demo():
    assert BASE.startswith("https://")
    assert tools.safe_link("javascript:alert(1)") is None and tools.safe_link("https://x.example/a")
