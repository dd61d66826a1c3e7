"""Approvals (workspace.actions + chat.runner): a write waits for the user's decision in
the checkpoint, approve / edit / reject, two cards at once, a new message while a card
waits, decisions that answer nothing, and every approved action reaching Google exactly
once with a crash injected at every step boundary. Real Redis, real graph, the demo
workspace (the local emulator in process) as Google."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from langchain_core.messages import AIMessage, ToolMessage

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_client as sessions_client
from chat import history, threads
from chat.graph import build_graph, get_checkpointer, run_config, waiting_approvals
from chat.offline_model import OfflineChatModel, Reply
from chat.runner import DecisionGone, InvalidMessage, Runner
from tests.chat_support import events_until, eventually, runner_with
from workspace import actions, demo

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "ada@example.com"


@pytest.fixture(autouse=True)
def demo_user(settings):
    settings.WORKSPACE_DEMO = True
    settings.AGENTICPAL_OFFLINE_WORD_DELAY = 0
    demo.connect(EMAIL)
    yield
    demo._emulator().state.emulator.users.pop(f"demo.{EMAIL}", None)


def google() -> object:
    """The demo workspace's state of the test user (what "Google" holds and received)."""
    return demo._emulator().state.emulator.user(f"demo.{EMAIL}")


def writes(method: str, path_part: str) -> int:
    return sum(1 for m, path, _q in google().requests if m == method and path_part in path)


def task_titles() -> list[str]:
    state = google()
    return [t["title"] for tasks in state.tasks.values() for t in tasks.values()]


async def approval_of(thread_id: str, after: str = "0-0") -> dict:
    seen = await events_until(thread_id, "approval", after=after)
    return seen[-1]


async def finished(thread_id: str, after: str = "0-0") -> list[dict]:
    """The events up to the run's ``done``, once its message or decision is acknowledged."""
    seen = await events_until(thread_id, "done", after=after)
    await eventually(lambda: not sessions_client().exists(keys.pending_message_key(thread_id)))
    return seen


async def test_a_task_waits_for_approval_and_is_created_once_approved():
    runner = Runner()
    await runner.submit("ap-task", "create a task: buy milk", EMAIL)
    card = await approval_of("ap-task")
    done = (await finished("ap-task"))[-1]
    assert done["status"] == "awaiting_approval"
    assert card["card"]["summary"].startswith("Create the task 'buy milk' in")
    assert 'name="decision" value="approve"' in card["html"]
    assert "buy milk" not in task_titles()  # nothing changed before the decision
    assert writes("POST", "/tasks") == 0
    assert await history.thread_status("ap-task") == history.AWAITING_APPROVAL

    await runner.decide("ap-task", {card["interrupt_id"]: {"type": "approve"}}, EMAIL)
    seen = await finished("ap-task", after=done["id"])
    decided = [e for e in seen if e["type"] == "decided"]
    assert decided[0]["decision"] == "approve"
    tool = next(e for e in seen if e["type"] == "tool")
    assert tool["data"]["kind"] == "action" and tool["data"]["status"] == "done"
    assert task_titles().count("buy milk") == 1
    assert seen[-1]["content"].startswith("Done: Created the task 'buy milk'")
    assert seen[-1]["status"] == "idle"
    assert await history.thread_status("ap-task") == history.IDLE
    trail = await actions.audit_trail("ap-task")
    assert trail[0]["approved_by"] == EMAIL and trail[0]["decision"] == "approve"
    await runner.drain()


async def test_reject_runs_nothing_and_the_model_is_told_why():
    runner = Runner()
    await runner.submit("ap-reject", "create a task: buy milk", EMAIL)
    card = await approval_of("ap-reject")
    done = (await finished("ap-reject"))[-1]
    decision = {"type": "reject", "message": "I have milk"}
    await runner.decide("ap-reject", {card["interrupt_id"]: decision}, EMAIL)
    seen = await finished("ap-reject", after=done["id"])
    assert "I have milk" in seen[-1]["content"]
    assert "buy milk" not in task_titles()
    assert writes("POST", "/tasks") == 0
    assert await actions.audit_trail("ap-reject") == []
    await runner.drain()


