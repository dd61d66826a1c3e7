"""Chat events of a thread: one Redis Stream for resuming, one channel-layer group for live.

Every event of a run (``user``, ``token``, ``tool``, ``done``, ``error``,
``cancelled``) is appended to ``thread_events:<thread_id>`` (db 0, capped at about
``THREAD_EVENTS_MAXLEN`` entries, expiring after a day without activity) and then sent
to the channel-layer group of the thread, so every open tab in any process sees it.
The stream entry's id becomes the event's ``"id"``: the SSE endpoint sends it as the
``id:`` line, and ``EventSource`` hands it back as ``Last-Event-ID`` to resume with
:func:`read_since`.

Events are JSON objects; the stream stores each as one field (``e``) so an entry reads
back exactly as it was published.

Appending and fanning out is one round trip: a script (:data:`_PUBLISH`) XADDs the
entry and PUBLISHes the group message itself, the very bytes channels-redis's layer
would publish, so every subscriber (any process) reads an ordinary group message.
Python packs that message with the event's ``id`` as its last value, left open; the
script appends the id XADD returned. Two round trips (XADD, then ``PUBLISH`` through the
layer's pool) were the largest part of the server's CPU per event after the graph
itself (the README's "Chat websocket benchmark"). Where the layer cannot take bytes
from another client (another server, encryption), it is the two round trips still.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import (
    UNAVAILABLE_ERRORS,
    AsyncScript,
    get_async_client,
    get_client,
    url_for,
)

EVENT_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")  # ASCII digits only: Redis refuses others
READ_BATCH = 200  # events per XREAD; a resuming client gets the rest on the next call
_FIELD = b"e"


def validate_event_id(event_id: Any) -> bool:
    """Event ids are Redis Stream ids (``<ms>-<seq>``), e.g. from ``Last-Event-ID``."""
    return isinstance(event_id, str) and EVENT_ID.fullmatch(event_id) is not None


def group_name(thread_id: str) -> str:
    """The channel-layer group of a thread (every socket open on it joins)."""
    return f"thread.{thread_id}"


# KEYS: the thread's event stream [, its run lock, its cancel flag]. ARGV: maxlen, ttl
# (0: leave it), event JSON, the group's Redis channel, the group message packed up to
# its last value (the event's id, a msgpack string: fixstr below 32 bytes, str8 above)
# [, the run's lock token, the lock's ttl in ms]. Returns the entry's id; with the lock,
# {0} when it is not the run's (nothing published: another process runs the thread
# now), else {id, 1, cancel flag}, the lock extended: what the run's keeper does
# (chat.pending's renew script), in the same round trip. A channel is no key: on a Redis
# Cluster the script runs on the stream's node (the lock and the flag share its hash
# slot) and PUBLISH reaches the subscribers of every node.
PUBLISH_EVENT_LUA = """
local function publish_event(stream, maxlen, ttl, data, channel, packed)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', data)
  if ttl ~= '0' then redis.call('EXPIRE', stream, ttl) end
  local head
  if #id < 32 then head = string.char(0xa0 + #id) else head = string.char(0xd9, #id) end
  redis.call('PUBLISH', channel, packed .. head .. id)
  return id
end
"""  # the step every script that publishes an event takes (ARGV as direct_args() gives)
_PUBLISH = (
    PUBLISH_EVENT_LUA
    + """
