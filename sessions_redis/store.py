"""The Redis operations on ``session:<id>``, each one round trip in the common case.

:func:`touch` reads a record and renews its TTL (rewriting ``last_accessed`` at most once
per ``SESSION_LAST_ACCESSED_RESOLUTION``); :func:`write` and :func:`update` save by
compare-and-set, so a concurrent change is merged, never lost; :func:`delete` and
:func:`delete_all_for` keep the ``user_sessions:<email>`` index in step. Each is one Lua
script, no lock held, assuming db 0 is one Redis node. Every function takes the client
(sync or asyncio); the async twins (``atouch``...) share the same scripts. A key of
another Redis type reads as no session (logged). Log lines name a session by a short
prefix only. Why Lua and what each script does: the README's "Sessions" section.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable

from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.exceptions import ResponseError

from agenticpal import redis_keys as keys
from agenticpal.log_redaction import short_session_id
from agenticpal.redis_clients import AsyncScript, Script, amget, get_async_client, get_client, mget
from sessions_redis.record import InvalidRecord, SessionRecord, timestamp, timestamp_before

logger = logging.getLogger("sessions_redis")

# Compare-and-set is lock-free: every round one writer wins, so with N writers racing
# on one session nobody needs more than N tries. Two tabs need 1-2; this bound only
# stops a runaway loop.
MAX_ATTEMPTS = 1000

TOUCH_LUA = b"""
local value = redis.call('GET', KEYS[1])
if not value then return false end
local ttl = tonumber(ARGV[1])
if string.find(value, '"_session_expiry"', 1, true) then
  local ok, record = pcall(cjson.decode, value)
  if ok and type(record) == 'table' and type(record.django) == 'table' then
    local expiry = record.django._session_expiry
    if type(expiry) == 'number' and expiry < 0 then
      redis.call('DEL', KEYS[1])
      return false
    elseif type(expiry) == 'number' and expiry > 0 then
      ttl = math.floor(expiry * 1000)
    elseif type(expiry) == 'string' then
      ttl = 0
    end
  end
end
local first, last, seen = string.find(value, '"last_accessed"%s*:%s*"([^"]*)"')
if first and seen < ARGV[2] then
  value = string.sub(value, 1, first - 1) .. '"last_accessed":"' .. ARGV[3] .. '"'
    .. string.sub(value, last + 1)
  if ttl > 0 then
    redis.call('SET', KEYS[1], value, 'PX', ttl)
  else
    redis.call('SET', KEYS[1], value, 'KEEPTTL')
  end
elseif ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return value
"""

# KEYS[1] session key, KEYS[2] (optional) user index; ARGV: expected sha1 ('' = create),
# new value, ttl ms ('0' = keep the current TTL), session id.
# Returns {1} written, {0, current} changed meanwhile ({0} on create: key exists),
# {-1} gone.
WRITE_LUA = b"""
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if current then return {0} end
elseif not current then
  return {-1}
elseif redis.sha1hex(current) ~= ARGV[1] then
  return {0, current}
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
if KEYS[2] then redis.call('SADD', KEYS[2], ARGV[4]) end
return {1}
"""

# KEYS[1] session key; ARGV: user index prefix, session id. Returns 1 if deleted.
DELETE_LUA = b"""
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
redis.call('DEL', KEYS[1])
local ok, record = pcall(cjson.decode, value)
if ok and type(record) == 'table' and type(record.user_email) == 'string' then
  redis.call('SREM', ARGV[1] .. record.user_email, ARGV[2])
end
return 1
"""

# KEYS[1] user index; ARGV[1] session prefix. Deletes every session of one user.
DELETE_ALL_LUA = b"""
local ids = redis.call('SMEMBERS', KEYS[1])
local deleted = 0
for _, id in ipairs(ids) do
  deleted = deleted + redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return deleted
