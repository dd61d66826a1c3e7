"""End to end: the real ASGI server (uvicorn in a subprocess, its own redis-server),
a websocket client and an SSE client signed in through the local sign-in URL.

What only a real server shows: cookies and the origin check on a real handshake,
close codes on the wire, tokens streamed through the channel layer, history after a
reconnect coming from the checkpoints, and SSE resume with ``Last-Event-ID``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e_support import (
    CSRF_COOKIE,
    LiveServer,
    aiter_sse,
    asign_in,
    events_until,
    next_event,
    ws_connect,
)

END = {"done", "error", "cancelled"}


@pytest.fixture(scope="module", params=["redis", "cluster"])
def server(request) -> Iterator[LiveServer]:
    """The real server on one Redis, then on a 3-master Redis Cluster (REDIS_CLUSTER)."""
    with LiveServer(cluster=request.param == "cluster") as live:
        yield live


@pytest.fixture
async def http(server: LiveServer):
    """A signed-in async HTTP client (session and CSRF cookies)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await asign_in(client, server.login_url())
        yield client


def new_thread() -> str:
    return uuid.uuid4().hex


async def send_and_collect(ws, text: str) -> list[dict]:
    await ws.send(json.dumps({"type": "message", "message": text}))
    return await events_until(ws, END)


def tokens_of(events: list[dict]) -> str:
    return "".join(e["text"] for e in events if e["type"] == "token")


async def test_foreign_origin_is_refused_at_the_handshake(server, http) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(
            server, new_thread(), http.cookies["sessionid"], origin="http://evil.example"
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_unauthenticated_socket_is_closed_with_4401(server) -> None:
    async with ws_connect(server, new_thread(), cookie=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await next_event(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_streams_tokens_then_done_and_a_reconnect_gets_the_history(server, http) -> None:
    thread = new_thread()
    cookie = http.cookies["sessionid"]
    async with ws_connect(server, thread, cookie) as ws:
        first = await next_event(ws)
        assert first["type"] == "history"
        assert first["messages"] == []

        events = await send_and_collect(ws, "Hello, my name is Ada.")
        kinds = [e["type"] for e in events]
        assert kinds[-1] == "done", events
        assert kinds.count("token") >= 2, f"expected a streamed reply, got {kinds}"
        assert kinds.index("token") < kinds.index("done")
        done = events[-1]
        assert done["content"].strip()
        assert tokens_of(events).strip() == done["content"].strip()

        # Multi-turn context through the real server: the second reply knows the first.
        second = await send_and_collect(ws, "What is my name?")
        assert second[-1]["type"] == "done", second
        assert "Ada" in second[-1]["content"]

    async with ws_connect(server, thread, cookie) as again:
        history = await next_event(again)
    assert history["type"] == "history"
    said = [(m["role"], m["content"]) for m in history["messages"] if m["role"] != "tool"]
    assert said[0] == ("user", "Hello, my name is Ada.")
    assert said[1] == ("assistant", done["content"])
    assert said[2] == ("user", "What is my name?")
    assert said[3][0] == "assistant" and "Ada" in said[3][1]


async def test_two_tabs_of_a_thread_see_the_same_stream(server, http) -> None:
    thread = new_thread()
    cookie = http.cookies["sessionid"]
    async with (
        ws_connect(server, thread, cookie) as tab1,
        ws_connect(server, thread, cookie) as tab2,
    ):
        assert (await next_event(tab1))["type"] == "history"
        assert (await next_event(tab2))["type"] == "history"
        sent = await send_and_collect(tab1, "Hi from the first tab")
        seen = await events_until(tab2, END)
    assert seen[-1]["type"] == "done"
    assert seen[-1]["content"] == sent[-1]["content"]
    assert tokens_of(seen) == tokens_of(sent)


async def test_another_users_thread_is_closed_with_4403(server, http) -> None:
    thread = new_thread()
    async with ws_connect(server, thread, http.cookies["sessionid"]) as ws:
        assert (await next_event(ws))["type"] == "history"
    other_url = server.manage("local_login_url", server.url, "--email", "someone@localhost")
    async with httpx.AsyncClient(base_url=server.url) as other:
        await asign_in(other, other_url.stdout.split()[-1], csrf=False)
        async with ws_connect(server, thread, other.cookies["sessionid"]) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await next_event(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


# --- SSE ------------------------------------------------------------------------------


async def read_until_end(stream) -> list:
    out = []
    async for message in stream:
        out.append(message)
        if message.json().get("type") in END:
            return out
    raise AssertionError(f"the stream ended before a final event: {out}")


async def test_post_without_csrf_token_is_refused(server, http) -> None:
    response = await http.post("/api/chat", json={"message": "hi"})
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


async def test_sse_streams_a_reply_and_resumes_with_last_event_id(server, http) -> None:
    thread = new_thread()
    csrf = {"X-CSRFToken": http.cookies[CSRF_COOKIE]}
    url = f"/api/chat/stream?thread_id={thread}"
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = aiter_sse(response.aiter_lines())
        history = await anext(stream)
        assert history.json()["type"] == "history" and history.json()["messages"] == []

        posted = await http.post(
            "/api/chat", json={"message": "Hello there", "thread_id": thread}, headers=csrf
        )
        assert posted.status_code == 202, posted.text
        assert posted.json()["thread_id"] == thread
        live = await read_until_end(stream)

    kinds = [m.json()["type"] for m in live]
    assert kinds[-1] == "done" and "token" in kinds, kinds
    assert all(m.id for m in live), "every event carries an id for Last-Event-ID"

    # Drop the connection after the first event; a resume replays exactly the rest.
    async with http.stream("GET", url, headers={"Last-Event-ID": live[0].id}) as response:
        resumed = await read_until_end(aiter_sse(response.aiter_lines()))
    assert [(m.id, m.data) for m in resumed] == [(m.id, m.data) for m in live[1:]]

    # A fresh stream (no Last-Event-ID) starts with the conversation so far.
    async with http.stream("GET", url) as response:
        fresh = await anext(aiter_sse(response.aiter_lines()))
    messages = fresh.json()["messages"]
    assert [m["role"] for m in messages if m["role"] != "tool"] == ["user", "assistant"]
    assert messages[0]["content"] == "Hello there"
    assert messages[-1]["content"] == live[-1].json()["content"]


async def test_a_deleted_thread_is_gone_for_its_owner(server, http) -> None:
    thread = new_thread()
    async with ws_connect(server, thread, http.cookies["sessionid"]) as ws:
        await next_event(ws)
        assert (await send_and_collect(ws, "Remember this."))[-1]["type"] == "done"
    listed = (await http.get("/api/threads")).json()
    assert thread in [t["id"] for t in listed["threads"]]
    csrf = {"X-CSRFToken": http.cookies[CSRF_COOKIE]}
    assert (await http.delete(f"/api/threads/{thread}", headers=csrf)).status_code in (200, 204)
    listed = (await http.get("/api/threads")).json()
    assert thread not in [t["id"] for t in listed["threads"]]
    assert (await http.get(f"/api/threads/{thread}")).status_code in (403, 404)
