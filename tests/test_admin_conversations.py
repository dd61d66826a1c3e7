"""Conversations in the admin: thread list from the checkpointer's index (db 1), history
(time travel), fork-from-checkpoint continuing in chat, delete; LogEntry; permissions;
approvals shown read only (status, waiting cards, audit trail), never decided."""

from __future__ import annotations

import asyncio
import re

import pytest
from django.contrib.admin.models import ADDITION, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from langchain_core.messages import HumanMessage

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_async_client
from chat import admin_service, admin_views, events, history, runner, threads
from chat.checkpoint import AsyncRedisCheckpointer
from chat.graph import build_graph
from chat.models import Conversation
from chat.offline_model import OfflineChatModel
from tests.chat_support import events_until
from tests.test_admin_sessions import seed_session
from workspace import actions, demo

pytestmark = pytest.mark.django_db

LIST_URL = "admin:chat_conversation_changelist"


def chat(thread_id: str, *texts: str) -> list[str]:
    """Run chat turns on ``thread_id`` with the offline model and the Redis saver (db 1)."""

    async def run() -> list[str]:
        saver = AsyncRedisCheckpointer(get_async_client("checkpoints"))
        graph = build_graph(model=OfflineChatModel(word_delay=0), checkpointer=saver)
        replies = []
        for text in texts:
            state = await graph.ainvoke(
                {"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": thread_id}}
            )
            replies.append(state["messages"][-1].content)
        return replies

    return asyncio.run(run())


def chat_via_runner(thread_id: str, text: str, email: str) -> dict:
    """One turn through the chat app's own path (queue, run lock, graph, events)."""

    async def run() -> dict:
        await runner.submit(thread_id, text, email)
        await runner.drain()
        return (await history.get_history(thread_id))[-1]

    return asyncio.run(run())


def start_thread(owner: str, thread_id: str, *texts: str) -> list[str]:
    assert threads.claim(owner, thread_id)
    return chat(thread_id, *texts)


