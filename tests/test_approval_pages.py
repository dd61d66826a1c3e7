"""Approval cards on the pages (no JavaScript) and through the JSON API: the thread page
shows a waiting card with its CSRF token and a "Needs approval" badge; its form, posted
to ``/chat/<thread>/decide``, approves (the action runs once), rejects with a reason or
edits as ``arg_`` fields; someone else's thread is refused and runs nothing, and so is a
card that is not waiting any more. ``POST /api/threads/<id>/decisions``: 202, 409, 403,
400. Real Redis, the real runner and graph, the demo workspace as Google."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_client as sessions_client
from chat import history
from tests.chat_support import events_until, eventually
from workspace import demo

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "ada@example.com"
OTHER = "bob@example.com"
CARD = re.compile(r'<form class="approval".*?</form>', re.S)


@pytest.fixture(autouse=True)
def demo_user(settings):
    settings.WORKSPACE_DEMO = True
    settings.AGENTICPAL_OFFLINE_WORD_DELAY = 0
    demo.connect(EMAIL)
    yield
    demo._emulator().state.emulator.users.pop(f"demo.{EMAIL}", None)


def google():
    """The demo workspace's state of the test user (what "Google" holds and received)."""
    return demo._emulator().state.emulator.user(f"demo.{EMAIL}")


def task_titles() -> list[str]:
    return [t["title"] for tasks in google().tasks.values() for t in tasks.values()]


def writes(method: str, path_part: str) -> int:
    return sum(1 for m, path, _q in google().requests if m == method and path_part in path)


async def browser(email: str) -> AsyncClient:
    """A signed-in client that checks CSRF like a browser's requests are checked."""
    user, _ = await get_user_model().objects.aget_or_create(
        username=email.split("@")[0], defaults={"email": email}
    )
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    return client


def field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} field"
    return html.unescape(found.group(1))


async def finished(thread_id: str, after: str = "0-0") -> list[dict]:
    """The thread's events up to its run's ``done``, once the queue is empty."""
    seen = await events_until(thread_id, "done", after=after)
    await eventually(lambda: not sessions_client().exists(keys.pending_message_key(thread_id)))
    return seen


async def page_of(client: AsyncClient, thread_id: str) -> str:
    response = await client.get(f"/chat/{thread_id}/")
    assert response.status_code == 200
    return response.content.decode()


async def waiting_card(client: AsyncClient, thread_id: str, message: str) -> tuple[str, dict]:
    """Ask for ``message`` through the no-JS composer; the page once its card waits."""
    page = await page_of(client, thread_id)  # claims the thread
    sent = await client.post(
        f"/chat/{thread_id}/send",
        {"message": message, "csrfmiddlewaretoken": field(page, "csrfmiddlewaretoken")},
    )
    assert sent.status_code == 302
    seen = await finished(thread_id)
    assert seen[-1]["status"] == "awaiting_approval"
    card = next(e for e in seen if e["type"] == "approval")
    card["done"] = seen[-1]["id"]  # what the decision's events come after
    return await page_of(client, thread_id), card


def card_form(page: str) -> str:
    forms = CARD.findall(page)
    assert len(forms) == 1, f"{len(forms)} approval cards on the page"
    return forms[0]


async def decide(client: AsyncClient, thread_id: str, form: str, **data: str):
    post = {
        "csrfmiddlewaretoken": field(form, "csrfmiddlewaretoken"),
        "interrupt_id": field(form, "interrupt_id"),
        "action": field(form, "action"),
        **data,
    }
    return await client.post(f"/chat/{thread_id}/decide", post)


async def test_the_page_shows_the_waiting_card_and_approving_it_runs_it_once():
    client = await browser(EMAIL)
    page, event = await waiting_card(client, "pg-approve", "create a task: buy milk")
    form = card_form(page)
    assert f'data-interrupt-id="{event["interrupt_id"]}"' in form
    assert field(form, "csrfmiddlewaretoken")  # the no-JS form can post
    assert "Create the task &#x27;buy milk&#x27; in" in form  # the summary, escaped
    for value in ("approve", "reject", "edit"):
        assert f'name="decision" value="{value}"' in form
    assert "Needs approval" in page  # the thread list's badge
    assert "buy milk" not in task_titles()

    answer = await decide(client, "pg-approve", form, decision="approve")
    assert answer.status_code == 302 and answer["Location"] == "/chat/pg-approve/"
    seen = await finished("pg-approve", after=event["done"])
    outcome = next(e for e in seen if e["type"] == "tool")
    assert outcome["data"]["status"] == "done"
    assert task_titles().count("buy milk") == 1
    assert writes("POST", "/tasks") == 1

    page = await page_of(client, "pg-approve")
    assert not CARD.findall(page)  # decided: no card waits
    assert "result-action" in page and "Done · " in page
    assert "Needs approval" not in page

    # The same card posted again (a second tab, a double click): refused, nothing runs.
    again = await decide(client, "pg-approve", form, decision="approve")
    assert again.status_code == 302
    page = await page_of(client, "pg-approve")
    assert "already decided, or is no longer waiting" in page
    assert task_titles().count("buy milk") == 1
    assert writes("POST", "/tasks") == 1


async def test_reject_with_a_reason_runs_nothing():
    client = await browser(EMAIL)
    page, event = await waiting_card(client, "pg-reject", "create a task: buy milk")
    answer = await decide(
        client, "pg-reject", card_form(page), decision="reject", message="I have milk"
    )
    assert answer.status_code == 302
    seen = await finished("pg-reject", after=event["done"])
    decided = next(e for e in seen if e["type"] == "decided")
    assert (decided["decision"], decided["reason"]) == ("reject", "I have milk")
    assert "I have milk" in seen[-1]["content"]
    assert "buy milk" not in task_titles() and writes("POST", "/tasks") == 0
    page = await page_of(client, "pg-reject")
    assert "Not done · " in page and not CARD.findall(page)