async def test_edit_runs_the_edited_action_and_a_bad_edit_asks_again():
    runner = Runner()
    await runner.submit("ap-edit", "create a task: buy milk", EMAIL)
    card = await approval_of("ap-edit")
    done = (await finished("ap-edit"))[-1]
    bad = {"type": "edit", "args": {"due": "the 45th of Smarch"}}
    await runner.decide("ap-edit", {card["interrupt_id"]: bad}, EMAIL)
    seen = await finished("ap-edit", after=done["id"])
    again = next(e for e in seen if e["type"] == "approval")
    assert again["card"]["error"].startswith("Not done:")
    assert again["interrupt_id"] != card["interrupt_id"]
    assert writes("POST", "/tasks") == 0

    assert again["card"]["args"]["due"] == "the 45th of Smarch"  # shown to be corrected
    good = {"type": "edit", "args": {"title": "buy oat milk", "due": ""}}
    await runner.decide("ap-edit", {again["interrupt_id"]: good}, EMAIL)
    await finished("ap-edit", after=seen[-1]["id"])
    assert "buy oat milk" in task_titles() and "buy milk" not in task_titles()
    await runner.drain()


async def test_a_decision_for_a_card_that_is_not_waiting_is_refused():
    runner = Runner()
    with pytest.raises(DecisionGone):
        await runner.decide("ap-none", {"nope": {"type": "approve"}}, EMAIL)
    with pytest.raises(InvalidMessage):
        await runner.decide("ap-none", {"x": {"type": "maybe"}}, EMAIL)
    with pytest.raises(InvalidMessage):
        await runner.decide("ap-none", [], EMAIL)

    await runner.submit("ap-twice", "create a task: buy milk", EMAIL)
    card = await approval_of("ap-twice")
    done = (await finished("ap-twice"))[-1]
    await runner.decide("ap-twice", {card["interrupt_id"]: {"type": "approve"}}, EMAIL)
    await finished("ap-twice", after=done["id"])
    with pytest.raises(DecisionGone):
        await runner.decide("ap-twice", {card["interrupt_id"]: {"type": "approve"}}, EMAIL)
    assert task_titles().count("buy milk") == 1
    await runner.drain()


async def test_a_new_message_sets_the_waiting_action_aside():
    runner = Runner()
    await runner.submit("ap-moved", "create a task: buy milk", EMAIL)
    card = await approval_of("ap-moved")
    done = (await finished("ap-moved"))[-1]
    await runner.submit("ap-moved", "hello again", EMAIL)
    seen = await finished("ap-moved", after=done["id"])
    aside = next(e for e in seen if e["type"] == "decided")
    assert (aside["interrupt_id"], aside["decision"]) == (card["interrupt_id"], "reject")
    assert "moved on" in aside["reason"]
    assert seen[-1]["status"] == "idle"
    messages = await history.get_messages("ap-moved")
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert len(results) == 1 and "moved on" in results[0].content
    assert await history.get_approvals("ap-moved") == []
    assert writes("POST", "/tasks") == 0
    await runner.drain()


class TwoTasksModel(OfflineChatModel):
    """Asks for two tasks in one step (parallel tool calls), then answers."""

    def _plan(self, messages, kwargs):
        if isinstance(messages[-1], ToolMessage):
            return Reply("Both answered.")
        calls = [
            {"name": "create_task", "args": {"title": title}, "id": f"call_{n}_{len(messages)}"}
            for n, title in enumerate(["first task", "second task"])
        ]
        return Reply(tool_calls=calls)


