"""The chat socket's hot path: events of the thread are forwarded without a hop through
the sync thread per event (no ``aclose_old_connections()`` per message) — real Redis."""

from __future__ import annotations

import pytest

from chat import events
from tests.chat_support import connected, receive, session_cookie, signed_in_client

pytestmark = pytest.mark.django_db(transaction=True)


async def test_events_are_forwarded_without_closing_old_db_connections(monkeypatch):
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("s-hot", session_cookie(client))
    calls = []

    async def counting() -> None:
        calls.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counting)
    for n in range(5):
        await events.publish("s-hot", {"type": "token", "text": f"w{n} "})
    got = [(await receive(comm))["text"] for _ in range(5)]
    assert got == [f"w{n} " for n in range(5)]
    await comm.send_json_to({"type": "nonsense"})
    assert (await receive(comm))["type"] == "error"  # frames still reach their handlers
    assert calls == []
    await comm.disconnect()
