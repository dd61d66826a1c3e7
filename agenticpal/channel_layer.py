"""The channel layer: channels-redis's pub/sub layer without its process-wide publish lock.

channels-redis 4.3.0 holds the shard's one ``asyncio.Lock`` across every ``PUBLISH``
round trip, so every ``group_send`` of a process waits for every other one.
:class:`ConcurrentPublishShard` takes that lock only to create the shard's client, never
across a publish; :class:`RedisPubSubChannelLayer` (the ``CHANNEL_LAYERS`` backend) is
the upstream layer built with those shards, everything else unchanged. Drop the shard
once upstream publishes without the lock. Why, and how it is configured: the README's
"Chat websocket benchmark" section.

:meth:`RedisPubSubChannelLayer.direct_group_channel` tells :mod:`chat.events` whether
it may publish a group message itself, from a script that also appends the event to
its stream (one round trip instead of two).

When the shard's subscriber connection comes back after Redis went away, redis-py
subscribes its channels again; whatever was published in between reached nobody. As
soon as Redis confirms a group's subscription again, every member of the group gets a
:data:`RESUBSCRIBED` message (``{"type": "layer.resubscribed", "group": ...}``) so it can
read back what it missed (the chat consumer reads the thread's event stream). Every
consumer that joins a group must therefore handle ``layer.resubscribed`` (Channels
raises ``ValueError`` for a type without a handler). Shards of ``{"address": url}``
hosts, the ones the project configures, send it; host/port and Sentinel hosts keep
upstream's shard and do not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from channels_redis import pubsub
from channels_redis.serializers import MsgPackSerializer
from channels_redis.utils import _wrap_close
from redis import asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.utils import str_if_bytes

from agenticpal.redis_clients import channel_layer_pool

logger = logging.getLogger("agenticpal.channel_layer")

RESUBSCRIBED = "layer.resubscribed"


class ResubscribingPubSub(PubSub):
    """redis-py's ``PubSub`` that calls ``on_resubscribed(channel)`` when Redis confirms
    a channel subscribed again by a reconnect (``on_connect``), not at the first
    subscription. The confirmation, not the ``SUBSCRIBE`` sent, is the point from which
    every publish reaches this connection again."""

    def __init__(self, *args: Any, on_resubscribed: Callable[[str], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.on_resubscribed = on_resubscribed
        self.awaiting_confirmation: set[str] = set()

    async def on_connect(self, connection: Any) -> None:
        """redis-py's callback on a reconnect: subscribe again (upstream), and wait for
        each channel's confirmation."""
        self.awaiting_confirmation = {str_if_bytes(name) for name in self.channels}
        if self.awaiting_confirmation:
            logger.info(
                "Channel-layer subscriber reconnected; subscribing %d channels again",
                len(self.awaiting_confirmation),
            )
        await super().on_connect(connection)

    async def handle_message(self, response: Any, ignore_subscribe_messages: bool = False):
        """Upstream's parsing, after calling ``on_resubscribed`` for a confirmation
        awaited since the reconnect."""
        if (
            self.awaiting_confirmation
            and isinstance(response, list)
            and str_if_bytes(response[0]) == "subscribe"
        ):
            channel = str_if_bytes(response[1])
            if channel in self.awaiting_confirmation:
                self.awaiting_confirmation.discard(channel)
                self.on_resubscribed(channel)
        return await super().handle_message(response, ignore_subscribe_messages)


class ConcurrentPublishShard(pubsub.RedisSingleShardConnection):
    """A shard whose ``PUBLISH`` commands run concurrently (pooled connections)."""

    def _ensure_redis(self) -> None:
        if self._redis is not None:
            return
        if "address" not in self.host:  # host/port or Sentinel: upstream's pool
            super()._ensure_redis()
            return
        self._redis = aioredis.Redis(connection_pool=channel_layer_pool(self.host))
        self._pubsub = ResubscribingPubSub(
            self._redis.connection_pool,
            event_dispatcher=self._redis._event_dispatcher,  # as Redis.pubsub() does
            on_resubscribed=self.resubscribed,
        )

    def resubscribed(self, channel: str) -> None:
        """Tell the members of the group on ``channel`` that its subscription is back."""
        loop_layer = self.channel_layer  # this loop's layer: its groups and queues
        members = loop_layer.groups.get(channel, ())
        if not members:
            return
        group = channel.removeprefix(loop_layer._get_group_channel_name(""))
        serialize = loop_layer.channel_layer.serialize  # the layer's own bytes
        notice = serialize({"type": RESUBSCRIBED, "group": group})
        for member in members:
            queue = loop_layer.channels.get(member)
            if queue is not None:
                queue.put_nowait(notice)

    async def flush(self) -> None:
        """Upstream's flush, after making sure the receiver task has really stopped.

        Upstream cancels the receiver once and awaits it; a cancellation that lands
        inside a redis-py call while the server is gone can be swallowed (the receiver
        logs the error and loops on), and the flush then waits forever.
        """
        task = self._receive_task
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        await super().flush()

    async def publish(self, channel: str, message: bytes) -> None:
        client = self._redis
        if client is None:
            async with self._lock:  # creation only; flush() also runs under this lock
                self._ensure_redis()
                client = self._redis
        await client.publish(channel, message)


class _LoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [ConcurrentPublishShard(s.host, self) for s in self._shards]


class RedisPubSubChannelLayer(pubsub.RedisPubSubChannelLayer):
    """``channels_redis.pubsub.RedisPubSubChannelLayer`` with concurrent publishes."""

    def _get_layer(self) -> pubsub.RedisPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)  # flushes the layer when its loop closes, as upstream
        return layer

    def direct_group_channel(self, group: str, address: str) -> str | None:
        """The Redis channel ``group_send(group, ...)`` publishes on, when a client of
        the server at ``address`` may publish there itself ``self.serialize(message)``:
        the group's shard is that server (pub/sub ignores the database) and messages are
        plain msgpack (no encryption, no random prefix). None otherwise."""
        layer = self._get_layer()
        channel = layer._get_group_channel_name(group)
        serializer = self._serializer
        if (
            layer._get_shard(channel).host.get("address") != address
            or type(serializer) is not MsgPackSerializer
            or serializer.crypter is not None
            or serializer.random_prefix_length
        ):
            return None
        return channel
