"""chat.threads: ids, message rules, ownership, and one meaning of delete from every entry point."""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient

from agenticpal import redis_keys as keys
from chat import events, pending, runner, threads
from chat.checkpoint import sync_checkpointer
from chat.pending import PendingMessage
from tests.chat_support import (
    communicator,
    connected,
    eventually,
    receive_until,
    session_cookie,
    signed_in_client,
)

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "ada@example.com"


@pytest.mark.parametrize(
    ("value", "ok"),
    [("abc", True), ("a" * 64, True), ("a_b-C9", True), ("", False), ("a" * 65, False),
     ("a/b", False), ("é", False), (None, False), (42, False)],
)  # fmt: skip
def test_validate_thread_id(value, ok):
    assert threads.validate_thread_id(value) is ok


def test_new_thread_ids_are_valid_and_distinct():
    ids = {threads.new_thread_id() for _ in range(100)}
    assert len(ids) == 100 and all(threads.validate_thread_id(i) for i in ids)


def test_message_rules():
    assert threads.check_message("hi") is None
    assert threads.check_message("   ") == "The message is empty."
    assert threads.check_message(None) == "The message must be a string."
    assert "limit is 16384 bytes" in threads.check_message("é" * 9000)


def test_timezones_are_cleaned():
    assert threads.clean_timezone("Europe/Paris") == "Europe/Paris"
    for bad in ("Mars/Olympus", "", None, 5, "x" * 100):
        assert threads.clean_timezone(bad) == ""


def test_titles_are_one_short_line():
    assert threads.shorten_title("  hello \n world ") == "hello world"
    long = threads.shorten_title("word " * 40)
    assert len(long) == threads.TITLE_LENGTH and long.endswith("…")


def test_claim_is_first_come_and_lists_the_thread_in_the_session(sessions_redis):
    assert threads.claim(EMAIL, "t1")
    assert threads.claim(EMAIL, "t1")  # ours already
    assert not threads.claim("eve@example.com", "t1")
    assert threads.owner_of("t1") == EMAIL and threads.threads_for(EMAIL) == ["t1"]
    assert threads.threads_for("eve@example.com") == []


async def test_owns_needs_a_valid_id_and_the_owner():
    assert await threads.aclaim(EMAIL, "t2")
    assert await threads.aowns(EMAIL, "t2")
    assert not await threads.aowns("eve@example.com", "t2")
    assert not await threads.aowns(EMAIL, "bad/id")


# --- delete: one meaning, every entry point ----------------------------------------------------


async def two_sessions_with_a_thread(thread_id: str) -> tuple[AsyncClient, AsyncClient]:
    """The owner has two browsers listing the thread, a finished turn and a queued message."""
    first = await signed_in_client(EMAIL)
    second = await signed_in_client(EMAIL)
    for client in (first, second):
        assert await threads.aclaim(EMAIL, thread_id, session_cookie(client))
    await runner.submit(thread_id, "hello", EMAIL)
    await runner.drain()
    queued = PendingMessage("waiting", "are you there?", EMAIL)
    await pending.asubmit(thread_id, queued, "another-worker")  # a run elsewhere holds the lock
    assert await events.last_id(thread_id) != "0-0"
    return first, second


def assert_gone(sessions_redis, thread_id: str, *clients: AsyncClient) -> None:
    assert sync_checkpointer().thread_stats(thread_id).checkpoints == 0
    assert not sessions_redis.exists(
        keys.pending_message_key(thread_id),
        keys.thread_events_key(thread_id),
        keys.thread_owner_key(thread_id),
    )
    assert threads.threads_for(EMAIL) == []
    for client in clients:
        record = json.loads(sessions_redis.get(keys.session_key(session_cookie(client))))
        assert thread_id not in record["thread_ids"]
    # the run elsewhere is told to stop on its next renewal
    assert sessions_redis.get(keys.cancel_run_key(thread_id)) == b"*"


async def test_delete_through_the_api(sessions_redis):
    first, second = await two_sessions_with_a_thread("d-api")
    tab, _ = await connected("d-api", session_cookie(second))  # another tab is open
    assert (await first.delete("/api/threads/d-api")).status_code == 200
    assert_gone(sessions_redis, "d-api", first, second)
    seen = await receive_until(tab, "deleted")  # it is told, and closed
    assert seen[-1] == {"type": "deleted", "thread_id": "d-api"}
    assert (await tab.receive_output(timeout=5))["code"] == 4410


async def test_a_tab_of_a_deleted_thread_cannot_write_into_its_next_owner(sessions_redis):
    await two_sessions_with_a_thread("d-reuse")
    await threads.adelete("d-reuse")
    assert await threads.aclaim("eve@example.com", "d-reuse")  # the id is Eve's now
    with pytest.raises(runner.InvalidMessage, match="deleted") as refused:
        await runner.submit("d-reuse", "what's on my calendar", EMAIL)  # Ada's stale tab
    assert refused.value.status == 403
    assert not sessions_redis.exists(keys.pending_message_key("d-reuse"))


async def test_delete_through_the_page(sessions_redis):
    first, second = await two_sessions_with_a_thread("d-page")
    response = await first.post("/chat/d-page/delete")
    assert response.status_code == 302
    assert_gone(sessions_redis, "d-page", first, second)