"""

# Registered once (bytes: no client needed to hash them); each call names its client.
_touch, _write, _delete, _delete_all = (
    Script(None, s) for s in (TOUCH_LUA, WRITE_LUA, DELETE_LUA, DELETE_ALL_LUA)
)
_atouch, _awrite, _adelete, _adelete_all = (
    AsyncScript(None, s) for s in (TOUCH_LUA, WRITE_LUA, DELETE_LUA, DELETE_ALL_LUA)
)

CREATE = object()  # ``expected`` for a write that must not overwrite anything


# Read on every request: looked up once, forgotten when a test overrides them.
@functools.cache
def last_accessed_resolution() -> int:
    from django.conf import settings

    return getattr(
        settings,
        "SESSION_LAST_ACCESSED_RESOLUTION",
        keys.SESSION_LAST_ACCESSED_RESOLUTION_SECONDS,
    )


@functools.cache
def default_ttl() -> int:
    from django.conf import settings

    return getattr(settings, "SESSION_TTL_SECONDS", keys.SESSION_TTL_SECONDS)


@receiver(setting_changed)
def _forget_settings(setting: str, **kwargs) -> None:
    if setting in ("SESSION_TTL_SECONDS", "SESSION_LAST_ACCESSED_RESOLUTION"):
        last_accessed_resolution.cache_clear()
        default_ttl.cache_clear()


def sha1(raw: bytes) -> str:
    return hashlib.sha1(raw).hexdigest()


_stamps: tuple[int, int, str, str] = (-1, -1, "", "")  # (second, resolution, cutoff, now)


def _touch_stamps() -> tuple[str, str]:
    """(cutoff, now) for the touch script; formatted once per second, not per request."""
    global _stamps
    second, resolution = int(time.time()), last_accessed_resolution()
    if _stamps[:2] != (second, resolution):
        _stamps = (second, resolution, timestamp_before(resolution), timestamp())
    return _stamps[2], _stamps[3]


def _touch_args(session_id: str) -> tuple[list[str], list]:
    return [keys.session_key(session_id)], [default_ttl() * 1000, *_touch_stamps()]


def _write_args(
    session_id: str, value: bytes, expected: bytes | object, ttl: int, email: str | None
) -> tuple[list[str], list]:
    key_list = [keys.session_key(session_id)]
    if email and not keys.cluster_mode():  # a cluster's index is another slot: see write()
        key_list.append(keys.user_sessions_key(email))
    token = "" if expected is CREATE else sha1(expected)  # type: ignore[arg-type]
    return key_list, [token, value, max(int(ttl), 0) * 1000, session_id]


def _wrong_type(session_id: str, exc: ResponseError) -> bool:
    """Whether ``exc`` is WRONGTYPE: the key is not a session record (logged)."""
    if "WRONGTYPE" not in str(exc):
        return False
    logger.warning(
        "Key %s%s is not a string, so not a session record; treating it as no session. "
        "Inspect it with `redis-cli --scan --pattern '%s%s*'` and TYPE, then DEL it.",
        keys.SESSION_PREFIX,
        short_session_id(session_id),
        keys.SESSION_PREFIX,
        session_id[:10],
    )
    return True


def touch(session_id: str, *, client=None) -> bytes | None:
    """The stored record (``None`` if absent or expired), its TTL renewed: one round trip.

    A record whose ``_session_expiry`` is a negative number of seconds is deleted.
    """
    client = client or get_client("sessions")
    try:
        return _touch(*_touch_args(session_id), client=client)
    except ResponseError as exc:
        if not _wrong_type(session_id, exc):
            raise
        return None


async def atouch(session_id: str, *, client=None) -> bytes | None:
    client = client or get_async_client("sessions")
    try:
        return await _atouch(*_touch_args(session_id), client=client)
    except ResponseError as exc:
        if not _wrong_type(session_id, exc):
            raise
        return None


def write(
    session_id: str,
    value: bytes,
    *,
    client=None,
    expected: bytes | object,
    ttl: int,
    email: str | None = None,
) -> tuple[int, bytes | None]:
    """Compare-and-set; ``ttl`` in seconds (0 keeps the TTL). Returns (status, current).

    On a Redis Cluster the user's index is in another slot than the record: it is
    updated right after a successful write (the index is a hint that sessions_for and
    prune_indexes clean up anyway).
    """
    client = client or get_client("sessions")
    reply = _write(*_write_args(session_id, value, expected, ttl, email), client=client)
    if reply[0] == 1 and email and keys.cluster_mode():
        client.sadd(keys.user_sessions_key(email), session_id)
    return reply[0], (reply[1] if len(reply) > 1 else None)


async def awrite(
    session_id: str,
    value: bytes,
    *,
    client=None,
    expected: bytes | object,
    ttl: int,
    email: str | None = None,
) -> tuple[int, bytes | None]:
    client = client or get_async_client("sessions")
    reply = await _awrite(*_write_args(session_id, value, expected, ttl, email), client=client)
    if reply[0] == 1 and email and keys.cluster_mode():
        await client.sadd(keys.user_sessions_key(email), session_id)
    return reply[0], (reply[1] if len(reply) > 1 else None)


def _parse_for_update(session_id: str, raw: bytes) -> SessionRecord | None:
    try:
        return SessionRecord.from_json(raw)
    except InvalidRecord as exc:
        logger.warning(
            "Session record %s%s is unreadable, not updating it: %s",
            keys.SESSION_PREFIX,
            short_session_id(session_id),
            exc,
        )
        return None


def update(
    session_id: str,
    change: Callable[[SessionRecord], None],
    *,
    client=None,
    loaded: bytes | None = None,
    record: SessionRecord | None = None,
    ttl: int = 0,
) -> SessionRecord | None:
    """Apply ``change`` to the stored record without losing concurrent updates.

    ``loaded`` is the value the caller already read (saves the first GET) and
    ``record`` that value already parsed (saves decoding it again; ``change`` may
    modify it in place); ``ttl`` in seconds, 0 keeps the current TTL. Returns the
    record as written, or ``None`` when the session does not exist (or is unreadable).
    """
    client = client or get_client("sessions")
    try:
        raw = loaded if loaded is not None else client.get(keys.session_key(session_id))
    except ResponseError as exc:
        if not _wrong_type(session_id, exc):
            raise
        return None
    if loaded is None:
        record = None
    for _ in range(MAX_ATTEMPTS):
        if record is None and (
            raw is None or (record := _parse_for_update(session_id, raw)) is None
        ):
            return None
        change(record)
        status, current = write(
            session_id,
            record.to_json(),
            expected=raw,
            ttl=ttl,
            email=record.user_email,
            client=client,
        )
        if status == 1:
            return record
        if status == -1:
            return None
        raw, record = current, None
    raise RuntimeError(
        f"Session {short_session_id(session_id)} kept changing; gave up after {MAX_ATTEMPTS} tries."
    )


async def aupdate(
    session_id: str,
    change: Callable[[SessionRecord], None],
    *,
    client=None,
    loaded: bytes | None = None,
    record: SessionRecord | None = None,
    ttl: int = 0,
) -> SessionRecord | None:
    client = client or get_async_client("sessions")
    try:
        raw = loaded if loaded is not None else await client.get(keys.session_key(session_id))
    except ResponseError as exc:
        if not _wrong_type(session_id, exc):
            raise
        return None
    if loaded is None:
        record = None
    for _ in range(MAX_ATTEMPTS):
        if record is None and (
            raw is None or (record := _parse_for_update(session_id, raw)) is None
        ):
            return None
        change(record)
        status, current = await awrite(
            session_id,
            record.to_json(),
            expected=raw,
            ttl=ttl,
            email=record.user_email,
            client=client,
        )
        if status == 1:
            return record
        if status == -1:
            return None
        raw, record = current, None
    raise RuntimeError(
        f"Session {short_session_id(session_id)} kept changing; gave up after {MAX_ATTEMPTS} tries."
    )


def _owner_of_deleted(raw: bytes | None) -> str | None:
    """The ``user_email`` of a record a cluster's GETDEL returned (its index is to update)."""
    if raw is None:
        return None
    try:
        return SessionRecord.from_json(raw).user_email or None
    except InvalidRecord:
        return None


