"""The pending-message queue (``pending_msg:<thread_id>``, db 0) and the thread's run lock.

This module owns the protocol; :mod:`chat.runner` only calls it. A message is queued
durably in the same script call that tries the run lock (:func:`asubmit`), so it is in
Redis before anything runs; only the lock holder reads and acknowledges messages, head
first, and releases the lock atomically when the queue is empty (:func:`aack_and_next`;
:func:`afinish` also publishes the message's ``done`` in that script call), so a message
pushed during a run is always seen by that run. A worker that dies keeps
its message at the head; its lock expires and the next :func:`atry_lock_pending` runs it
again. Cancel and drop set a flag that the holder reads on its next renewal, in any
process. The functions take ``client=None`` (the project's db 0 client), all but
:func:`afinish`, which always uses that one. The README's "Chat engine" section
describes the guarantees in full.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import AsyncScript, Script, get_async_client, get_client
from chat import events


@dataclass(frozen=True)
class PendingMessage:
    """One user message (or decision) waiting for (or in) its run."""

    message_id: str
    text: str
    user_email: str
    timezone: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    # Not a message but the user's decisions on waiting approvals: interrupt id -> decision.
    decisions: dict | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> PendingMessage:
        data = json.loads(raw)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def new_token() -> str:
    """A lock token: proves which worker holds a thread's run lock."""
    return secrets.token_hex(16)


# --- the lock holder's protocol (Lua: read-and-decide must be atomic) ---------------

# KEYS: queue, lock, cancel flag.  ARGV: acked message (raw or ""), token, acked id, ttl.
# Returns {-1} lock lost, {0} queue empty and lock released, {1, next raw message}.
_NEXT_OR_RELEASE = """
local function next_or_release()
  local nxt = redis.call('LINDEX', KEYS[1], 0)
  if nxt then
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
    return {1, nxt}
  end
  redis.call('DEL', KEYS[2])
  return {0}
end
"""  # KEYS[1] queue, KEYS[2] lock, ARGV[4] lock ttl: the lock holder's next step
_ACK_AND_NEXT = (
    _NEXT_OR_RELEASE
    + """
if ARGV[1] ~= '' then redis.call('LREM', KEYS[1], 1, ARGV[1]) end
if ARGV[3] ~= '' then
  local flag = redis.call('GET', KEYS[3])
  if flag == ARGV[3] or flag == '*' then redis.call('DEL', KEYS[3]) end
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {-1} end
return next_or_release()
"""
)

# KEYS: queue, lock, cancel flag, the thread's event stream.  ARGV: acked message (raw),
# token, acked id, ttl, then chat.events.direct_args() (maxlen, stream ttl, event JSON,
# channel, packed group message). A message's end in one trip: its last event published
# (chat.events' publish step) and it acknowledged (as _ACK_AND_NEXT), when the lock is
# still ours and the thread is not being deleted. Returns {-1} lock lost, {-2} thread
# being deleted (nothing published or acknowledged either way), {1, next raw message}
# (lock renewed) or {0} (queue empty, lock released). Run again by redis-py (a timeout
# lost the reply), it finds the message acknowledged already and publishes nothing more.
_FINISH = (
    events.PUBLISH_EVENT_LUA
    + _NEXT_OR_RELEASE
    + """
local flag = redis.call('GET', KEYS[3])
if not redis.call('LPOS', KEYS[1], ARGV[1]) then
  if flag == '*' then return {-2} end
  if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {0} end
  return next_or_release()
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {-1} end
if flag == '*' then return {-2} end
publish_event(KEYS[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
redis.call('LREM', KEYS[1], 1, ARGV[1])
if flag == ARGV[3] then redis.call('DEL', KEYS[3]) end
return next_or_release()
"""
)

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

# KEYS: queue, lock, rate counter, thread owner. ARGV: message, token, lock ttl, max queued,
# per minute, counter ttl (s), sender. Returns -3 someone else's thread, -1 queue full,
# -2 rate limited, {1, the queue's head} queued + lock taken (the run starts with the
# head: no peek first), 0 queued. On a Redis Cluster the counter (the user's slot, not
# the thread's) is counted before, by _COUNT, and KEYS[3] is the queue again with per
# minute -1: no second count.
_SUBMIT = """
local owner = redis.call('GET', KEYS[4])
if owner and owner ~= ARGV[7] then return -3 end
-- This very call ran already (a timeout lost its reply and redis-py sent it again):
-- the identical message is queued once, and a lock taken with this token is the caller's.
if redis.call('LPOS', KEYS[1], ARGV[1]) then
  if redis.call('GET', KEYS[2]) == ARGV[2]
      or redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
    return {1, redis.call('LINDEX', KEYS[1], 0)}
  end
  return 0
end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[4]) then return -1 end
if tonumber(ARGV[5]) >= 0 then
  local sent = redis.call('INCR', KEYS[3])
  if sent == 1 then redis.call('EXPIRE', KEYS[3], ARGV[6]) end
  if sent > tonumber(ARGV[5]) then return -2 end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {1, redis.call('LINDEX', KEYS[1], 0)}
end
return 0
"""