async def test_delete_through_the_websocket_closes_every_tab(sessions_redis):
    first, second = await two_sessions_with_a_thread("d-ws")
    tab, _ = await connected("d-ws", session_cookie(first))
    other_tab, _ = await connected("d-ws", session_cookie(second))
    await tab.send_to(text_data=json.dumps({"type": "delete"}))
    for socket in (tab, other_tab):
        seen = await receive_until(socket, "deleted")
        assert seen[-1] == {"type": "deleted", "thread_id": "d-ws"}
        assert (await socket.receive_output(timeout=5))["code"] == 4410
    assert_gone(sessions_redis, "d-ws", first, second)


async def test_delete_of_another_users_thread_is_refused(sessions_redis):
    await two_sessions_with_a_thread("d-mine")
    eve = await signed_in_client("eve@example.com")
    assert (await eve.delete("/api/threads/d-mine")).status_code == 403
    assert (await eve.post("/chat/d-mine/delete")).status_code == 403
    socket = communicator("d-mine", session_cookie(eve))
    await socket.connect()
    assert (await socket.receive_output(timeout=5))["code"] == 4403
    assert threads.owner_of("d-mine") == EMAIL


def test_the_sync_twin_refuses_a_busy_thread_unless_asked_to_stop_it(sessions_redis):
    assert threads.claim(EMAIL, "d-busy")
    sessions_redis.set(keys.run_lock_key("d-busy"), "worker-1", px=5000)
    with pytest.raises(threads.ThreadBusy, match="generating a reply"):
        threads.delete("d-busy", if_busy="refuse")
    assert threads.owner_of("d-busy") == EMAIL
    assert threads.delete("d-busy") == EMAIL
    assert threads.owner_of("d-busy") is None


async def test_a_deleted_thread_id_can_be_used_again_as_a_new_thread(sessions_redis):
    await two_sessions_with_a_thread("d-again")
    await threads.adelete("d-again")
    await eventually(lambda: not sessions_redis.exists(keys.thread_owner_key("d-again")))
    eve = await signed_in_client("eve@example.com")
    assert await threads.aclaim("eve@example.com", "d-again", session_cookie(eve))


# --- ownership survives the loss of db 0 ---------------------------------------------------------


async def test_after_db0_is_lost_the_checkpoints_decide_who_owns_a_thread(sessions_redis):
    await threads.aclaim(EMAIL, "d-lost")
    await runner.submit("d-lost", "my secret plans", EMAIL)
    await runner.drain()
    sessions_redis.flushdb()  # db 0 lost (a failover to an empty replica, a restore of db 1 only)
    assert not await threads.aclaim("eve@example.com", "d-lost")
    assert threads.owner_of("d-lost") is None  # the refusal left nothing behind
    eve = await signed_in_client("eve@example.com")
    assert (await eve.get("/api/threads/d-lost")).status_code == 403
    assert (await eve.get("/chat/d-lost/")).status_code == 403
    assert await threads.aclaim(EMAIL, "d-lost")  # the owner gets it back
    assert threads.owner_of("d-lost") == EMAIL
    assert not threads.claim("eve@example.com", "d-lost")


async def test_a_conversation_without_a_user_is_nobodys_to_take(sessions_redis):
    from langchain_core.messages import HumanMessage

    from chat.graph import build_graph, get_checkpointer, run_config
    from chat.offline_model import OfflineChatModel

    graph = build_graph(model=OfflineChatModel(), checkpointer=await get_checkpointer())
    await graph.ainvoke({"messages": [HumanMessage("hi")]}, run_config("d-cli"))  # no user
    assert not await threads.aclaim(EMAIL, "d-cli")


# --- the per-user cap on chats ---------------------------------------------------------------


async def test_a_user_over_the_chat_limit_cannot_start_another(settings, sessions_redis):
    settings.CHAT_MAX_THREADS_PER_USER = 2
    email = "cap@example.com"
    assert await threads.aclaim(email, "cap-1") and threads.claim(email, "cap-2")
    with pytest.raises(threads.TooManyThreads, match="delete some"):
        await threads.aclaim(email, "cap-3")
    with pytest.raises(threads.TooManyThreads):
        threads.claim(email, "cap-3")
    assert sessions_redis.exists(keys.thread_owner_key("cap-3")) == 0  # nothing changed
    assert await threads.aclaim(email, "cap-1")  # one of theirs still opens
    assert await threads.aclaim("other@example.com", "cap-4")  # the limit is per user

    client = await signed_in_client(email)
    answer = await client.post(
        "/api/chat",
        data=json.dumps({"message": "hi", "thread_id": "cap-5"}),
        content_type="application/json",
    )
    assert answer.status_code == 429 and answer.json()["error"] == "too_many_threads"
    comm = communicator("cap-6", session_cookie(client))
    await comm.connect()
    assert (await comm.receive_json_from())["type"] == "error"
    assert (await comm.receive_output())["code"] == 4429
    page = await client.get("/chat/cap-7/")
    assert page.status_code == 302 and page["Location"] == "/"
