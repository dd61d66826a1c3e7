"""GET/DELETE /api/threads: the user's threads, their history, and deleting one."""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient

from agenticpal import redis_keys as keys
from tests.chat_support import session_cookie, signed_in_client
from tests.test_api_chat import post, wait_for_reply

pytestmark = pytest.mark.django_db(transaction=True)


async def test_anonymous_gets_json_401():
    for path in ("/api/threads", "/api/threads/abc"):
        response = await AsyncClient().get(path)
        assert response.status_code == 401


async def test_threads_are_listed_newest_first_with_titles():
    client = await signed_in_client("ada@example.com")
    await post(client, {"message": "older chat", "thread_id": "th-old"})
    await wait_for_reply(client, "th-old")
    await post(client, {"message": "newer chat", "thread_id": "th-new"})
    await wait_for_reply(client, "th-new")
    threads = (await client.get("/api/threads")).json()["threads"]
    assert [t["id"] for t in threads] == ["th-new", "th-old"]
    assert "older chat" in threads[1]["title"]


async def test_history_of_a_thread():
    client = await signed_in_client("ada@example.com")
    await post(client, {"message": "remember 42", "thread_id": "th-hist"})
    messages = await wait_for_reply(client, "th-hist")
    response = await client.get("/api/threads/th-hist")
    assert response.status_code == 200
    assert response.json() == {
        "thread_id": "th-hist",
        "status": "idle",
        "messages": messages,
        "approvals": [],
    }


async def test_other_users_and_unknown_threads_are_403_alike():
    ada = await signed_in_client("ada@example.com")
    bob = await signed_in_client("bob@example.com")
    await post(ada, {"message": "private", "thread_id": "th-ada"})
    await wait_for_reply(ada, "th-ada")
    foreign = await bob.get("/api/threads/th-ada")
    unknown = await bob.get("/api/threads/th-nobody")
    assert foreign.status_code == unknown.status_code == 403
    assert foreign.json() == unknown.json()
    assert (await bob.delete("/api/threads/th-ada")).status_code == 403
    assert (await ada.get("/api/threads/th-ada")).status_code == 200


async def test_delete_removes_history_ownership_and_session_entry(sessions_redis):
    client = await signed_in_client("ada@example.com")
    await post(client, {"message": "to be deleted", "thread_id": "th-del"})
    await wait_for_reply(client, "th-del")
    record = json.loads(sessions_redis.get(keys.session_key(session_cookie(client))))
    assert "th-del" in record["thread_ids"]

    response = await client.delete("/api/threads/th-del")
    assert response.status_code == 200
    assert response.json() == {"deleted": "th-del"}
    assert (await client.get("/api/threads")).json()["threads"] == []
    assert (await client.get("/api/threads/th-del")).status_code == 403
    record = json.loads(sessions_redis.get(keys.session_key(session_cookie(client))))
    assert "th-del" not in record["thread_ids"]
    assert sessions_redis.exists(keys.pending_message_key("th-del")) == 0
