"""Helpers shared by the chat transport tests: signed-in users and websocket clients."""

from __future__ import annotations

import asyncio
import json

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient


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
