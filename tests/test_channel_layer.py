"""agenticpal.channel_layer: group messages reach every member, publishes do not queue
behind one another (or behind a subscription in flight), a Redis that is gone fails a
publish in time and a Redis that is back is used again — real Redis servers."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from channels.layers import get_channel_layer

from agenticpal.channel_layer import ConcurrentPublishShard, RedisPubSubChannelLayer
from agenticpal.config import with_db
from agenticpal.redis_server import RedisServer


def layer_for(server: RedisServer) -> RedisPubSubChannelLayer:
    return RedisPubSubChannelLayer(hosts=[{"address": with_db(server.url, 0), "socket_timeout": 2}])


async def receive(layer, channel: str, wait: float = 5) -> dict:
    return await asyncio.wait_for(layer.receive(channel), wait)


def test_the_project_uses_this_layer():
    assert isinstance(get_channel_layer(), RedisPubSubChannelLayer)


async def test_group_send_reaches_every_member_and_not_others(redis_server):
    layer = layer_for(redis_server)
    try:
        a, b, other = [await layer.new_channel() for _ in range(3)]
        await layer.group_add("thread.t1", a)
        await layer.group_add("thread.t1", b)
        await layer.group_add("thread.t2", other)
        await layer.group_send("thread.t1", {"type": "chat.event", "event": {"n": 1}})
        assert await receive(layer, a) == {"type": "chat.event", "event": {"n": 1}}
        assert await receive(layer, b) == {"type": "chat.event", "event": {"n": 1}}
        with pytest.raises(TimeoutError):
            await receive(layer, other, wait=0.3)
    finally:
        await layer.flush()


async def test_a_publisher_keeps_its_order_and_many_publish_at_once(redis_server):
    """200 groups, one publisher task each (the runner's outbox): every message arrives,
    each group's in the order it was sent."""
    layer = layer_for(redis_server)
    try:
        channels = {}
        for n in range(200):
            channels[n] = await layer.new_channel()
            await layer.group_add(f"g{n}", channels[n])

        async def publisher(n: int) -> None:
            for i in range(10):
                await layer.group_send(f"g{n}", {"type": "e", "i": i})

        await asyncio.gather(*(publisher(n) for n in range(200)))
        for channel in channels.values():
            got = [(await receive(layer, channel))["i"] for _ in range(10)]
            assert got == list(range(10))
        shard = layer._get_layer()._shards[0]
        assert isinstance(shard, ConcurrentPublishShard)
        # Concurrent publishes borrowed several pooled connections instead of queueing.
        pool = shard._redis.connection_pool
        opened = len(pool._available_connections) + len(pool._in_use_connections)
        assert 2 < opened <= pool.max_connections  # the subscriber's one and publishers
    finally:
        await layer.flush()


async def test_publish_does_not_wait_for_the_shard_lock(redis_server):
    """The lock that upstream holds across a round trip (subscribe, unsubscribe, and in
    channels-redis 4.3.0 every publish) does not delay a publish."""
    layer = layer_for(redis_server)
    try:
        member = await layer.new_channel()
        await layer.group_add("g", member)
        shard = layer._get_layer()._shards[0]
        async with shard._lock:  # as if a slow SUBSCRIBE were in flight
            await asyncio.wait_for(layer.group_send("g", {"type": "e"}), 1)
        assert await receive(layer, member) == {"type": "e"}
    finally:
        await layer.flush()


async def test_first_publish_creates_the_client_once(redis_server):
    layer = layer_for(redis_server)
    try:
        await asyncio.gather(*(layer.group_send("nobody", {"type": "e"}) for _ in range(20)))
        shard = layer._get_layer()._shards[0]
        client = shard._redis
        await layer.group_send("nobody", {"type": "e"})
        assert shard._redis is client
    finally:
        await layer.flush()


async def test_redis_down_fails_the_publish_in_time_and_back_up_works_again(redis_factory):
    server = redis_factory()
    layer = layer_for(server)
    try:
        member = await layer.new_channel()
        await layer.group_add("g", member)
        await layer.group_send("g", {"type": "e", "i": 1})
        assert (await receive(layer, member))["i"] == 1

        server.stop()
        started = time.monotonic()
        with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            await layer.group_send("g", {"type": "e", "i": 2})
        assert time.monotonic() - started < 10

        server.start()
        await layer.group_send("nobody", {"type": "e"})  # publishing works again
    finally:
        await layer.flush()


async def test_direct_group_channel_names_the_groups_channel_only_for_its_own_server(
    redis_server,
):
    """chat.events publishes a group message itself only where group_send would: the
    same server, plain msgpack bytes."""
    layer = layer_for(redis_server)
    address = with_db(redis_server.url, 0)
    try:
        channel = layer.direct_group_channel("thread.t1", address)
        assert channel == layer._get_layer()._get_group_channel_name("thread.t1")
        assert layer.direct_group_channel("thread.t1", with_db(redis_server.url, 1)) is None
        encrypted = RedisPubSubChannelLayer(
            hosts=[{"address": address}], symmetric_encryption_keys=["k"]
        )
        assert encrypted.direct_group_channel("thread.t1", address) is None
        # What a client publishes there is what group_send publishes: members get it.
        member = await layer.new_channel()
        await layer.group_add("thread.t1", member)
        message = {"type": "chat.event", "event": {"id": "1-0"}}
        with redis.Redis.from_url(address) as client:
            client.publish(channel, layer.serialize(message))
        assert await receive(layer, member) == message
    finally:
        await layer.flush()


async def test_members_hear_when_their_group_is_subscribed_again(redis_server):
    """A reconnect of the subscriber connection (here: Redis kills it) subscribes again;
    once Redis confirms it, each member of a group gets ``layer.resubscribed`` with the
    group's name, and live messages flow again. The first subscription sends nothing."""
    layer = layer_for(redis_server)
    try:
        member, other = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("g", member)
        await layer.group_add("g", other)
        await layer.group_send("g", {"type": "e", "i": 1})
        assert (await receive(layer, member))["i"] == 1  # not a resubscribe notice
        assert (await receive(layer, other))["i"] == 1

        with redis.Redis.from_url(redis_server.url) as admin:
            assert admin.client_kill_filter(_type="pubsub") >= 1
        for channel in (member, other):
            notice = await receive(layer, channel)
            assert notice == {"type": "layer.resubscribed", "group": "g"}
        await layer.group_send("g", {"type": "e", "i": 2})
        assert (await receive(layer, member))["i"] == 2
    finally:
        await layer.flush()


async def test_a_restarted_redis_brings_the_notice_once_the_subscription_is_back(
    redis_factory,
):
    server = redis_factory()
    layer = layer_for(server)
    try:
        member = await layer.new_channel()
        await layer.group_add("g", member)
        server.stop()
        server.start()
        notice = await receive(layer, member, wait=10)
        assert notice == {"type": "layer.resubscribed", "group": "g"}
        await layer.group_send("g", {"type": "e", "i": 3})  # the notice means: live again
        assert (await receive(layer, member))["i"] == 3
    finally:
        await layer.flush()