@pytest.fixture(autouse=True)
def _admin_sessions_in_cookies(settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def detail_url(thread_id: str) -> str:
    return reverse("admin:chat_conversation_change", args=[thread_id])


# --- list -------------------------------------------------------------------------------


def test_list_empty(admin_client):
    html = admin_client.get(reverse(LIST_URL)).content.decode()
    assert "No conversations in Redis db 1." in html


def test_list_shows_owner_turns_activity_and_size(admin_client):
    start_thread("ann@example.com", "t-ann", "Hello, my name is Ann", "What is my name?")
    start_thread("bob@example.com", "t-bob", "Hi there")
    response = admin_client.get(reverse(LIST_URL))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("t-bob") < html.index("t-ann")  # most recent first
    assert "ann@example.com" in html and "bob@example.com" in html
    row = admin_service.list_conversations().rows
    ann = next(r for r in row if r.thread_id == "t-ann")
    assert ann.owner == "ann@example.com" and ann.turns == 2 and ann.checkpoints > 2
    assert ann.size_bytes > 0 and ann.last_activity is not None
    assert ann.title == "Hello, my name is Ann"
    assert '<td class="field-turns">2</td>' in html
    assert "2 conversations in all" in html


def test_list_pages_by_offset(admin_client, checkpoints_redis):
    source = "t-src"
    start_thread("ann@example.com", source, "Hi")
    cp = admin_service.saver()
    tup = cp.get_tuple({"configurable": {"thread_id": source, "checkpoint_ns": ""}})
    for i in range(7):
        admin_service.copy_lineage(
            admin_service.lineage(cp, source, tup.config["configurable"]["checkpoint_id"]),
            cp,
            f"t-copy-{i}",
        )
    html = admin_client.get(reverse(LIST_URL), {"n": 3}).content.decode()
    assert html.count('<th class="field-thread">') == 3 and "next &rsaquo;" in html
    html = admin_client.get(reverse(LIST_URL), {"n": 3, "o": 6}).content.decode()
    assert html.count('<th class="field-thread">') == 2 and "previous" in html


def test_search_by_owner_and_by_thread_id(admin_client):
    start_thread("ann@example.com", "t-ann", "Hi")
    start_thread("bob@example.com", "t-bob", "Hi")
    html = admin_client.get(reverse(LIST_URL), {"q": "ann@example.com"}).content.decode()
    assert "t-ann" in html and "t-bob" not in html
    html = admin_client.get(reverse(LIST_URL), {"q": "t-bob"}).content.decode()
    assert "t-bob" in html and "t-ann" not in html
    html = admin_client.get(reverse(LIST_URL), {"q": "nobody"}).content.decode()
    assert "No conversation matches" in html


# --- detail: time travel ----------------------------------------------------------------


def test_detail_shows_each_checkpoint_with_step_source_writes_and_messages(admin_client):
    start_thread("ann@example.com", "t-ann", "My name is Ann", "What time is it in UTC?")
    response = admin_client.get(detail_url("t-ann"))
    assert response.status_code == 200
    html = response.content.decode()
    detail = admin_service.conversation_detail("t-ann")
    assert [c.step for c in detail.history] == sorted(
        (c.step for c in detail.history), reverse=True
    )
    assert {c.source for c in detail.history} >= {"input", "loop"}
    assert html.count('<td class="field-step">') == len(detail.history)
    first_input = detail.history[-1]
    assert first_input.source == "input" and first_input.messages == []
    first_answer = next(c for c in reversed(detail.history) if c.step == 1)
    assert [(w.channel, w.summary) for w in first_answer.writes] == [
        ("messages", "assistant: " + first_answer.messages[-1].text)
    ]  # what the agent step wrote
    assert first_input.writes[0].summary == "user: My name is Ann"  # the input itself
    assert "Written by this step" in html
    # The tool call turn: a checkpoint where the assistant asked for the tool is mid-turn.
    mid = [c for c in detail.history if c.fork_problem]
    assert mid and all("tool call" in c.fork_problem for c in mid)
    assert "current_datetime" in html
    latest = detail.history[0]
    assert [m.role for m in latest.messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert "Fork from here" in html and "Delete thread" in html


def test_unknown_thread_is_404(admin_client):
    assert admin_client.get(detail_url("nope")).status_code == 404


# --- fork ----------------------------------------------------------------------------------


def turn_end(thread_id: str, turns: int) -> str:
    """The checkpoint at which the ``turns``-th turn was answered."""
    detail = admin_service.conversation_detail(thread_id)
    for cp in reversed(detail.history):  # oldest first
        users = [m for m in cp.messages if m.role == "user"]
        if len(users) == turns and cp.messages[-1].role == "assistant" and cp.can_fork:
            return cp.checkpoint_id
    raise AssertionError("no such checkpoint")


def test_fork_from_here_continues_correctly_in_chat(admin_client, staff, sessions_redis, settings):
    settings.AGENTICPAL_OFFLINE_WORD_DELAY = 0
    session_id = seed_session(sessions_redis, "ann@example.com")
    replies = start_thread(
        "ann@example.com", "t-ann", "My name is Alice", "Actually, call me Bob", "What is my name?"
    )
    assert "Bob" in replies[-1]
    checkpoint_id = turn_end("t-ann", 1)
    url = reverse("admin:chat_conversation_fork", args=["t-ann", checkpoint_id])
    confirm = admin_client.get(url).content.decode()
    assert "Fork this conversation?" in confirm and "My name is Alice" in confirm

    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    new_id = response.url.rstrip("/").rsplit("/", 1)[1]
    assert new_id != "t-ann" and re.fullmatch(r"[0-9a-f]{32}", new_id)
    # The new thread belongs to the owner, is in their list and their live session.
    assert threads.owner_of(new_id) == "ann@example.com"
    assert new_id in threads.threads_for("ann@example.com")
    assert new_id in sessions_redis.get(keys.session_key(session_id)).decode()
    # Its history is the lineage up to the fork point; the original is untouched.
    forked = admin_service.conversation_detail(new_id)
    assert [m.text for m in forked.history[0].messages if m.role == "user"] == ["My name is Alice"]
    original = admin_service.conversation_detail("t-ann")
    assert original.row.turns == 3
    assert len(forked.history) < len(original.history)
    # The chat continues on the fork from that point: it knows Alice, never heard of Bob.
    reply = chat_via_runner(new_id, "What is my name?", "ann@example.com")
    assert reply["role"] == "assistant"
    assert "Alice" in reply["content"] and "Bob" not in reply["content"]
    assert admin_service.conversation_detail(new_id).row.turns == 2
    (reply,) = chat(new_id, "What did I say earlier?")
    assert "Bob" not in reply
    (again,) = chat("t-ann", "What is my name?")
    assert "Bob" in again
    # Logged as an addition, naming who did it and from where.
    entry = LogEntry.objects.get()
    assert entry.user == staff and entry.action_flag == ADDITION
    assert entry.content_type.model_class() is Conversation and entry.object_id == new_id
    assert "t-ann" in entry.change_message and checkpoint_id in entry.change_message
    assert admin_client.get(detail_url(new_id)).status_code == 200


def test_fork_refuses_a_mid_turn_checkpoint(admin_client):
    start_thread("ann@example.com", "t-ann", "What time is it?")
    mid = next(c for c in admin_service.conversation_detail("t-ann").history if c.fork_problem)
    url = reverse("admin:chat_conversation_fork", args=["t-ann", mid.checkpoint_id])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert "Cannot fork" in response.content.decode()
    assert admin_service.saver().count_threads() == 1
    assert not LogEntry.objects.exists()


def test_fork_for_an_owner_at_the_chat_limit_says_so(admin_client, settings):
    start_thread("ann@example.com", "t-ann", "Hi")
    settings.CHAT_MAX_THREADS_PER_USER = 1
    url = reverse("admin:chat_conversation_fork", args=["t-ann", turn_end("t-ann", 1)])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert "ann@example.com has 1 chats, the most one person may keep." in (
        response.content.decode().lower()
    )
    assert admin_service.saver().count_threads() == 1
    assert not LogEntry.objects.exists()


def test_fork_of_an_unknown_checkpoint_is_404(admin_client):
    start_thread("ann@example.com", "t-ann", "Hi")
    url = reverse("admin:chat_conversation_fork", args=["t-ann", "nope"])
    assert admin_client.post(url, {"post": "yes"}).status_code == 404


# --- delete ----------------------------------------------------------------------------------


def test_delete_thread(admin_client, staff, sessions_redis, checkpoints_redis):
    session_id = seed_session(sessions_redis, "ann@example.com", thread_ids=["t-ann"])
    start_thread("ann@example.com", "t-ann", "Hi")
    start_thread("ann@example.com", "t-keep", "Hi")
    url = reverse("admin:chat_conversation_delete", args=["t-ann"])
    assert "Are you sure?" in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    cp = admin_service.saver()
    assert cp.thread_stats("t-ann").checkpoints == 0
    assert [i.thread_id for i in cp.list_threads()] == ["t-keep"]
    assert threads.owner_of("t-ann") is None
    assert threads.threads_for("ann@example.com") == ["t-keep"]
    assert "t-ann" not in sessions_redis.get(keys.session_key(session_id)).decode()
    entry = LogEntry.objects.get()
    assert entry.action_flag == DELETION and entry.object_id == "t-ann" and entry.user == staff


def test_delete_refuses_while_a_reply_is_generated(admin_client, sessions_redis):
    start_thread("ann@example.com", "t-ann", "Hi")
    sessions_redis.set(keys.run_lock_key("t-ann"), "worker-1", px=5000)
    url = reverse("admin:chat_conversation_delete", args=["t-ann"])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert "generating a reply" in response.content.decode()
    assert admin_service.saver().thread_stats("t-ann").checkpoints > 0
    assert not LogEntry.objects.exists()


# --- permissions --------------------------------------------------------------------------------


def test_non_staff_and_missing_permissions(db):
    start_thread("ann@example.com", "t-ann", "Hi")
    anonymous = Client()
    response = anonymous.get(reverse(LIST_URL))
    assert response.status_code == 302 and "/admin/login/" in response.url
    user = get_user_model().objects.create_user("joe", "joe@example.com", "pw")
    client = Client()
    client.force_login(user)
    assert client.get(detail_url("t-ann")).status_code == 302

    user.is_staff = True
    user.save()
    client.force_login(user)
    assert client.get(reverse(LIST_URL)).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    user = get_user_model().objects.get(pk=user.pk)
    client.force_login(user)
    html = client.get(detail_url("t-ann")).content.decode()
    assert "Fork from here" not in html and "Delete thread" not in html
    checkpoint_id = admin_service.conversation_detail("t-ann").history[0].checkpoint_id
    fork = reverse("admin:chat_conversation_fork", args=["t-ann", checkpoint_id])
    assert client.post(fork, {"post": "yes"}).status_code == 403
    delete = reverse("admin:chat_conversation_delete", args=["t-ann"])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_service.saver().count_threads() == 1


# --- approvals: shown, never decided ---------------------------------------------------------

OWNER = "ann@example.com"


@pytest.fixture
def demo_owner(settings):
    """The owner's demo workspace (Google answered by the in-process emulator)."""
    settings.WORKSPACE_DEMO = True
    settings.AGENTICPAL_OFFLINE_WORD_DELAY = 0
    demo.connect(OWNER)
    yield
    demo._emulator().state.emulator.users.pop(f"demo.{OWNER}", None)


def ask_for_a_task(thread_id: str) -> dict:
    """The owner asks for a task through the chat's runner: the run pauses on its card."""
    assert threads.claim(OWNER, thread_id)

    async def run() -> dict:
        await runner.submit(thread_id, "create a task: buy milk", OWNER)
        seen = await events_until(thread_id, "done")
        await runner.drain()
        assert seen[-1]["status"] == "awaiting_approval"
        return next(e for e in seen if e["type"] == "approval")

    return asyncio.run(run())


def owner_decides(thread_id: str, interrupt_id: str, decision: dict) -> None:
    """The owner's decision, the chat's way (Runner.decide), run to its end."""

    async def run() -> None:
        after = await events.last_id(thread_id)
        await runner.decide(thread_id, {interrupt_id: decision}, OWNER)
        await events_until(thread_id, "done", after=after)
        await runner.drain()

    asyncio.run(run())


def live(thread_id: str) -> tuple[str, list, list]:
    """What the chat itself says: status, waiting approvals, audit trail."""

    async def run() -> tuple[str, list, list]:
        approvals = await history.get_approvals(thread_id)
        status = await history.thread_status(thread_id)
        return status, approvals, await actions.audit_trail(thread_id)

    return asyncio.run(run())


def task_titles() -> list[str]:
    state = demo._emulator().state.emulator.user(f"demo.{OWNER}")
    return [t["title"] for tasks in state.tasks.values() for t in tasks.values()]


def test_a_waiting_card_is_shown_read_only_with_the_status(admin_client, demo_owner):
    start_thread("bob@example.com", "t-idle", "Hi")
    card = ask_for_a_task("t-wait")
    status, approvals, trail = live("t-wait")
    assert status == history.AWAITING_APPROVAL and trail == []

    html = admin_client.get(reverse(LIST_URL)).content.decode()
    assert '<td class="field-status status-awaiting_approval">awaiting approval</td>' in html
    assert '<td class="field-status status-idle">idle</td>' in html

    detail = admin_service.conversation_detail("t-wait")
    assert detail.row.status == status  # the chat's own status
    assert [a.interrupt_id for a in detail.approvals] == [a["interrupt_id"] for a in approvals]
    (waiting,) = detail.approvals
    assert waiting.action == "create_task" and waiting.title == "Create a task"
    assert waiting.summary == card["card"]["summary"]

    html = admin_client.get(detail_url("t-wait")).content.decode()
    assert "awaiting approval" in html
    assert "Waiting for the owner's approval (1)" in html
    assert card["card"]["summary"].replace("'", "&#x27;") in html
    assert "only the owner (ann@example.com) can approve" in html
    assert "The admin cannot decide them" in html
    # No way to decide from here: no decision button, no form posting one.
    assert 'value="approve"' not in html and 'name="decision"' not in html
    assert ">Approve<" not in html and "chat:decide" not in html
    assert "No action was executed on this thread" in html


def test_after_approval_the_audit_trail_shows_who_when_and_what_google_returned(
    admin_client, demo_owner
):
    card = ask_for_a_task("t-done")
    owner_decides("t-done", card["interrupt_id"], {"type": "approve"})
    status, approvals, trail = live("t-done")
    assert status == history.IDLE and approvals == []

    detail = admin_service.conversation_detail("t-done")
    assert detail.row.status == history.IDLE and detail.approvals == []
    (entry,) = detail.audit
    assert entry.approved_by == OWNER == trail[0]["approved_by"]
    assert entry.decision == "approve" and entry.decision_text == "approved"
    assert entry.approved_at is not None and entry.done_at is not None
    assert entry.result == trail[0]["result"] and entry.result.startswith("Created the task")
    assert entry.link and entry.link == trail[0]["link"]

    html = admin_client.get(detail_url("t-done")).content.decode()
    assert "Executed actions (audit trail, newest first)" in html
    assert f'<td class="field-approved_by">{OWNER}</td>' in html
    assert '<td class="field-decision">approved</td>' in html
    assert entry.result.replace("'", "&#x27;") in html
    assert f'<a href="{entry.link}"' in html.replace("&amp;", "&")
    assert "No action is waiting." in html
    assert "awaiting approval" not in html
    assert not LogEntry.objects.exists()  # approvals are not the admin's: nothing logged


def test_no_admin_url_decides_an_approval(admin_client, demo_owner, sessions_redis):
    card = ask_for_a_task("t-post")
    names = {p.name for p in admin_views.ConversationAdmin.get_urls(_admin())}
    assert names == {
        "chat_conversation_changelist",
        "chat_conversation_change",
        "chat_conversation_delete",
        "chat_conversation_fork",
    }
    # A decision posted to the detail page (as the chat's form would send it) is refused.
    form = {"interrupt_id": card["interrupt_id"], "action": "create_task", "decision": "approve"}
    response = admin_client.post(detail_url("t-post"), form)
    assert response.status_code == 405
    # Nor can a fork carry it out: the waiting checkpoint is mid-turn.
    waiting = admin_service.conversation_detail("t-post").history[0]
    fork = reverse("admin:chat_conversation_fork", args=["t-post", waiting.checkpoint_id])
    assert "Cannot fork" in admin_client.post(fork, {"post": "yes"}, follow=True).content.decode()

    status, approvals, trail = live("t-post")
    assert status == history.AWAITING_APPROVAL
    assert [a["interrupt_id"] for a in approvals] == [card["interrupt_id"]]
    assert trail == [] and "buy milk" not in task_titles()
    assert not sessions_redis.exists(keys.pending_message_key("t-post"))  # nothing queued
    assert not LogEntry.objects.exists()


def _admin() -> admin_views.ConversationAdmin:
    from django.contrib import admin

    return admin.site._registry[Conversation]
