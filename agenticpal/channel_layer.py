"""The channel layer: channels-redis's pub/sub layer without its process-wide publish lock.

channels-redis 4.3.0's ``RedisSingleShardConnection.publish`` holds the shard's one
``asyncio.Lock`` across the whole ``PUBLISH`` round trip, so every ``group_send`` of the
process waits for every other one: with 200 chats streaming, one token event waited
about 420 ms (p50) for its turn although Redis answered in well under a millisecond.

The lock guards state that only subscribing changes (the pub/sub connection, the set of
subscribed channels) and the lazy creation of the shard's client. A ``PUBLISH`` needs
neither: it borrows a connection of the shard's pool like any other command, so many
can be in flight at once. This module is that one change, as small subclasses:

* :class:`ConcurrentPublishShard` — ``publish`` takes the lock only when the client
  does not exist yet (first use, or after ``flush``), never across the round trip;
  its pool (:func:`agenticpal.redis_clients.channel_layer_pool`) is bounded and
  waits for a free connection, and
  packs commands with hiredis like the project's other async clients; ``flush``
  re-cancels a receiver task that swallowed its cancellation (Redis gone);
* :class:`RedisPubSubChannelLayer` — the upstream layer building its per-loop layer
  with those shards. Everything else (subscriptions, receiving, serialisation, flush)
  is upstream's.

Configure it like the upstream layer, with a socket timeout in each host so a Redis
that stops answering fails a publish instead of hanging it::

    CHANNEL_LAYERS = {"default": {
        "BACKEND": "agenticpal.channel_layer.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": "redis://...", "socket_timeout": 5}]},
    }}

Revisit when upgrading channels-redis: drop this module once upstream publishes
without the lock.
"""

from __future__ import annotations

import asyncio

from channels_redis import pubsub
from channels_redis.utils import _wrap_close
from redis import asyncio as aioredis

from agenticpal.redis_clients import channel_layer_pool


class ConcurrentPublishShard(pubsub.RedisSingleShardConnection):
    """A shard whose ``PUBLISH`` commands run concurrently (pooled connections)."""

    def _ensure_redis(self) -> None:
        if self._redis is not None:
            return
        if "address" not in self.host:  # host/port or Sentinel: upstream's pool
            super()._ensure_redis()
            return
        self._redis = aioredis.Redis(connection_pool=channel_layer_pool(self.host))
        self._pubsub = self._redis.pubsub()

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
