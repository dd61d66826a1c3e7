"""Conversation threads: the session's ``thread_ids`` and who owns each thread.

What the chat app calls (each has an ``a``-twin):

- ``add_thread(session_key, thread_id)`` / ``remove_thread(...)``: change the session
  record's ``thread_ids`` atomically (compare-and-set, see :mod:`sessions_redis.store`),
  keeping its TTL. Two tabs adding threads at once both win.
- ``claim_thread(email, thread_id) -> bool``: take ownership of a thread id, or confirm
  it is already ours; ``False`` means another user owns it (refuse the request).
  One Lua round trip: ``thread_owner:<id>`` set-if-absent plus
  ``user_threads:<email>`` (a sorted set scored by creation time).
- ``owner_of(thread_id)``, ``threads_for(email)`` (newest first),
  ``forget_thread(email, thread_id)`` (only the owner can).

Ownership keys have no TTL: conversations (checkpoints in db 1) are persistent too.
``client`` defaults to the project's sessions client (db 0).
"""

from __future__ import annotations

import time

from redis.commands.core import AsyncScript, Script

from agenticpal.redis_clients import get_async_client, get_client
from sessions_redis import keys, store
from sessions_redis.record import SessionRecord

# KEYS: thread_owner:<id>, user_threads:<email>; ARGV: email, thread id, now (ms).
CLAIM_LUA = b"""
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
if not owner then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[2])
return 1
"""

# KEYS: thread_owner:<id>, user_threads:<email>; ARGV: email, thread id.
FORGET_LUA = b"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

_claim, _forget = Script(None, CLAIM_LUA), Script(None, FORGET_LUA)
_aclaim, _aforget = AsyncScript(None, CLAIM_LUA), AsyncScript(None, FORGET_LUA)


def _adding(thread_id: str):
    def change(record: SessionRecord) -> None:
        if thread_id not in record.thread_ids:
            record.thread_ids.append(thread_id)

    return change


def _removing(thread_id: str):
    def change(record: SessionRecord) -> None:
        record.thread_ids = [t for t in record.thread_ids if t != thread_id]

    return change


def add_thread(session_key: str, thread_id: str, *, client=None) -> bool:
    """Append ``thread_id`` to the session's ``thread_ids``; ``False`` if no such session."""
    client = client or get_client("sessions")
    return store.update(client, session_key, _adding(thread_id)) is not None


async def aadd_thread(session_key: str, thread_id: str, *, client=None) -> bool:
    client = client or get_async_client("sessions")
    return await store.aupdate(client, session_key, _adding(thread_id)) is not None


def remove_thread(session_key: str, thread_id: str, *, client=None) -> bool:
    """Drop ``thread_id`` from the session's ``thread_ids``; ``False`` if no such session."""
    client = client or get_client("sessions")
    return store.update(client, session_key, _removing(thread_id)) is not None


async def aremove_thread(session_key: str, thread_id: str, *, client=None) -> bool:
    client = client or get_async_client("sessions")
    return await store.aupdate(client, session_key, _removing(thread_id)) is not None


def _claim_args(email: str, thread_id: str) -> tuple[list[str], list]:
    return (
        [keys.thread_owner_key(thread_id), keys.user_threads_key(email)],
        [email, thread_id, int(time.time() * 1000)],
    )


def claim_thread(email: str, thread_id: str, *, client=None) -> bool:
    """Own ``thread_id`` (or confirm it is ours). ``False``: it belongs to someone else."""
    return bool(_claim(*_claim_args(email, thread_id), client=client or get_client("sessions")))


async def aclaim_thread(email: str, thread_id: str, *, client=None) -> bool:
    client = client or get_async_client("sessions")
    return bool(await _aclaim(*_claim_args(email, thread_id), client=client))


def owner_of(thread_id: str, *, client=None) -> str | None:
    """The email that owns ``thread_id``, or ``None`` if nobody claimed it."""
    owner = (client or get_client("sessions")).get(keys.thread_owner_key(thread_id))
    return owner.decode() if owner is not None else None


async def aowner_of(thread_id: str, *, client=None) -> str | None:
    client = client or get_async_client("sessions")
    owner = await client.get(keys.thread_owner_key(thread_id))
    return owner.decode() if owner is not None else None


def threads_for(email: str, *, client=None) -> list[str]:
    """The thread ids ``email`` owns, newest first."""
    ids = (client or get_client("sessions")).zrevrange(keys.user_threads_key(email), 0, -1)
    return [i.decode() for i in ids]


async def athreads_for(email: str, *, client=None) -> list[str]:
    client = client or get_async_client("sessions")
    ids = await client.zrevrange(keys.user_threads_key(email), 0, -1)
    return [i.decode() for i in ids]


def _forget_args(email: str, thread_id: str) -> tuple[list[str], list]:
    return [keys.thread_owner_key(thread_id), keys.user_threads_key(email)], [email, thread_id]


def forget_thread(email: str, thread_id: str, *, client=None) -> bool:
    """Release ``thread_id``; ``False`` (and nothing changes) unless ``email`` owns it."""
    return bool(_forget(*_forget_args(email, thread_id), client=client or get_client("sessions")))


async def aforget_thread(email: str, thread_id: str, *, client=None) -> bool:
    client = client or get_async_client("sessions")
    return bool(await _aforget(*_forget_args(email, thread_id), client=client))
