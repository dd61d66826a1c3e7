"""The pending-message queue (``pending_msg:<thread_id>``, db 0) and the per-thread run lock.

A user's message goes into the thread's queue (a Redis LIST, oldest first) *before*
anything runs, and leaves it only when the runner acknowledges it, after the run's
outcome is in the checkpoint. Only the holder of the thread's run lock
(``lock:thread_run:<thread_id>``, ``SET NX PX`` with a random token) reads and
acknowledges messages, so a plain list is enough: the head of the queue is the
message being run, the rest wait their turn.

Guarantees (the runner in :mod:`chat.runner` relies on each):

* **Durable before the run.** :func:`push_command` is part of the same MULTI/EXEC as
  the lock attempt; the message is in Redis (and in the AOF, if enabled) before any
  run starts.
* **In order, one run at a time.** Messages are run head first by the lock holder.
  Two runs of one thread never overlap while the holder renews its lock in time.
* **Never stranded by a finishing run.** The lock is released only by
  :func:`aack_and_next`, atomically and only when the queue is empty. A message pushed
  while a run holds the lock is therefore always seen by that run (a push that fails to
  take the lock can rely on the holder); there is no "released just before the push" gap.
* **At-least-once across crashes.** A worker that dies keeps its message at the head
  of the queue; its lock expires after ``RUN_LOCK_TTL_MS`` and the next
  :func:`atry_lock_pending` (``chat.runner.recover``) or push runs it again. Running a
  message twice must be harmless: the graph recognises a message id that is already
  answered in the checkpoint (see :mod:`chat.graph`), so the conversation holds it once.
* **Cancellation across processes.** :func:`acancel` flags the id of the running
  message (``cancel_run:<thread_id>``); the lock holder sees the flag on its next
  renewal or event flush, both round trips it makes anyway.

Redis Cluster: the scripts touch several keys of one thread, which must then share a
slot; ``pending_msg:<thread_id>`` as the seed names it carries no hash tag, so these
scripts need a single Redis node (or Sentinel), like the rest of db 0.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal

from redis.asyncio.client import Pipeline

from agenticpal.redis_clients import get_async_client, get_client
from sessions_redis import keys


@dataclass(frozen=True)
class PendingMessage:
    """One user message waiting for (or in) its run."""

    message_id: str
    text: str
    user_email: str
    timezone: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def encode(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> PendingMessage:
        data = json.loads(raw)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def new_token() -> str:
    """A lock token: proves which worker holds a thread's run lock."""
    return secrets.token_hex(16)


# --- the hot path: one MULTI/EXEC adds the message and tries the lock ---------------


def push_command(pipe: Pipeline, thread_id: str, message: PendingMessage) -> None:
    """Queue ``message`` (RPUSH) inside the caller's pipeline; its reply is the queue length."""
    pipe.rpush(keys.pending_message_key(thread_id), message.encode())


def try_lock_command(pipe: Pipeline, thread_id: str, token: str) -> None:
    """Try to take the thread's run lock inside the caller's pipeline; reply: True or None."""
    pipe.set(keys.run_lock_key(thread_id), token, nx=True, px=keys.RUN_LOCK_TTL_MS)


# --- the lock holder's protocol (Lua: read-and-decide must be atomic) ---------------

# KEYS: queue, lock, cancel flag.  ARGV: acked message (raw or ""), token, acked id, ttl.
# Returns {-1} lock lost, {0} queue empty and lock released, {1, next raw message}.
_ACK_AND_NEXT = """
if ARGV[1] ~= '' then redis.call('LREM', KEYS[1], 1, ARGV[1]) end
if ARGV[3] ~= '' then
  local flag = redis.call('GET', KEYS[3])
  if flag == ARGV[3] or flag == '*' then redis.call('DEL', KEYS[3]) end
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {-1} end
local nxt = redis.call('LINDEX', KEYS[1], 0)
if nxt then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return {1, nxt}
end
redis.call('DEL', KEYS[2])
return {0}
"""

# KEYS: lock, cancel flag.  ARGV: token, ttl.  Returns {1, flag or false} or {0}.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, redis.call('GET', KEYS[2])}
"""

# KEYS: queue, lock.  ARGV: token, ttl.
# Returns 0 nothing pending, 1 lock taken, or -(ms until the holder's lock expires).
_TRY_LOCK_PENDING = """
if redis.call('LLEN', KEYS[1]) == 0 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
local ttl = redis.call('PTTL', KEYS[2])
if ttl < 1 then ttl = 1 end
return -ttl
"""

# KEYS: queue, lock, cancel flag.  ARGV: flag ttl (s).  Flags the message being run.
_CANCEL = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return 0 end
redis.call('SET', KEYS[3], cjson.decode(head)['message_id'], 'EX', ARGV[1])
return 1
"""

