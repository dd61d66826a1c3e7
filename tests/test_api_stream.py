"""GET /api/chat/stream: Server-Sent Events of a thread, with Last-Event-ID resume."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.test import AsyncClient

from tests.chat_support import signed_in_client
from tests.test_api_chat import post, wait_for_reply

pytestmark = pytest.mark.django_db(transaction=True)


def parse(chunk: bytes) -> dict:
    """One SSE message -> {"id": ..., "event": ..., "data": ...} (comments and retry skipped)."""
    out: dict = {}
    for line in chunk.decode().splitlines():
        field, _, value = line.partition(": ")
        if field in ("id", "event"):
            out[field] = value
        elif field == "data":
            out["data"] = json.loads(value)
    return out


async def events_until(stream, kind: str) -> list[dict]:
    seen = []
    async with asyncio.timeout(10):
        async for chunk in stream:
            message = parse(chunk)
            if "data" not in message:
                continue
            seen.append(message)
            if message["data"]["type"] == kind:
                return seen
    raise AssertionError(f"stream ended before a {kind!r} event: {seen}")


async def open_stream(client: AsyncClient, thread_id: str, **headers):
    response = await client.get(
        "/api/chat/stream", {"thread_id": thread_id}, headers=headers or None
    )
    assert response.status_code == 200, response
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"].startswith("max-age=0")
    return response.streaming_content


async def test_stream_starts_with_history_then_carries_the_live_events():
    client = await signed_in_client("ada@example.com")
    await post(client, {"message": "earlier", "thread_id": "sse-1"})
    await wait_for_reply(client, "sse-1")

    stream = await open_stream(client, "sse-1")
    first = (await events_until(stream, "history"))[0]
    assert [m["content"] for m in first["data"]["messages"] if m["role"] == "user"] == ["earlier"]

    await post(client, {"message": "now live", "thread_id": "sse-1"})
    live = await events_until(stream, "done")
    kinds = [m["data"]["type"] for m in live]
    assert kinds[0] == "user" and "token" in kinds and kinds[-1] == "done"
    assert all(m["id"] == m["data"]["id"] for m in live)  # the id: line is the event id
    await stream.aclose()


async def test_last_event_id_resumes_after_the_given_event():
    client = await signed_in_client("ada@example.com")
    stream = await open_stream(client, "sse-2")
    await events_until(stream, "history")
    await post(client, {"message": "resume me", "thread_id": "sse-2"})
    everything = await events_until(stream, "done")
    await stream.aclose()

    cut = 2  # the browser saw two events, then the connection dropped
    resumed_stream = await open_stream(
        client, "sse-2", **{"Last-Event-ID": everything[cut - 1]["id"]}
    )
    resumed = await events_until(resumed_stream, "done")
    await resumed_stream.aclose()
    assert [m["data"] for m in resumed] == [m["data"] for m in everything[cut:]]


async def test_stream_of_another_users_thread_is_403_and_anonymous_is_401():
    ada = await signed_in_client("ada@example.com")
    bob = await signed_in_client("bob@example.com")
    await post(ada, {"message": "mine", "thread_id": "sse-ada"})
    response = await bob.get("/api/chat/stream", {"thread_id": "sse-ada"})
    assert response.status_code == 403
    response = await AsyncClient().get("/api/chat/stream", {"thread_id": "sse-ada"})
    assert response.status_code == 401
    response = await ada.get("/api/chat/stream", {"thread_id": "bad id!"})
    assert response.status_code == 400
