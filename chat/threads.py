"""A conversation thread's life: its id, its owner, its messages' rules, its title, its end.

The one owner of what a thread is; the API, the pages, the websocket and the admin call
here. Ids are client-chosen (:func:`validate_thread_id`) or new. The first user to use an
id owns it (:func:`aclaim`, one Lua call); the owner is also in every checkpoint's
metadata, so a thread whose db 0 entry is lost is restored for its owner and refused to
anyone else. :func:`adelete` / :func:`delete` mean the same everywhere: stop the run,
drop the queue, checkpoints and events, tell every open tab, then forget the owner and
the id in the owner's sessions. Every function takes ``client=None`` (db 0).
"""

from __future__ import annotations

import enum
import logging
import re
import time
import uuid
from typing import Any, Literal

from django.conf import settings
from langgraph.checkpoint.base import CheckpointTuple

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import AsyncScript, Script, get_async_client, get_client
from chat import events, pending
from chat.checkpoint import sync_checkpointer
from chat.graph import get_checkpointer
from sessions_redis import store
from workspace.dates import resolve_timezone

logger = logging.getLogger("chat.threads")

THREAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_MESSAGE_BYTES = 16 * 1024  # the contract's limit on one message, UTF-8 encoded
MAX_TIMEZONE_LENGTH = 64
TITLE_LENGTH = 60

IfBusy = Literal["stop", "refuse"]


class ThreadBusy(RuntimeError):
    """A reply is being generated on the thread right now (delete with ``if_busy="refuse"``)."""


# --- ids, messages, titles ---------------------------------------------------------------


def validate_thread_id(thread_id: Any) -> bool:
    """Thread ids are client-chosen: 1-64 letters, digits, ``_`` or ``-``."""
    return isinstance(thread_id, str) and THREAD_ID.fullmatch(thread_id) is not None


def new_thread_id() -> str:
    return uuid.uuid4().hex