def delete(session_id: str, *, client=None) -> bool:
    """Delete one session and drop it from its user's index (one round trip; on a Redis
    Cluster two: GETDEL, then SREM in the index's slot)."""
    client = client or get_client("sessions")
    key = keys.session_key(session_id)
    if keys.cluster_mode():
        raw = client.getdel(key)
        if email := _owner_of_deleted(raw):
            client.srem(keys.user_sessions_key(email), session_id)
        return raw is not None
    return bool(_delete([key], [keys.USER_SESSIONS_PREFIX, session_id], client=client))


async def adelete(session_id: str, *, client=None) -> bool:
    client = client or get_async_client("sessions")
    key = keys.session_key(session_id)
    if keys.cluster_mode():
        raw = await client.getdel(key)
        if email := _owner_of_deleted(raw):
            await client.srem(keys.user_sessions_key(email), session_id)
        return raw is not None
    return bool(await _adelete([key], [keys.USER_SESSIONS_PREFIX, session_id], client=client))


def delete_all_for(email: str, *, client=None) -> int:
    """Delete every session of ``email``: O(that user's sessions), one round trip (on a
    Redis Cluster: the index, then its sessions by slot)."""
    client = client or get_client("sessions")
    index = keys.user_sessions_key(email)
    if keys.cluster_mode():
        ids = client.smembers(index)
        deleted = client.delete(*(keys.session_key(i.decode()) for i in ids)) if ids else 0
        client.delete(index)
        return deleted
    return _delete_all([index], [keys.SESSION_PREFIX], client=client)