# KEYS: queue, lock, cancel flag.  ARGV: flag ttl (s).  Drops the queue, stops any run.
_DISCARD = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SET', KEYS[3], '*', 'EX', ARGV[1])
  return 1
end
return 0
"""

AckResult = tuple[Literal["next", "released", "lost"], bytes | None]


async def aack_and_next(
    thread_id: str, token: str, done: PendingMessage | None = None, raw: bytes | None = None
) -> AckResult:
    """Acknowledge ``done`` (its ``raw`` queue entry) and get the next message, in one trip.

    ``("next", raw)``: the lock is renewed and ``raw`` is the next message to run.
    ``("released", None)``: the queue is empty and the lock was released.
    ``("lost", None)``: the lock is not ours any more (expired, or taken by recovery);
    stop without touching the queue. Call with ``done=None`` to peek the head first.
    """
    client = get_async_client("sessions")
    script = client.register_script(_ACK_AND_NEXT)
    reply = await script(
        keys=[
            keys.pending_message_key(thread_id),
            keys.run_lock_key(thread_id),
            keys.cancel_run_key(thread_id),
        ],
        args=[raw or b"", token, done.message_id if done else "", keys.RUN_LOCK_TTL_MS],
    )
    if reply[0] == 1:
        return "next", reply[1]
    return ("released", None) if reply[0] == 0 else ("lost", None)


async def arenew(thread_id: str, token: str) -> tuple[bool, str | None]:
    """Extend our lock; returns (still ours, cancel flag or None) in one trip."""
    client = get_async_client("sessions")
    script = client.register_script(_RENEW)
    reply = await script(
        keys=[keys.run_lock_key(thread_id), keys.cancel_run_key(thread_id)],
        args=[token, keys.RUN_LOCK_TTL_MS],
    )
    if reply[0] != 1:
        return False, None
    flag = reply[1] if len(reply) > 1 else None
    return True, flag.decode() if flag else None


async def atry_lock_pending(thread_id: str, token: str) -> int:
    """Take the lock if messages are waiting: 1 taken, 0 nothing waiting, -ms held elsewhere."""
    client = get_async_client("sessions")
    script = client.register_script(_TRY_LOCK_PENDING)
    return int(
        await script(
            keys=[keys.pending_message_key(thread_id), keys.run_lock_key(thread_id)],
            args=[token, keys.RUN_LOCK_TTL_MS],
        )
    )


async def _flag_run(thread_id: str, source: bytes | str) -> bool:
    """Run a script over the thread's queue, run lock and cancel flag (see the callers)."""
    script = get_async_client("sessions").register_script(source)
    return bool(
        await script(
            keys=[
                keys.pending_message_key(thread_id),
                keys.run_lock_key(thread_id),
                keys.cancel_run_key(thread_id),
            ],
            args=[keys.CANCEL_FLAG_TTL_SECONDS],
        )
    )


async def acancel(thread_id: str) -> bool:
    """Flag the running message of ``thread_id`` for cancellation; False if none runs."""
    return await _flag_run(thread_id, _CANCEL)


async def adiscard(thread_id: str) -> bool:
    """Drop every pending message of ``thread_id`` and stop its run; True if one was running."""
    return await _flag_run(thread_id, _DISCARD)


async def alock_owner(thread_id: str) -> str | None:
    """The token holding the thread's run lock, or None."""
    value = await get_async_client("sessions").get(keys.run_lock_key(thread_id))
    return value.decode() if value else None


async def arelease(thread_id: str, token: str) -> bool:
    """Release our lock unconditionally (used by maintenance that took it, not by runs)."""
    client = get_async_client("sessions")
    script = client.register_script(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
        "return 0"
    )
    return bool(await script(keys=[keys.run_lock_key(thread_id)], args=[token]))


# --- reading the queue (admin pages, the CLI, tests): sync and async twins ----------


def pending(thread_id: str) -> list[PendingMessage]:
    """The thread's queued messages, oldest first (the head may be running)."""
    raws = get_client("sessions").lrange(keys.pending_message_key(thread_id), 0, -1)
    return [PendingMessage.decode(raw) for raw in raws]


async def apending(thread_id: str) -> list[PendingMessage]:
    raws = await get_async_client("sessions").lrange(keys.pending_message_key(thread_id), 0, -1)
    return [PendingMessage.decode(raw) for raw in raws]
