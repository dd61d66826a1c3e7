"""Helpers shared by the chat transport tests: signed-in users and websocket clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from pydantic import Field

from chat import events
from chat.graph import build_graph, get_checkpointer
from chat.offline_model import OfflineChatModel
from chat.runner import Runner


async def signed_in_client(email: str) -> AsyncClient:
    """An AsyncClient with a real session (in Redis) of a user with ``email``."""
    user, _ = await get_user_model().objects.aget_or_create(
        username=email.split("@")[0], defaults={"email": email}
    )
    client = AsyncClient()
    await client.aforce_login(user)
    return client


def session_cookie(client: AsyncClient) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def communicator(thread_id: str, cookie: str | None = None, origin: str = "http://localhost"):
    from agenticpal.asgi import application

    headers = [(b"origin", origin.encode()), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/chat/{thread_id}/", headers=headers)


async def receive(comm: WebsocketCommunicator, wait: float = 5) -> dict:
    return json.loads(await comm.receive_from(timeout=wait))


async def receive_until(comm: WebsocketCommunicator, kind: str, wait: float = 10) -> list[dict]:
    """Every event up to and including the first of type ``kind``."""
    seen: list[dict] = []
    async with asyncio.timeout(wait):
        while True:
            event = await receive(comm, wait)
            seen.append(event)
            if event["type"] == kind:
                return seen


async def connected(thread_id: str, cookie: str) -> tuple[WebsocketCommunicator, dict]:
    """A connected socket and its first event (``history``)."""
    comm = communicator(thread_id, cookie)
    ok, _ = await comm.connect()
    assert ok
    first = await receive(comm)
    assert first["type"] == "history", first
    return comm, first


# --- the engine: scripted models, runners and the thread's event stream -----------


class ScriptedModel(OfflineChatModel):
    """The offline model with test hooks: wait for a gate, count calls, fail mid-reply."""

    gate: Any = None  # an asyncio.Event to wait for before the first word
    fail_after: int | None = None  # raise after streaming this many words
    calls: list = Field(default_factory=list)

    async def _astream(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls.append(messages[-1].content)
        if self.gate is not None:
            await self.gate.wait()
        sent = 0
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            if self.fail_after is not None and sent >= self.fail_after:
                raise RuntimeError("the model exploded")
            sent += 1
            yield chunk


def runner_with(model: OfflineChatModel) -> Runner:
    """A runner (one "process") whose graph uses ``model`` and the Redis checkpointer."""
    compiled = None

    async def factory():
        nonlocal compiled
        if compiled is None:
            compiled = build_graph(model=model, checkpointer=await get_checkpointer())
        return compiled

    return Runner(graph_factory=factory)


async def events_until(
    thread_id: str, kind: str, *, count: int = 1, after: str = "0-0", wait: float = 10
) -> list[dict]:
    """The thread's published events (from its stream) up to the ``count``-th ``kind``."""
    seen: list[dict] = []
    found = 0
    async with asyncio.timeout(wait):
        while True:
            for event in await events.read_since(thread_id, after, block_ms=200):
                seen.append(event)
                after = event["id"]
                if event["type"] == kind:
                    found += 1
                    if found == count:
                        return seen


async def all_events(thread_id: str) -> list[dict]:
    return await events.read_since(thread_id, "0-0")


def assert_runs_do_not_overlap(seen: list[dict]) -> list[str]:
    """Every run's events sit between its ``user`` and its end; returns the run order."""
    order: list[str] = []
    current = None
    for event in seen:
        mid = event.get("message_id")
        if event["type"] == "user":
            assert current is None, f"run {mid} started inside run {current}"
            current = mid
            order.append(mid)
        elif mid is not None:
            assert mid == current, f"event of {mid} inside run {current}: {event}"
            if event["type"] in ("done", "error", "cancelled"):
                current = None
    return order


async def eventually(check, wait: float = 10, every: float = 0.02) -> None:
    """Poll ``check()`` (a plain callable) until it is true; fail after ``wait`` seconds."""
    async with asyncio.timeout(wait):
        while not check():  # noqa: ASYNC110 - the condition lives in Redis, not in an Event
            await asyncio.sleep(every)