async def adelete_all_for(email: str, *, client=None) -> int:
    client = client or get_async_client("sessions")
    index = keys.user_sessions_key(email)
    if keys.cluster_mode():
        ids = await client.smembers(index)
        deleted = await client.delete(*(keys.session_key(i.decode()) for i in ids)) if ids else 0
        await client.delete(index)
        return deleted
    return await _adelete_all([index], [keys.SESSION_PREFIX], client=client)


def _records_and_stale(
    email: str, ids: list[bytes], values: list[bytes | None]
) -> tuple[list[SessionRecord], list[bytes]]:
    records, stale = [], []
    for session_id, raw in zip(ids, values, strict=True):
        if raw is None:
            stale.append(session_id)
            continue
        try:
            records.append(SessionRecord.from_json(raw))
        except InvalidRecord as exc:
            logger.warning("Session record of %s is unreadable, skipped: %s", email, exc)
    records.sort(key=lambda r: r.last_accessed, reverse=True)
    return records, stale


def sessions_for(email: str, *, client=None) -> list[SessionRecord]:
    """Every live session of ``email``, most recently used first; prunes stale index ids."""
    client = client or get_client("sessions")
    index = keys.user_sessions_key(email)
    ids = sorted(client.smembers(index))
    if not ids:
        return []
    values = mget(client, [keys.session_key(i.decode()) for i in ids])
    records, stale = _records_and_stale(email, ids, values)
    if stale:
        client.srem(index, *stale)
    return records


async def asessions_for(email: str, *, client=None) -> list[SessionRecord]:
    client = client or get_async_client("sessions")
    index = keys.user_sessions_key(email)
    ids = sorted(await client.smembers(index))
    if not ids:
        return []
    values = await amget(client, [keys.session_key(i.decode()) for i in ids])
    records, stale = _records_and_stale(email, ids, values)
    if stale:
        await client.srem(index, *stale)
    return records


def prune_indexes(batch: int = 500, *, client=None) -> int:
    """Maintenance: drop ids of expired sessions from every ``user_sessions:`` set (SCAN)."""
    client = client or get_client("sessions")
    removed = 0
    for index in client.scan_iter(match=f"{keys.USER_SESSIONS_PREFIX}*", count=batch):
        ids = list(client.smembers(index))
        if not ids:
            continue
        with client.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.exists(keys.session_key(session_id.decode()))
            alive = pipe.execute()
        stale = [i for i, ok in zip(ids, alive, strict=True) if not ok]
        if stale:
            removed += client.srem(index, *stale)
    return removed


async def aprune_indexes(batch: int = 500, *, client=None) -> int:
    client = client or get_async_client("sessions")
    removed = 0
    async for index in client.scan_iter(match=f"{keys.USER_SESSIONS_PREFIX}*", count=batch):
        ids = list(await client.smembers(index))
        if not ids:
            continue
        async with client.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.exists(keys.session_key(session_id.decode()))
            alive = await pipe.execute()
        stale = [i for i, ok in zip(ids, alive, strict=True) if not ok]
        if stale:
            removed += await client.srem(index, *stale)
    return removed


# --- the session's ``thread_ids`` (the seed's field; chat.threads decides what goes in) ---


def _adding(thread_id: str) -> Callable[[SessionRecord], None]:
    def change(record: SessionRecord) -> None:
        if thread_id not in record.thread_ids:
            record.thread_ids.append(thread_id)

    return change


def _removing(thread_id: str) -> Callable[[SessionRecord], None]:
    def change(record: SessionRecord) -> None:
        record.thread_ids = [t for t in record.thread_ids if t != thread_id]

    return change


def add_thread_id(session_id: str, thread_id: str, *, client=None) -> bool:
    """Append ``thread_id`` to the session's ``thread_ids``; False if no such session."""
    return update(session_id, _adding(thread_id), client=client) is not None


async def aadd_thread_id(
    session_id: str, thread_id: str, *, client=None, loaded: bytes | None = None
) -> bool:
    """``loaded``: the session's value as the caller read it (no read then; a value
    changed meanwhile fails the write's compare and is read again)."""
    return await aupdate(session_id, _adding(thread_id), client=client, loaded=loaded) is not None


def remove_thread_id(session_id: str, thread_id: str, *, client=None) -> bool:
    """Drop ``thread_id`` from the session's ``thread_ids``; False if no such session."""
    return update(session_id, _removing(thread_id), client=client) is not None


async def aremove_thread_id(session_id: str, thread_id: str, *, client=None) -> bool:
    return await aupdate(session_id, _removing(thread_id), client=client) is not None
