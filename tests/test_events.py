"""chat.events: the thread's Redis Stream (resume) and channel-layer group (live)."""

from __future__ import annotations

import time

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import override_settings

from agenticpal import redis_keys as keys
from chat import events


async def test_publish_appends_to_the_stream_and_reaches_the_group(sessions_redis):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.group_name("ev-1"), channel)
    published = await events.publish("ev-1", {"type": "user", "message_id": "m", "text": "hé "})

    received = await layer.receive(channel)
    assert received == {"type": "chat.event", "event": published}
    assert published["text"] == "hé " and published["id"]
    key = keys.thread_events_key("ev-1")
    assert sessions_redis.xlen(key) == 1
    assert 0 < sessions_redis.ttl(key) <= keys.THREAD_EVENTS_TTL_SECONDS
    await layer.group_discard(events.group_name("ev-1"), channel)


async def test_read_since_resumes_after_an_id_and_last_id_tracks_the_end():
    assert await events.last_id("ev-2") == "0-0"
    assert await events.read_since("ev-2", "0-0") == []
    sent = [await events.publish("ev-2", {"type": "token", "text": str(n)}) for n in range(5)]
    assert await events.last_id("ev-2") == sent[-1]["id"]
    assert await events.read_since("ev-2", "0-0") == sent
    assert await events.read_since("ev-2", sent[1]["id"]) == sent[2:]
    assert await events.read_since("ev-2", sent[-1]["id"]) == []


async def test_a_blocking_read_returns_empty_before_the_socket_timeout():
    conf = {**settings.REDIS, "SOCKET_TIMEOUT": 1.2}
    with override_settings(REDIS=conf):
        started = time.monotonic()
        assert await events.read_since("ev-3", "0-0", block_ms=15_000) == []
        assert time.monotonic() - started < 1.2  # capped, so no TimeoutError


async def test_the_stream_is_capped(sessions_redis):
    for n in range(keys.THREAD_EVENTS_MAXLEN + 300):
        await events.publish("ev-4", {"type": "token", "text": str(n)})
    assert sessions_redis.xlen(keys.thread_events_key("ev-4")) < keys.THREAD_EVENTS_MAXLEN + 300


async def test_delete_drops_the_stream(sessions_redis):
    await events.publish("ev-5", {"type": "user", "text": "x"})
    await events.adelete("ev-5")
    assert sessions_redis.exists(keys.thread_events_key("ev-5")) == 0


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1700000000000-0", True),
        ("0-0", True),
        ("1-2-3", False),
        ("$", False),
        ("", False),
        ("abc", False),
        (None, False),
    ],
)
def test_validate_event_id(value, ok):
    assert events.validate_event_id(value) is ok


def test_group_name_is_a_valid_channels_group():
    from channels.layers import BaseChannelLayer

    assert BaseChannelLayer().require_valid_group_name(events.group_name("x" * 64))