def check_message(text: Any) -> str | None:
    """The reason ``text`` cannot be sent, or None when it can."""
    if not isinstance(text, str):
        return "The message must be a string."
    if not text.strip():
        return "The message is empty."
    size = len(text.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        return f"The message is {size} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (16 KB)."
    return None


def clean_timezone(value: Any) -> str:
    """The IANA timezone a client sent with a message, or "" (the server's is used)."""
    if isinstance(value, str) and len(value) <= MAX_TIMEZONE_LENGTH and resolve_timezone(value):
        return value.strip()
    return ""


def shorten_title(text: str) -> str:
    """A thread's title from its first message: one line, at most ``TITLE_LENGTH``."""
    text = " ".join(text.split())
    return text if len(text) <= TITLE_LENGTH else text[: TITLE_LENGTH - 1] + "…"


# --- ownership ------------------------------------------------------------------------------

# KEYS: thread_owner:<id>, user_threads:<email>; ARGV: email, thread id, now (ms), the
# most threads a user may have. Returns 0 someone else's, 1 already ours, 2 newly ours
# (check the checkpoints' owner), -1 a new thread over the user's limit (nothing changed).
CLAIM_LUA = b"""
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
if not owner and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[2])
if owner then return 1 end
redis.call('SET', KEYS[1], ARGV[1])
return 2
"""

# KEYS: thread_owner:<id>, user_threads:<email>; ARGV: email, thread id.
FORGET_LUA = b"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

NEWLY_OURS = 2
OVER_LIMIT = -1


class TooManyThreads(Exception):
    """The user already has ``CHAT_MAX_THREADS_PER_USER`` chats; ``str()`` says what to do."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You have {limit} chats, the most one person may keep; delete some to start a new one."
        )
        self.limit = limit


def _max_threads() -> int:
    return int(getattr(settings, "CHAT_MAX_THREADS_PER_USER", keys.MAX_THREADS_PER_USER))


# A Redis Cluster keeps the owner (the thread's slot) and the user's index (the user's)
# apart, so a script cannot hold both: there the owner key alone decides (SET NX, and a
# compare-and-delete), and the index follows one command later. The limit check can then
# let two new chats started at the same instant both pass (a chat over the limit, never
# someone else's thread).

# KEYS: thread_owner:<id>. ARGV: email. Returns 0 someone else's, 1 ours, 2 newly ours.
CLAIM_OWNER_LUA = b"""
local owner = redis.call('GET', KEYS[1])
if owner then
  if owner == ARGV[1] then return 1 end
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 2
"""

# KEYS: thread_owner:<id>. ARGV: email. Returns 1 when the owner was ``email``'s, deleted.
FORGET_OWNER_LUA = b"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

_claim, _forget = Script(None, CLAIM_LUA), Script(None, FORGET_LUA)
_aclaim, _aforget = AsyncScript(None, CLAIM_LUA), AsyncScript(None, FORGET_LUA)
_claim_owner, _forget_owner = Script(None, CLAIM_OWNER_LUA), Script(None, FORGET_OWNER_LUA)
_aclaim_owner = AsyncScript(None, CLAIM_OWNER_LUA)
_aforget_owner = AsyncScript(None, FORGET_OWNER_LUA)


def _claim_in_slots(email: str, thread_id: str, now_ms: int, client) -> int:
    """:data:`CLAIM_LUA`'s answer on a Redis Cluster (see above)."""
    owner_key, index_key = _owner_keys(email, thread_id)
    owner = client.get(owner_key)
    if owner is not None:
        status = int(owner.decode() == email)
    elif client.zcard(index_key) >= _max_threads():
        return OVER_LIMIT
    else:
        status = _claim_owner([owner_key], [email], client=client)
    if status:
        client.zadd(index_key, {thread_id: now_ms}, nx=True)
    return status


async def _aclaim_in_slots(email: str, thread_id: str, now_ms: int, client) -> int:
    owner_key, index_key = _owner_keys(email, thread_id)
    owner = await client.get(owner_key)
    if owner is not None:  # already claimed: the script would only say whose
        status = int(owner.decode() == email)
    elif await client.zcard(index_key) >= _max_threads():
        return OVER_LIMIT
    else:
        status = await _aclaim_owner([owner_key], [email], client=client)
    if status:
        await client.zadd(index_key, {thread_id: now_ms}, nx=True)
    return status


def _do_claim(email: str, thread_id: str, client) -> int:
    now_ms = int(time.time() * 1000)
    if keys.cluster_mode():
        return _claim_in_slots(email, thread_id, now_ms, client)
    args = [email, thread_id, now_ms, _max_threads()]
    return _claim(_owner_keys(email, thread_id), args, client=client)


async def _ado_claim(email: str, thread_id: str, client) -> int:
    now_ms = int(time.time() * 1000)
    if keys.cluster_mode():
        return await _aclaim_in_slots(email, thread_id, now_ms, client)
    args = [email, thread_id, now_ms, _max_threads()]
    return await _aclaim(_owner_keys(email, thread_id), args, client=client)


def _do_forget(email: str, thread_id: str, client) -> None:
    owner_key, index_key = _owner_keys(email, thread_id)
    if not keys.cluster_mode():
        _forget([owner_key, index_key], [email, thread_id], client=client)
    elif _forget_owner([owner_key], [email], client=client):
        client.zrem(index_key, thread_id)


async def _ado_forget(email: str, thread_id: str, client) -> None:
    owner_key, index_key = _owner_keys(email, thread_id)
    if not keys.cluster_mode():
        await _aforget([owner_key, index_key], [email, thread_id], client=client)
    elif await _aforget_owner([owner_key], [email], client=client):
        await client.zrem(index_key, thread_id)


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _owner_keys(email: str, thread_id: str) -> list[str]:
    return [keys.thread_owner_key(thread_id), keys.user_threads_key(email)]


def _refuse_recorded(email: str, thread_id: str, recorded: CheckpointTuple | None) -> bool:
    """A thread with checkpoints but no owner in db 0 (db 0 lost, restored, failed over)
    belongs to the user its checkpoints name, never to whoever asks first."""
    if recorded is None:
        return False  # a new thread
    owner = (recorded.metadata or {}).get("user_email")
    if owner == email:
        logger.info("Ownership of thread %s restored from its checkpoints", thread_id)
        return False
    logger.warning(
        "Refused %s the thread %s: its checkpoints belong to %s, db 0 had no owner",
        email,
        thread_id,
        owner or "nobody (a conversation without a user)",
    )
    return True


def claim(email: str, thread_id: str, session_id: str | None = None, *, client=None) -> bool:
    """Own ``thread_id`` (or confirm it is ours) and list it in the session.

    ``False``: it belongs to someone else (in db 0, or by its checkpoints), and nothing
    changed. :class:`TooManyThreads`: a new thread over the user's limit.
    """
    client = client or get_client("sessions")
    status = _do_claim(email, thread_id, client)
    if status == OVER_LIMIT:
        raise TooManyThreads(_max_threads())
    if status == NEWLY_OURS and _refuse_recorded(
        email, thread_id, sync_checkpointer().get_tuple(_config(thread_id))
    ):
        _do_forget(email, thread_id, client)
        return False
    if not status:
        return False
    if status == NEWLY_OURS and session_id:  # the session that started it lists it
        store.add_thread_id(session_id, thread_id, client=client)
    return True


async def aclaim(email: str, thread_id: str, session_id: str | None = None, *, client=None) -> bool:
    return bool(await aopen(email, thread_id, session_id, client=client))


class Opened(enum.IntEnum):
    """What :func:`aopen` found (falsy: refused)."""

    REFUSED = 0
    OURS = 1
    NEW_AND_EMPTY = 2


async def aopen(
    email: str,
    thread_id: str,
    session_id: str | None = None,
    *,
    client=None,
    session_value: bytes | None = None,
) -> Opened:
    """:func:`aclaim`, telling a little more: ``REFUSED``, ``OURS``, or ``NEW_AND_EMPTY``
    (claimed just now and without checkpoints: a new chat, whose history and approvals
    need not be read). ``session_value``: the session as the caller loaded it, so that
    adding a new thread to its ``thread_ids`` does not read it again."""
    client = client or get_async_client("sessions")
    status = await _ado_claim(email, thread_id, client)
    if status == OVER_LIMIT:
        raise TooManyThreads(_max_threads())
    recorded = None
    if status == NEWLY_OURS:
        saver = await get_checkpointer()
        recorded = await saver.aget_tuple(_config(thread_id))
        if _refuse_recorded(email, thread_id, recorded):
            await _ado_forget(email, thread_id, client)
            return Opened.REFUSED
    if not status:
        return Opened.REFUSED
    if status == NEWLY_OURS and session_id:  # one round trip for a thread already ours
        await store.aadd_thread_id(session_id, thread_id, client=client, loaded=session_value)
    return Opened.NEW_AND_EMPTY if status == NEWLY_OURS and recorded is None else Opened.OURS


async def arestore(email: str, thread_id: str, session_id: str | None = None) -> bool:
    """Own a thread whose owner db 0 lost, when its checkpoints name ``email``."""
    if not validate_thread_id(thread_id) or await aowner_of(thread_id) is not None:
        return False
    recorded = await (await get_checkpointer()).aget_tuple(_config(thread_id))
    if recorded is None or (recorded.metadata or {}).get("user_email") != email:
        return False
    return await aclaim(email, thread_id, session_id)


def owner_of(thread_id: str, *, client=None) -> str | None:
    """The email that owns ``thread_id``, or ``None`` if nobody claimed it."""
    owner = (client or get_client("sessions")).get(keys.thread_owner_key(thread_id))
    return owner.decode() if owner is not None else None


async def aowner_of(thread_id: str, *, client=None) -> str | None:
    client = client or get_async_client("sessions")
    owner = await client.get(keys.thread_owner_key(thread_id))
    return owner.decode() if owner is not None else None


async def aowns(email: str, thread_id: str, *, client=None) -> bool:
    """True when ``thread_id`` is a valid id that ``email`` owns."""
    return validate_thread_id(thread_id) and await aowner_of(thread_id, client=client) == email


def threads_for(email: str, *, client=None) -> list[str]:
    """The thread ids ``email`` owns, newest first."""
    ids = (client or get_client("sessions")).zrevrange(keys.user_threads_key(email), 0, -1)
    return [i.decode() for i in ids]


async def athreads_for(email: str, *, client=None) -> list[str]:
    client = client or get_async_client("sessions")
    ids = await client.zrevrange(keys.user_threads_key(email), 0, -1)
    return [i.decode() for i in ids]


# --- the end of a thread --------------------------------------------------------------------


def _busy_error(thread_id: str) -> ThreadBusy:
    return ThreadBusy(
        f"Thread {thread_id!r} is generating a reply right now; try again in a moment."
    )


def delete(
    thread_id: str, *, if_busy: IfBusy = "stop", client=None, checkpointer=None
) -> str | None:
    """Delete the thread everywhere (see the module docstring); returns its owner or None.

    ``if_busy="refuse"`` raises :class:`ThreadBusy` instead of stopping a running reply.
    A run in another process stops on its next lock renewal (about a second).
    """
    client = client or get_client("sessions")
    if if_busy == "refuse" and pending.is_busy(thread_id, client=client):
        raise _busy_error(thread_id)
    owner = owner_of(thread_id, client=client)
    pending.drop(thread_id, client=client)
    (checkpointer or sync_checkpointer()).delete_thread(thread_id)
    events.delete(thread_id, client=client)
    events.announce_deleted(thread_id)
    if owner:
        _do_forget(owner, thread_id, client)
        for record in store.sessions_for(owner, client=client):
            if thread_id in record.thread_ids:
                store.remove_thread_id(record.session_id, thread_id, client=client)
    return owner


async def adelete(thread_id: str, *, if_busy: IfBusy = "stop", client=None) -> str | None:
    """The async twin of :func:`delete`; also waits for this process's run to stop."""
    from chat import runner  # runner imports this module

    client = client or get_async_client("sessions")
    if if_busy == "refuse" and await pending.ais_busy(thread_id, client=client):
        raise _busy_error(thread_id)
    owner = await aowner_of(thread_id, client=client)
    await pending.adrop(thread_id, client=client)
    await runner.forget(thread_id)
    await (await get_checkpointer()).adelete_thread(thread_id)
    await events.adelete(thread_id, client=client)
    await events.aannounce_deleted(thread_id)
    if owner:
        await _ado_forget(owner, thread_id, client)
        for record in await store.asessions_for(owner, client=client):
            if thread_id in record.thread_ids:
                await store.aremove_thread_id(record.session_id, thread_id, client=client)
    return owner


def user_email(user) -> str:
    """The key a user's threads are filed under: the email, or the username without one."""
    return user.email or user.get_username()