async def test_two_cards_at_once_are_told_apart_and_decided_separately():
    runner = runner_with(TwoTasksModel())
    await runner.submit("ap-two", "two tasks please", EMAIL)
    seen = await events_until("ap-two", "approval", count=2)
    cards = [e for e in seen if e["type"] == "approval"]
    ids = {c["interrupt_id"] for c in cards}
    assert len(ids) == 2  # no collision between the two interrupts
    done = (await finished("ap-two"))[-1]
    first = next(c for c in cards if "first task" in c["card"]["summary"])
    second = next(c for c in cards if "second task" in c["card"]["summary"])

    await runner.decide("ap-two", {first["interrupt_id"]: {"type": "approve"}}, EMAIL)
    seen = await finished("ap-two", after=done["id"])
    assert seen[-1]["status"] == "awaiting_approval"
    assert "first task" in task_titles() and "second task" not in task_titles()
    waiting = await history.get_approvals("ap-two")
    assert [w["interrupt_id"] for w in waiting] == [second["interrupt_id"]]

    decision = {second["interrupt_id"]: {"type": "reject", "message": "one is enough"}}
    await runner.decide("ap-two", decision, EMAIL)
    seen = await finished("ap-two", after=seen[-1]["id"])
    assert seen[-1]["content"] == "Both answered."
    assert task_titles().count("first task") == 1 and "second task" not in task_titles()
    await runner.drain()


class Crash(BaseException):
    """A worker dying at a step boundary (not an Exception: nothing catches it)."""


@pytest.mark.parametrize(
    "boundary", ["before_record", "after_record", "after_google", "after_done"]
)
async def test_a_crash_at_any_step_boundary_still_creates_the_task_once(boundary, monkeypatch):
    """Resume the same decision after a crash (what the runner does with the decision still
    queued): Google receives the insert once, and the result is the same."""
    graph = build_graph(OfflineChatModel(), await get_checkpointer())
    config = run_config("ap-crash-" + boundary, "Europe/Paris", EMAIL)
    from chat.graph import stream_turn

    async for _ in stream_turn(graph, config, "m1", "create a task: buy milk"):
        pass
    (waiting,) = await waiting_approvals(graph, config)
    decision = {"type": "approve", "interrupt_id": waiting.id, "by": EMAIL, "at": "2026-12-02",
                "plan": waiting.value["plan"]}  # fmt: skip
    crashed = []

    def fault(step: str) -> None:
        if step == boundary and not crashed:
            crashed.append(step)
            raise Crash(step)

    monkeypatch.setattr(actions, "fault", fault)
    with pytest.raises(Crash):
        async for _ in stream_turn(graph, config, "d1", "", resume={waiting.id: decision}):
            pass
    assert crashed == [boundary]
    fresh = build_graph(OfflineChatModel(), await get_checkpointer())  # "another process"
    async for _ in stream_turn(fresh, config, "d1", "", resume={waiting.id: decision}):
        pass
    assert task_titles().count("buy milk") == 1
    state = await fresh.aget_state(config)
    last = state.values["messages"][-1]
    assert isinstance(last, AIMessage) and last.content.startswith("Done: Created the task")
    record = json.loads(
        await __import__("agenticpal.redis_clients", fromlist=["x"])
        .get_async_client()
        .get(keys.action_key(f"ap-crash-{boundary}:{waiting.id}"))
    )
    assert record["state"] == "done"


@override_settings(WORKSPACE_APPROVE_DRAFTS=False)
async def test_a_draft_needs_no_approval_by_default():
    runner = Runner()
    await runner.submit("ap-draft", "draft an email to ann@example.com saying see you soon", EMAIL)
    seen = await finished("ap-draft")
    assert not [e for e in seen if e["type"] == "approval"]
    tool = next(e for e in seen if e["type"] == "tool")
    assert tool["data"]["status"] == "done"
    await runner.drain()


WEEK = 7 * 86_400