if KEYS[2] and redis.call('GET', KEYS[2]) ~= ARGV[6] then return {0} end
local id = publish_event(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
if not KEYS[2] then return id end
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return {id, 1, redis.call('GET', KEYS[3])}
"""
)
_publish = AsyncScript(None, _PUBLISH.encode())
_OPEN_ID = b"\xa0"  # msgpack's empty string: the id's place, cut off for the script


def _group_message(event: dict[str, Any]) -> dict[str, Any]:
    return {"type": "chat.event", "event": event}


async def publish(thread_id: str, event: dict[str, Any], *, client=None) -> dict[str, Any]:
    """Append ``event`` to the thread's stream, send it to its group; returns it with ``id``.

    One script call when the channel layer's shard for the group is the server of the
    db 0 client (``client=None``) and its messages are plain msgpack; else XADD, then
    ``group_send``. Token events leave the stream's TTL alone: the run's ends set it.
    """
    published, _ = await publish_renewing(thread_id, event, None, client=client)
    return published


async def publish_renewing(
    thread_id: str, event: dict[str, Any], lock_token: str | None, *, client=None
) -> tuple[dict[str, Any], tuple[bool, str | None] | None]:
    """:func:`publish` for a run holding the thread's lock (``lock_token``): in the same
    script call, extend the lock if it is still the run's and read the cancel flag, as
    :func:`chat.pending.arenew` does; a run whose lock is gone publishes nothing (the
    event comes back without an ``id``). Returns the event and ``(still ours, cancel
    flag)``, or ``None`` when the event went the two-step way (the lock left to the
    run's keeper)."""
    event = _without_id(event)
    key = keys.thread_events_key(thread_id)
    args = direct_args(thread_id, event) if client is None else None
    client = client or get_async_client("sessions")
    if args is not None:
        if lock_token is None:
            entry_id = await _publish([key], args, client=client)
            return {**event, "id": entry_id.decode()}, None
        script_keys = [key, keys.run_lock_key(thread_id), keys.cancel_run_key(thread_id)]
        args += [lock_token, keys.RUN_LOCK_TTL_MS]
        reply = await _publish(script_keys, args, client=client)
        if reply[0] == 0:
            return event, (False, None)
        entry_id, _, *flag = reply
        lock = (True, flag[0].decode() if flag and flag[0] is not None else None)
        return {**event, "id": entry_id.decode()}, lock
    data, ttl = _encoded(event)
    if not ttl:  # the hot path: one command
        entry_id = await client.xadd(
            key, {_FIELD: data}, maxlen=keys.THREAD_EVENTS_MAXLEN, approximate=True
        )
    else:
        async with client.pipeline(transaction=False) as pipe:
            pipe.xadd(key, {_FIELD: data}, maxlen=keys.THREAD_EVENTS_MAXLEN, approximate=True)
            pipe.expire(key, ttl)
            entry_id, _ = await pipe.execute()
    event = {**event, "id": entry_id.decode()}
    await get_channel_layer().group_send(group_name(thread_id), _group_message(event))
    return event, None


def _without_id(event: dict[str, Any]) -> dict[str, Any]:
    """The stream gives the id (and it must be the group message's last value)."""
    return {k: v for k, v in event.items() if k != "id"} if "id" in event else event


def _encoded(event: dict[str, Any]) -> tuple[str, int]:
    """The stream entry's JSON and the stream's new TTL (0: token events leave it)."""
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return data, 0 if event.get("type") == "token" else keys.THREAD_EVENTS_TTL_SECONDS


def direct_args(thread_id: str, event: dict[str, Any]) -> list[Any] | None:
    """ARGV 1-5 of :data:`_PUBLISH` for ``event`` (maxlen, ttl, JSON, the group's channel,
    the packed group message up to its id), or ``None`` when the channel layer cannot
    take bytes published by the db 0 client (then: XADD, then ``group_send``). Scripts
    of other modules that publish an event as one of their steps
    (:func:`chat.pending.afinish`) take the same arguments."""
    layer = get_channel_layer()
    if not hasattr(layer, "direct_group_channel"):
        return None
    channel = layer.direct_group_channel(group_name(thread_id), url_for("sessions"))
    if channel is None:
        return None
    event = _without_id(event)
    data, ttl = _encoded(event)
    packed = layer.serialize(_group_message({**event, "id": ""}))
    assert packed.endswith(_OPEN_ID)  # msgpack keeps the dict's order: the id is last
    return [keys.THREAD_EVENTS_MAXLEN, ttl, data, channel, packed[: -len(_OPEN_ID)]]


def _block_limit_ms() -> int | None:
    """A blocking read must return before the client's socket timeout fires."""
    timeout = settings.REDIS.get("SOCKET_TIMEOUT", 5)
    return None if not timeout else max(100, int(timeout * 1000) - 1000)


async def read_since(
    thread_id: str, last_id: str, block_ms: int = 0, *, client=None
) -> list[dict[str, Any]]:
    """The thread's events after ``last_id`` (``"0-0"``: from the start of the stream).

    With ``block_ms``, waits up to that long (capped below the Redis socket timeout) for
    the first one; returns ``[]`` when none came.
    """
    block = None
    if block_ms:
        limit = _block_limit_ms()
        block = min(block_ms, limit) if limit else block_ms
    reply = await (client or get_async_client("sessions")).xread(
        {keys.thread_events_key(thread_id): last_id}, count=READ_BATCH, block=block
    )
    events = []
    for _key, entries in reply or ():
        for entry_id, fields in entries:
            events.append({**json.loads(fields[_FIELD]), "id": entry_id.decode()})
    return events


def entry_type(fields: dict) -> str:
    """The ``type`` of a raw stream entry's event ("" if unreadable)."""
    try:
        return str(json.loads(fields[_FIELD]).get("type", ""))
    except (KeyError, ValueError, AttributeError):
        return ""


async def last_id(thread_id: str, *, client=None) -> str:
    """The id of the thread's latest event, ``"0-0"`` when it has none."""
    client = client or get_async_client("sessions")
    reply = await client.xrevrange(keys.thread_events_key(thread_id), count=1)
    return reply[0][0].decode() if reply else "0-0"


async def aannounce_deleted(thread_id: str) -> None:
    """Tell every open tab of the thread that it is gone (they close with 4410); best
    effort: the thread is deleted whether or not Redis carries the news."""
    event = {"type": "deleted", "thread_id": thread_id}
    with contextlib.suppress(*UNAVAILABLE_ERRORS):
        await get_channel_layer().group_send(group_name(thread_id), _group_message(event))


def announce_deleted(thread_id: str) -> None:
    async_to_sync(aannounce_deleted)(thread_id)


def delete(thread_id: str, *, client=None) -> None:
    """Drop the thread's event stream (the thread is being deleted)."""
    (client or get_client("sessions")).unlink(keys.thread_events_key(thread_id))


async def adelete(thread_id: str, *, client=None) -> None:
    await (client or get_async_client("sessions")).unlink(keys.thread_events_key(thread_id))