async def test_an_edit_posted_as_arg_fields_runs_the_edited_action():
    client = await browser(EMAIL)
    page, event = await waiting_card(
        client, "pg-edit", "add a meeting with ann@example.com next Tuesday at 2pm"
    )
    form = card_form(page)
    assert field(form, "arg_title") == "Meeting with ann@example.com"
    assert field(form, "arg_attendees") == "ann@example.com"  # a list, comma-separated
    assert field(form, "arg_duration_minutes") == "60"
    assert '<label data-kind="list"' in form and '<label data-kind="number"' in form
    before = set(google().events)

    answer = await decide(
        client,
        "pg-edit",
        form,
        decision="edit",
        arg_title="Planning with Ann and Bob",
        arg_start=field(form, "arg_start"),
        arg_end="",
        arg_duration_minutes="30",
        arg_attendees="ann@example.com, bob@example.com, ",
        arg_location="Room 4",
        arg_description="",
        arg_recurrence="",
    )  # arg_all_day and arg_meet unticked
    assert answer.status_code == 302
    seen = await finished("pg-edit", after=event["done"])
    decided = next(e for e in seen if e["type"] == "decided")
    assert decided["decision"] == "edit"
    outcome = next(e for e in seen if e["type"] == "tool")
    assert outcome["data"]["status"] == "done", outcome
    (new_id,) = set(google().events) - before
    created = google().events[new_id]
    assert created["summary"] == "Planning with Ann and Bob"
    assert created["location"] == "Room 4"
    guests = [a["email"] for a in created["attendees"] if a["email"] != EMAIL]
    assert guests == ["ann@example.com", "bob@example.com"]
    start, end = (datetime.fromisoformat(created[k]["dateTime"]) for k in ("start", "end"))
    assert end - start == timedelta(minutes=30)
    assert writes("POST", "/events") == 1


async def test_a_decision_on_someone_elses_thread_is_refused_and_runs_nothing():
    owner = await browser(EMAIL)
    page, event = await waiting_card(owner, "pg-theirs", "create a task: buy milk")
    form = card_form(page)
    intruder = await browser(OTHER)
    token = field(await page_of(intruder, "pg-own"), "csrfmiddlewaretoken")  # their own thread
    answer = await intruder.post(
        "/chat/pg-theirs/decide",
        {
            "csrfmiddlewaretoken": token,
            "interrupt_id": field(form, "interrupt_id"),
            "action": "create_task",
            "decision": "approve",
        },
    )
    assert answer.status_code == 403
    assert (await intruder.get("/chat/pg-theirs/")).status_code == 403
    waiting = await history.get_approvals("pg-theirs")
    assert [w["interrupt_id"] for w in waiting] == [event["interrupt_id"]]
    assert not sessions_client().exists(keys.pending_message_key("pg-theirs"))
    assert "buy milk" not in task_titles() and writes("POST", "/tasks") == 0


async def test_a_decision_for_a_card_that_is_not_waiting_shows_an_error():
    client = await browser(EMAIL)
    page, _event = await waiting_card(client, "pg-gone", "create a task: buy milk")
    form = card_form(page).replace(field(page, "interrupt_id"), "0123456789abcdef")
    answer = await decide(client, "pg-gone", form, decision="approve")
    assert answer.status_code == 302
    page = await page_of(client, "pg-gone")
    assert "already decided, or is no longer waiting" in page
    assert len(CARD.findall(page)) == 1  # the real card still waits
    assert not sessions_client().exists(keys.pending_message_key("pg-gone"))
    assert "buy milk" not in task_titles() and writes("POST", "/tasks") == 0


async def test_a_decision_without_a_csrf_token_is_refused():
    client = await browser(EMAIL)
    page, _event = await waiting_card(client, "pg-csrf", "create a task: buy milk")
    form = card_form(page)
    answer = await client.post(
        "/chat/pg-csrf/decide",
        {
            "interrupt_id": field(form, "interrupt_id"),
            "action": "create_task",
            "decision": "approve",
        },
    )
    assert answer.status_code == 403
    assert len(await history.get_approvals("pg-csrf")) == 1
    assert "buy milk" not in task_titles()


async def test_the_json_api_takes_decisions():
    client = await browser(EMAIL)
    _page, event = await waiting_card(client, "pg-api", "create a task: buy milk")
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value}
    url = "/api/threads/pg-api/decisions"
    approve = {"decisions": {event["interrupt_id"]: {"type": "approve"}}}

    bad = await client.post(url, [1, 2], content_type="application/json", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    maybe = {"decisions": {event["interrupt_id"]: {"type": "maybe"}}}
    bad = await client.post(url, maybe, content_type="application/json", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_decision"

    intruder = await browser(OTHER)
    await page_of(intruder, "pg-api-own")  # for their CSRF cookie
    theirs = {"X-CSRFToken": intruder.cookies["csrftoken"].value}
    refused = await intruder.post(url, approve, content_type="application/json", headers=theirs)
    assert refused.status_code == 403
    assert "buy milk" not in task_titles()

    accepted = await client.post(url, approve, content_type="application/json", headers=headers)
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["thread_id"] == "pg-api"
    await finished("pg-api", after=event["done"])
    assert task_titles().count("buy milk") == 1

    again = await client.post(url, approve, content_type="application/json", headers=headers)
    assert again.status_code == 409 and again.json()["error"] == "not_waiting"
    assert task_titles().count("buy milk") == 1 and writes("POST", "/tasks") == 1