@override_settings(CHECKPOINT_TTL_SECONDS=30 * 86_400)
async def test_a_waiting_approval_outlives_a_week_and_its_event_stream(
    sessions_redis, checkpoints_redis
):
    """Every key the waiting card lives in keeps it for over a week (the checkpoint TTL
    is 30 days here; no TTL by default), and the card is read from the checkpoint, so
    the day-long event stream expiring loses nothing."""
    from chat.graph import reset

    reset()  # the saver reads CHECKPOINT_TTL_SECONDS when it is made
    assert await threads.aclaim(EMAIL, "ap-week")
    runner = Runner()
    await runner.submit("ap-week", "create a task: renew passport", EMAIL)
    card = await approval_of("ap-week")
    await finished("ap-week")
    tag = keys.checkpoint_hash_tag("ap-week")
    checkpoint_keys = list(checkpoints_redis.scan_iter(match=f"{keys.CHECKPOINT_PREFIX}{tag}*"))
    assert checkpoint_keys
    for key in checkpoint_keys:
        assert checkpoints_redis.ttl(key) > WEEK, key
    for key in (keys.thread_owner_key("ap-week"), keys.user_threads_key(EMAIL)):
        assert sessions_redis.ttl(key) == -1 or sessions_redis.ttl(key) > WEEK, key

    sessions_redis.delete(keys.thread_events_key("ap-week"))  # a day later, it expired
    waiting = await history.get_approvals("ap-week")
    assert [w["interrupt_id"] for w in waiting] == [card["interrupt_id"]]
    await runner.decide("ap-week", {card["interrupt_id"]: {"type": "approve"}}, EMAIL)
    await finished("ap-week")
    assert task_titles().count("renew passport") == 1
    await runner.drain()
    reset()


# --- every card type the offline model reaches, run against the demo workspace ------------


async def approve_first_card(runner: Runner, thread_id: str, text: str) -> tuple[dict, list[dict]]:
    await runner.submit(thread_id, text, EMAIL, timezone="Europe/Paris")
    card = await approval_of(thread_id)
    done = (await finished(thread_id))[-1]
    await runner.decide(thread_id, {card["interrupt_id"]: {"type": "approve"}}, EMAIL)
    return card, await finished(thread_id, after=done["id"])


def outcome_of(seen: list[dict]) -> dict:
    return next(e for e in seen if e["type"] == "tool" and e["data"]["kind"] == "action")["data"]


async def test_a_meeting_is_created_with_its_guest_in_the_demo_calendar():
    runner = Runner()
    card, seen = await approve_first_card(
        runner, "ap-event", "add a meeting with ann@example.com next Tuesday at 2pm"
    )
    assert card["card"]["summary"].startswith("Create 'Meeting with ann@example.com' Tue")
    assert "14:00-15:00" in card["card"]["summary"] and "1 guest" in card["card"]["summary"]
    assert outcome_of(seen)["status"] == "done"
    created = [
        e for e in google().events.values() if e.get("summary") == "Meeting with ann@example.com"
    ]
    assert len(created) == 1
    assert "ann@example.com" in [a["email"] for a in created[0]["attendees"]]
    assert created[0]["id"] == calendar_id_of(card)
    await runner.drain()


def calendar_id_of(card: dict) -> str:
    from workspace.google.calendar import event_id_for

    return event_id_for(f"{card_thread(card)}:{card['interrupt_id']}")


def card_thread(card: dict) -> str:
    return "ap-event"


async def test_a_reply_goes_into_the_thread_with_its_headers():
    runner = Runner()
    before = {m_id for m_id in google().messages}
    card, seen = await approve_first_card(
        runner, "ap-reply", "reply to Priya's last email saying thanks"
    )
    assert card["card"]["summary"].startswith("Reply to ")
    assert "subject 'Re: " in card["card"]["summary"]
    assert outcome_of(seen)["status"] == "done", outcome_of(seen)
    sent = [m for m_id, m in google().messages.items() if m_id not in before]
    assert len(sent) == 1 and "SENT" in sent[0]["labelIds"]
    await runner.drain()


