"""chat.events: the thread's Redis Stream (resume) and channel-layer group (live)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import override_settings

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import url_for
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


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): row["calls"] for name, row in stats.items()}


async def raw_group_message(thread_id: str, event: dict) -> tuple[dict, bytes]:
    """Publish ``event`` while a plain redis-py subscriber listens on the group's Redis
    channel; returns the published event and the bytes that subscriber got."""
    channel = get_channel_layer().direct_group_channel(
        events.group_name(thread_id), url_for("sessions")
    )
    assert channel is not None
    with redis.Redis.from_url(url_for("sessions")) as client, client.pubsub() as pubsub:
        pubsub.subscribe(channel)
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        published = await events.publish(thread_id, event)
        message = pubsub.get_message(timeout=5)
    return published, message["data"]


async def test_one_script_call_appends_and_publishes_what_the_layer_would(sessions_redis):
    """One round trip: the script's XADD and PUBLISH; the subscriber gets the exact bytes
    ``group_send`` would have published for the event with its stream id."""
    layer = get_channel_layer()
    await events.publish("ev-warm", {"type": "token", "text": "x"})  # the script is loaded
    before = command_calls(sessions_redis)
    event = {"type": "tool", "message_id": "m", "name": "clock", "data": {"n": [1, 2.5, None]}}
    published, raw = await raw_group_message("ev-raw", event)
    after = command_calls(sessions_redis)
    assert raw == layer.serialize({"type": "chat.event", "event": published})
    assert published == {**event, "id": published["id"]}
    assert await events.read_since("ev-raw", "0-0") == [published]
    calls = {k: after.get(k, 0) - before.get(k, 0) for k in ("evalsha", "xadd", "publish")}
    assert calls == {"evalsha": 1, "xadd": 1, "publish": 1}  # both inside the script


async def test_an_id_too_long_for_a_fixstr_is_spliced_as_str8(sessions_redis):
    """Stream ids reach 41 characters (two 20-digit numbers): msgpack's str8 header."""
    key = keys.thread_events_key("ev-long")
    sessions_redis.xadd(key, {"e": "{}"})
    sessions_redis.execute_command("XSETID", key, "18446744073709551614-18446744073709551614")
    published, raw = await raw_group_message("ev-long", {"type": "token", "text": "é"})
    assert published["id"] == "18446744073709551614-18446744073709551615"
    assert raw == get_channel_layer().serialize({"type": "chat.event", "event": published})
    assert (await events.read_since("ev-long", "18446744073709551614-0"))[-1] == published


SUBSCRIBER = """
import asyncio, json, sys
from channels_redis.pubsub import RedisPubSubChannelLayer  # upstream, not ours

async def main():
    layer = RedisPubSubChannelLayer(hosts=[sys.argv[1]])
    channel = await layer.new_channel()
    await layer.group_add(sys.argv[2], channel)
    print("ready", flush=True)
    print(json.dumps(await asyncio.wait_for(layer.receive(channel), 10)), flush=True)
    await layer.flush()

asyncio.run(main())
"""


async def test_a_subscriber_in_another_process_gets_the_identical_message():
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SUBSCRIBER, url_for("sessions"), events.group_name("ev-proc"),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert (await asyncio.wait_for(process.stdout.readline(), 20)).strip() == b"ready"
        published = await events.publish("ev-proc", {"type": "done", "content": "hé 👋"})
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert json.loads(line) == {"type": "chat.event", "event": published}
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.mark.parametrize(
    "config",
    [
        {"symmetric_encryption_keys": ["secret"]},  # the bytes are not msgpack
        {"hosts_elsewhere": True},  # the group's shard is not the db 0 client's server
    ],
)
async def test_publish_takes_two_round_trips_when_the_layer_cannot_take_bytes(
    config, sessions_redis
):
    from agenticpal.config import channel_layers

    layers = channel_layers(settings.REDIS)
    layer_config = layers["default"]["CONFIG"]
    if config.pop("hosts_elsewhere", False):  # the same server under another name
        host = layer_config["hosts"][0]
        host["address"] = host["address"].replace("127.0.0.1", "localhost")
    layer_config.update(config)
    with override_settings(CHANNEL_LAYERS=layers):
        layer = get_channel_layer()
        assert layer.direct_group_channel(events.group_name("ev-two"), url_for("sessions")) is None
        channel = await layer.new_channel()
        await layer.group_add(events.group_name("ev-two"), channel)
        before = command_calls(sessions_redis)
        published = await events.publish("ev-two", {"type": "user", "text": "x"})
        assert await asyncio.wait_for(layer.receive(channel), 5) == {
            "type": "chat.event",
            "event": published,
        }
        assert await events.read_since("ev-two", "0-0") == [published]
        assert command_calls(sessions_redis).get("evalsha", 0) == before.get("evalsha", 0)
        await layer.flush()


async def test_an_event_given_an_id_gets_the_streams(sessions_redis):
    published, raw = await raw_group_message("ev-id", {"id": "mine", "type": "user", "text": "x"})
    assert published["id"] != "mine" and list(published)[-1] == "id"
    assert raw == get_channel_layer().serialize({"type": "chat.event", "event": published})


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


async def test_publish_renewing_extends_only_the_runs_own_lock(sessions_redis):
    """The run's events extend its lock and read its cancel flag in the same script call;
    a lock that is not the run's is left alone and the event is not published (another
    process runs the thread now)."""
    lock, flag = keys.run_lock_key("ev-lock"), keys.cancel_run_key("ev-lock")
    event = {"type": "token", "message_id": "m", "text": "word"}
    sessions_redis.set(lock, "ours", px=1_000)
    published, state = await events.publish_renewing("ev-lock", event, "ours")
    assert state == (True, None) and published["id"]
    assert sessions_redis.pttl(lock) > keys.RUN_LOCK_TTL_MS - 1_000
    sessions_redis.set(flag, "m", ex=60)
    _, state = await events.publish_renewing("ev-lock", event, "ours")
    assert state == (True, "m")
    sessions_redis.set(lock, "theirs", px=1_000)
    refused, state = await events.publish_renewing("ev-lock", event, "ours")
    assert state == (False, None) and "id" not in refused
    assert sessions_redis.get(lock) == b"theirs" and sessions_redis.pttl(lock) <= 1_000
    assert sessions_redis.xlen(keys.thread_events_key("ev-lock")) == 2
    assert await events.publish("ev-lock", event)  # no lock given: nothing read, no tuple