# KEYS: rate counter. ARGV: per minute, counter ttl (s). Returns 1 within the limit, -2 past it.
_COUNT = """
local sent = redis.call('INCR', KEYS[1])
if sent == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if sent > tonumber(ARGV[1]) then return -2 end
return 1
"""

_submit = AsyncScript(None, _SUBMIT.encode())
_count = AsyncScript(None, _COUNT.encode())
_ack_and_next = AsyncScript(None, _ACK_AND_NEXT.encode())
_finish = AsyncScript(None, _FINISH.encode())
_renew = AsyncScript(None, _RENEW.encode())
_try_lock_pending = AsyncScript(None, _TRY_LOCK_PENDING.encode())
_cancel = AsyncScript(None, _CANCEL.encode())
_drop, _adrop = Script(None, _DISCARD.encode()), AsyncScript(None, _DISCARD.encode())


RATE_WINDOW_TTL = 120  # seconds a one-minute counter is kept


def _run_keys(thread_id: str) -> list[str]:
    """The queue, the run lock and the cancel flag of a thread (the scripts' KEYS)."""
    return [
        keys.pending_message_key(thread_id),
        keys.run_lock_key(thread_id),
        keys.cancel_run_key(thread_id),
    ]


class Refused(Exception):
    """The message was not queued: ``reason`` says why (``not_owner``, ``queue_full`` or
    ``rate_limited``)."""

    def __init__(self, reason: str, limit: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.limit = limit


async def asubmit(
    thread_id: str,
    message: PendingMessage,
    token: str,
    *,
    max_queued: int = keys.MAX_QUEUED_MESSAGES,
    per_minute: int = keys.MESSAGES_PER_MINUTE,
    client=None,
) -> bytes | None:
    """Queue ``message`` and try the run lock in one script call. When ``token`` got the
    lock: the queue's head (raw, to run first: usually ``message``), else ``None``.

    Refused (:class:`Refused`, nothing written) when the thread belongs to someone else
    (deleted and taken since the sender opened it), already has ``max_queued`` messages
    waiting, or the user sent ``per_minute`` messages in the current minute. On a Redis
    Cluster the minute's counter is in the user's slot, not the thread's: it is counted
    one round trip before (a message the queue then refuses still counts).
    """
    client = client or get_async_client("sessions")
    rate_key = keys.message_rate_key(message.user_email, int(time.time() // 60))
    queue = keys.pending_message_key(thread_id)
    if keys.cluster_mode():  # the counter lives in another slot: counted first, apart
        if await _count([rate_key], [per_minute, RATE_WINDOW_TTL], client=client) == -2:
            raise Refused("rate_limited", per_minute)
        rate_key, per_minute_arg = queue, -1
    else:
        per_minute_arg = per_minute
    reply = await _submit(
        [queue, keys.run_lock_key(thread_id), rate_key, keys.thread_owner_key(thread_id)],
        [
            message.encode(),
            token,
            keys.RUN_LOCK_TTL_MS,
            max_queued,
            per_minute_arg,
            RATE_WINDOW_TTL,
            message.user_email,
        ],
        client=client,
    )
    if reply == -1:
        raise Refused("queue_full", max_queued)
    if reply == -2:
        raise Refused("rate_limited", per_minute)
    if reply == -3:
        raise Refused("not_owner", 0)
    return reply[1] if isinstance(reply, list) else None


AckResult = tuple[Literal["next", "released", "lost"], bytes | None]


async def aack_and_next(
    thread_id: str,
    token: str,
    done: PendingMessage | None = None,
    raw: bytes | None = None,
    *,
    client=None,
) -> AckResult:
    """Acknowledge ``done`` (its ``raw`` queue entry) and get the next message, in one trip.

    ``("next", raw)``: the lock is renewed and ``raw`` is the next message to run.
    ``("released", None)``: the queue is empty and the lock was released.
    ``("lost", None)``: the lock is not ours any more (expired, or taken by recovery);
    stop without touching the queue. Call with ``done=None`` to peek the head first.
    """
    reply = await _ack_and_next(
        _run_keys(thread_id),
        [raw or b"", token, done.message_id if done else "", keys.RUN_LOCK_TTL_MS],
        client=client or get_async_client("sessions"),
    )
    if reply[0] == 1:
        return "next", reply[1]
    return ("released", None) if reply[0] == 0 else ("lost", None)


async def afinish(
    thread_id: str, token: str, message: PendingMessage, raw: bytes, done_event: dict
) -> AckResult | tuple[Literal["discarded"], None]:
    """Publish ``done_event`` (the end of ``message``) and acknowledge ``message`` (its
    ``raw`` queue entry), in one script call: :func:`chat.events.publish` and then
    :func:`aack_and_next`, when the lock is still ``token``'s and the thread is not being
    deleted. ``("lost", None)``: the lock is someone else's; ``("discarded", None)``: the
    thread is being deleted; nothing was published or acknowledged then. Where the
    channel layer cannot take the script's bytes (:func:`chat.events.direct_args`), the
    same steps in three round trips. Uses the project's db 0 client (the one the
    channel layer's bytes are checked against)."""
    args = events.direct_args(thread_id, done_event)
    if args is None:
        ours, flag = await arenew(thread_id, token)
        if not ours or flag == "*":
            return ("lost" if not ours else "discarded"), None
        await events.publish(thread_id, done_event)
        return await aack_and_next(thread_id, token, message, raw)
    reply = await _finish(
        [*_run_keys(thread_id), keys.thread_events_key(thread_id)],
        [raw, token, message.message_id, keys.RUN_LOCK_TTL_MS, *args],
        client=get_async_client("sessions"),
    )
    if reply[0] == 1:
        return "next", reply[1]
    return {0: ("released", None), -1: ("lost", None), -2: ("discarded", None)}[reply[0]]


async def arenew(thread_id: str, token: str, *, client=None) -> tuple[bool, str | None]:
    """Extend our lock; returns (still ours, cancel flag or None) in one trip."""
    reply = await _renew(
        [keys.run_lock_key(thread_id), keys.cancel_run_key(thread_id)],
        [token, keys.RUN_LOCK_TTL_MS],
        client=client or get_async_client("sessions"),
    )
    if reply[0] != 1:
        return False, None
    flag = reply[1] if len(reply) > 1 else None
    return True, flag.decode() if flag else None


async def atry_lock_pending(thread_id: str, token: str, *, client=None) -> int:
    """Take the lock if messages are waiting: 1 taken, 0 nothing waiting, -ms held elsewhere."""
    reply = await _try_lock_pending(
        _run_keys(thread_id)[:2],
        [token, keys.RUN_LOCK_TTL_MS],
        client=client or get_async_client("sessions"),
    )
    return int(reply)


async def acancel(thread_id: str, *, client=None) -> bool:
    """Flag the running message of ``thread_id`` for cancellation; False if none runs."""
    client = client or get_async_client("sessions")
    args = [keys.CANCEL_FLAG_TTL_SECONDS]
    return bool(await _cancel(_run_keys(thread_id), args, client=client))


def drop(thread_id: str, *, client=None) -> bool:
    """Drop every queued message of ``thread_id`` and stop its run (in whichever process
    runs it, on its next renewal); True if one was running."""
    client = client or get_client("sessions")
    return bool(_drop(_run_keys(thread_id), [keys.CANCEL_FLAG_TTL_SECONDS], client=client))


async def adrop(thread_id: str, *, client=None) -> bool:
    client = client or get_async_client("sessions")
    return bool(await _adrop(_run_keys(thread_id), [keys.CANCEL_FLAG_TTL_SECONDS], client=client))


# --- questions the pages and the admin ask ---------------------------------------------


def is_busy(thread_id: str, *, client=None) -> bool:
    """A reply is being generated (the run lock is held)."""
    return bool((client or get_client("sessions")).exists(keys.run_lock_key(thread_id)))


async def ais_busy(thread_id: str, *, client=None) -> bool:
    client = client or get_async_client("sessions")
    return bool(await client.exists(keys.run_lock_key(thread_id)))


def has_pending(thread_id: str, *, client=None) -> bool:
    """A message is waiting for its reply (or being answered)."""
    client = client or get_client("sessions")
    return bool(client.exists(keys.pending_message_key(thread_id)))


async def ahas_pending(thread_id: str, *, client=None) -> bool:
    client = client or get_async_client("sessions")
    return bool(await client.exists(keys.pending_message_key(thread_id)))


async def aqueued_decisions(thread_id: str, *, client=None) -> dict[str, str]:
    """``{interrupt id: decision type}`` of the decisions waiting in the thread's queue
    (the page shows those cards as decided, not as still asking)."""
    raw = await (client or get_async_client()).lrange(keys.pending_message_key(thread_id), 0, -1)
    found: dict[str, str] = {}
    for item in raw:
        decisions = PendingMessage.decode(item).decisions or {}
        found.update({iid: str(d.get("type", "")) for iid, d in decisions.items()})
    return found