async def test_mark_a_task_done_and_delete_tomorrows_9am():
    runner = Runner()
    titles = {t["title"]: t for tasks in google().tasks.values() for t in tasks.values()}
    wanted = next(t for t in titles.values() if t.get("status") == "needsAction")
    word = wanted["title"].split()[-1].strip("'").lower()
    card, seen = await approve_first_card(runner, "ap-done", f"mark the {word} task done")
    assert card["card"]["summary"].startswith("Mark as done the task")
    assert outcome_of(seen)["status"] == "done"

    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from workspace.access import client_for
    from workspace.google import calendar

    zone = ZoneInfo("Europe/Paris")
    nine = (datetime.now(zone) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    body = {"summary": "Dentist", "start": {"dateTime": nine.isoformat()},
            "end": {"dateTime": (nine + timedelta(minutes=30)).isoformat()}}  # fmt: skip
    event = await calendar.insert_event(await client_for(EMAIL), body, event_id="dentist0900")

    def at_nine() -> list[str]:
        return [e["id"] for e in google().events.values() if e.get("status") != "cancelled"
                and e.get("start", {}).get("dateTime", "")[:16] == nine.isoformat()[:16]]  # fmt: skip

    before = at_nine()
    assert event.id in before
    card, seen = await approve_first_card(runner, "ap-del", "delete tomorrow's 9am")
    assert card["card"]["summary"].startswith("Delete '")
    assert outcome_of(seen)["status"] == "done"
    assert "09:00" in card["card"]["summary"]
    gone = card["card"]["plan"]["event_id"]
    listed = await calendar.list_events(
        await client_for(EMAIL), nine - timedelta(hours=9), nine + timedelta(hours=15)
    )
    assert gone not in [e.id for e in listed.events if e.status != "cancelled"]
    await runner.drain()


async def test_an_approved_send_reaches_gmail_once_even_after_a_crash_after_google(monkeypatch):
    """Gmail has no idempotency key: the Message-ID derived from the interrupt id finds the
    mail a crashed worker sent, so running the decision again does not send it twice."""
    graph = build_graph(OfflineChatModel(), await get_checkpointer())
    config = run_config("ap-send-crash", "Europe/Paris", EMAIL)
    from chat.graph import stream_turn

    async for _ in stream_turn(graph, config, "m1", "send an email to ann@example.com saying hi"):
        pass
    (waiting,) = await waiting_approvals(graph, config)
    decision = {"type": "approve", "interrupt_id": waiting.id, "by": EMAIL, "at": "x",
                "plan": waiting.value["plan"]}  # fmt: skip
    crashed = []

    def fault(step: str) -> None:
        if step == "after_google" and not crashed:
            crashed.append(step)
            raise Crash(step)

    monkeypatch.setattr(actions, "fault", fault)
    with pytest.raises(Crash):
        async for _ in stream_turn(graph, config, "d1", "", resume={waiting.id: decision}):
            pass
    async for _ in stream_turn(graph, config, "d1", "", resume={waiting.id: decision}):
        pass
    assert writes("POST", "/messages/send") == 1
    rfc822 = actions.rfc822_id_for(f"ap-send-crash:{waiting.id}")
    assert sum(1 for m in google().messages.values() if rfc822 in str(m.get("raw", m))) <= 1


async def test_a_card_whose_decision_is_queued_reads_as_decided(sessions_redis):
    """Between the decision and its run the card is not asked again (the no-JS page
    shows it as being carried out; the websocket history marks it decided)."""
    from chat.pending import PendingMessage

    runner = Runner()
    await runner.submit("ap-queued", "create a task: buy milk", EMAIL)
    card = await approval_of("ap-queued")
    await finished("ap-queued")
    await runner.drain()
    queued = PendingMessage("d-1", "", EMAIL, decisions={card["interrupt_id"]: {"type": "approve"}})
    sessions_redis.rpush(keys.pending_message_key("ap-queued"), queued.encode())  # no run yet
    (waiting,) = await history.get_approvals("ap-queued")
    assert waiting["decided"] == "approve"
    sessions_redis.delete(keys.pending_message_key("ap-queued"))
    (waiting,) = await history.get_approvals("ap-queued")
    assert waiting["decided"] is None


async def test_approvals_and_their_exactly_once_records_on_a_redis_cluster(
    redis_cluster, monkeypatch
):
    """The action record and the audit trail (one MULTI) share the thread's hash slot."""
    demo.connect(EMAIL)  # the credentials, on the cluster this time
    await test_a_task_waits_for_approval_and_is_created_once_approved()
    demo._emulator().state.emulator.users.pop(f"demo.{EMAIL}", None)  # a fresh workspace
    demo.connect(EMAIL)
    await test_a_crash_at_any_step_boundary_still_creates_the_task_once("after_google", monkeypatch)
