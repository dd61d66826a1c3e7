"""POST /api/chat: queue a message over plain HTTP (session auth, CSRF, JSON errors)."""

from __future__ import annotations

import asyncio

import pytest
from django.test import AsyncClient

from tests.chat_support import signed_in_client

pytestmark = pytest.mark.django_db(transaction=True)


async def post(client: AsyncClient, body, **extra):
    return await client.post("/api/chat", body, content_type="application/json", **extra)


async def wait_for_reply(client: AsyncClient, thread_id: str) -> list[dict]:
    async with asyncio.timeout(10):
        while True:
            messages = (await client.get(f"/api/threads/{thread_id}")).json()["messages"]
            if messages and messages[-1]["role"] == "assistant":
                return messages
            await asyncio.sleep(0.05)


async def test_anonymous_gets_json_401():
    response = await post(AsyncClient(), {"message": "hi"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


async def test_post_creates_a_thread_and_the_reply_lands_in_history():
    client = await signed_in_client("ada@example.com")
    response = await post(client, {"message": "hello over http"})
    assert response.status_code == 202
    body = response.json()
    assert body["thread_id"] and body["message_id"]
    messages = await wait_for_reply(client, body["thread_id"])
    assert messages[0] == {"role": "user", "content": "hello over http"}
    threads = (await client.get("/api/threads")).json()["threads"]
    assert [t["id"] for t in threads] == [body["thread_id"]]


async def test_post_to_a_named_new_thread_and_then_continue_it():
    client = await signed_in_client("ada@example.com")
    first = await post(client, {"message": "one", "thread_id": "api-thread-1"})
    assert first.json()["thread_id"] == "api-thread-1"
    await wait_for_reply(client, "api-thread-1")
    await post(client, {"message": "two", "thread_id": "api-thread-1"})
    async with asyncio.timeout(10):
        while True:
            messages = await wait_for_reply(client, "api-thread-1")
            users = [m["content"] for m in messages if m["role"] == "user"]
            if users == ["one", "two"]:
                break
            await asyncio.sleep(0.05)


async def test_post_to_another_users_thread_is_403():
    ada = await signed_in_client("ada@example.com")
    bob = await signed_in_client("bob@example.com")
    await post(ada, {"message": "mine", "thread_id": "ada-only"})
    response = await post(bob, {"message": "let me in", "thread_id": "ada-only"})
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "detail": "This thread is not yours."}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "bad_request"),
        ([1, 2], "bad_request"),
        ({}, "invalid_message"),
        ({"message": ""}, "invalid_message"),
        ({"message": "x" * (16 * 1024 + 1)}, "invalid_message"),
        ({"message": "hi", "thread_id": "../etc"}, "bad_thread_id"),
        ({"message": "hi", "thread_id": "x" * 65}, "bad_thread_id"),
    ],
)
async def test_bad_input_is_a_400_with_a_reason(body, code):
    client = await signed_in_client("ada@example.com")
    if isinstance(body, str):
        response = await client.post("/api/chat", body, content_type="application/json")
    else:
        response = await post(client, body)
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert response.json()["detail"]


async def test_csrf_is_enforced_with_a_json_403():
    client = await signed_in_client("ada@example.com")
    client.handler.enforce_csrf_checks = True
    response = await post(client, {"message": "no token"})
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"

    page = await client.get("/")  # sets the csrftoken cookie
    assert page.status_code == 200
    token = client.cookies["csrftoken"].value
    response = await post(client, {"message": "with token"}, headers={"X-CSRFToken": token})
    assert response.status_code == 202


async def test_redis_down_is_a_json_503(private_redis):
    client = await signed_in_client("ada@example.com")
    private_redis.stop()
    response = await post(client, {"message": "anyone there?"})
    assert response.status_code == 503
    assert response.json()["error"] == "redis_unavailable"
    assert "REDIS_URL" in response.json()["detail"]
