"""The write tools against Google stubbed at the HTTP layer (respx): the exact request
Google receives once a card is approved, none after a reject, and a refusal from Google
said plainly without a retry loop. The run pauses and resumes through the real graph and
the Redis checkpointer."""

from __future__ import annotations

import base64
import email
import json
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from chat.graph import build_graph, get_checkpointer, run_config, stream_turn, waiting_approvals
from chat.offline_model import OfflineChatModel, Reply
from tests.google_bodies import error_body
from workspace.credentials import GoogleCredentials, save_credentials

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "ada@example.com"
TOKEN = "ya29.approvals-token"


class OneCall(OfflineChatModel):
    """Calls one tool with fixed arguments, then says what came back."""

    name_: str = ""
    args_: dict = {}

    def _plan(self, messages, kwargs):
        if isinstance(messages[-1], ToolMessage):
            return Reply(f"result: {messages[-1].content}")
        return Reply(tool_calls=[{"name": self.name_, "args": self.args_, "id": "call_1"}])


@pytest.fixture(autouse=True)
def signed_in(google_api, retry_sleeps):
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    save_credentials(EMAIL, GoogleCredentials(TOKEN, "1//r", "cid", "secret", [], expiry))
    return google_api


async def run_until_card(thread: str, tool: str, args: dict):
    graph = build_graph(OneCall(name_=tool, args_=args), await get_checkpointer())
    config = run_config(thread, "Europe/Paris", EMAIL)
    async for _ in stream_turn(graph, config, "m1", "do it"):
        pass
    (card,) = await waiting_approvals(graph, config)
    return graph, config, card


async def decide(graph, config, card, decision: dict) -> str:
    value = {**decision, "interrupt_id": card.id, "by": EMAIL, "at": "2026-12-02T10:00:00+00:00"}
    if decision["type"] == "approve":
        value["plan"] = card.value["plan"]
    async for _ in stream_turn(graph, config, "d1", "", resume={card.id: value}):
        pass
    state = await graph.aget_state(config)
    last = state.values["messages"][-1]
    assert isinstance(last, AIMessage)
    return last.content


async def test_an_approved_mail_is_the_exact_request_and_a_rejected_one_is_none(signed_in):
    send = signed_in.post("/gmail/v1/users/me/messages/send").respond(
        200, json={"id": "m-sent", "threadId": "t-1", "labelIds": ["SENT"]}
    )
    args = {"to": ["Zoë Müller <zoe@example.de>"], "subject": "Grüße", "body": "Bis bald!"}
    graph, config, card = await run_until_card("g-send", "send_email", args)
    assert card.value["summary"].startswith("Send to Zoë Müller <zoe@example.de>, subject 'Grüße'")
    assert send.call_count == 0
    reply = await decide(graph, config, card, {"type": "approve"})
    assert send.call_count == 1 and reply.startswith("result: Send to")
    request = send.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    raw = json.loads(request.content)["raw"]
    mime = email.message_from_bytes(base64.urlsafe_b64decode(raw), policy=policy.default)
    assert mime["Subject"] == "Grüße" and "=?utf-8?" in mime.as_string().split("\n\n")[0]
    assert mime["To"] == "Zoë Müller <zoe@example.de>"
    assert mime["From"] == EMAIL
    assert mime["Message-ID"].endswith("@agenticpal.local>")
    assert mime.get_content().strip() == "Bis bald!"

    graph, config, card = await run_until_card("g-send-no", "send_email", args)
    reply = await decide(graph, config, card, {"type": "reject", "message": "not now"})
    assert send.call_count == 1  # nothing more reached Google
    assert "rejected" in reply and "not now" in reply


async def test_a_calendar_insert_carries_its_own_event_id(signed_in):
    insert = signed_in.post("/calendar/v3/calendars/primary/events").respond(
        200,
        json={
            "id": "x",
            "summary": "Design review",
            "status": "confirmed",
            "start": {"dateTime": "2026-12-08T14:00:00+01:00"},
            "end": {"dateTime": "2026-12-08T15:00:00+01:00"},
        },
    )
    args = {"title": "Design review", "start": "2026-12-08T14:00", "attendees": ["ann@example.com"]}
    graph, config, card = await run_until_card("g-insert", "create_event", args)
    assert "Tue 8 Dec 14:00-15:00 Europe/Paris, 1 guest" in card.value["summary"]
    await decide(graph, config, card, {"type": "approve"})
    request = insert.calls.last.request
    body = json.loads(request.content)
    assert body["id"] and set(body["id"]) <= set("0123456789abcdefghijklmnopqrstuv")
    assert body["start"] == {"dateTime": "2026-12-08T14:00:00+01:00", "timeZone": "Europe/Paris"}
    assert body["attendees"] == [{"email": "ann@example.com"}]
    assert request.url.params["sendUpdates"] == "all"


async def test_google_refusing_an_approved_action_is_said_plainly_once(signed_in):
    get = signed_in.get("/calendar/v3/calendars/primary/events/gone1").respond(
        200,
        json={
            "id": "gone1",
            "summary": "Standup",
            "status": "confirmed",
            "start": {"dateTime": "2026-12-08T09:00:00+01:00"},
            "end": {"dateTime": "2026-12-08T09:15:00+01:00"},
        },
    )
    delete = signed_in.delete("/calendar/v3/calendars/primary/events/gone1").respond(
        404, json=error_body(404, "notFound", "Not Found")
    )
    graph, config, card = await run_until_card("g-gone", "delete_event", {"event_id": "gone1"})
    assert card.value["summary"].startswith("Delete 'Standup' Tue 8 Dec 09:00-09:15")
    reply = await decide(graph, config, card, {"type": "approve"})
    assert delete.call_count == 1  # a 4xx is not retried
    assert "Not done" in reply and "could not find" in reply
    assert get.call_count >= 1


async def test_an_edit_that_fails_validation_runs_nothing(signed_in):
    send = signed_in.post("/gmail/v1/users/me/messages/send").respond(200, json={"id": "m"})
    args = {"to": ["ann@example.com"], "subject": "Hi", "body": "Hello"}
    graph, config, card = await run_until_card("g-bad-edit", "send_email", args)
    value = {"type": "edit", "args": {"to": ["not an address"]}, "interrupt_id": card.id}
    async for _ in stream_turn(graph, config, "d1", "", resume={card.id: value}):
        pass
    (again,) = await waiting_approvals(graph, config)
    assert "not an email address" in again.value["error"]
    assert send.call_count == 0
