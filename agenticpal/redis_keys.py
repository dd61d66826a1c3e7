"""The Redis key contract of AgenticPal: prefixes, TTL defaults and database numbers.

This is the one place where they are spelled out; every other module imports them
from here. The names and values follow the seed document (agenticpal-redis-setup).
"""

from __future__ import annotations

import functools
from typing import Final

# Databases (seed: "Redis Database Organization").
SESSIONS_DB: Final = 0  # sessions, credentials, OAuth state, pending messages
CHECKPOINTS_DB: Final = 1  # LangGraph checkpoints
# langgraph-checkpoint-redis (CHECKPOINTER=official): RediSearch indexes only db 0.
OFFICIAL_SAVER_DB: Final = 0

# Key prefixes in db 0 (seed: "Key Prefixes").
SESSION_PREFIX: Final = "session:"
OAUTH_STATE_PREFIX: Final = "oauth_state:"
CREDENTIALS_PREFIX: Final = "credentials:"
PENDING_MESSAGE_PREFIX: Final = "pending_msg:"

# Indexes the seed does not name but the product needs (also db 0).
USER_SESSIONS_PREFIX: Final = "user_sessions:"  # set of session ids of one user
USER_THREADS_PREFIX: Final = "user_threads:"  # thread id -> created-at, per user
THREAD_OWNER_PREFIX: Final = "thread_owner:"  # thread id -> owner email
LOCK_PREFIX: Final = "lock:"  # short-lived locks (credential refresh, thread runs)
LOGIN_TOKEN_PREFIX: Final = "login_token:"  # one-time local development sign-in

# Checkpointer layout in db 1 (see chat.checkpoint for how keys are composed).
CHECKPOINT_PREFIX: Final = "checkpoint:"

# TTL defaults, in seconds (seed: "TTL Configuration").
SESSION_TTL_SECONDS: Final = 604_800  # 7 days, renewed on every access
OAUTH_STATE_TTL_SECONDS: Final = 600  # 10 minutes, single use
LOGIN_TOKEN_TTL_SECONDS: Final = 600


def session_key(session_id: str) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def oauth_state_key(state: str) -> str:
    return f"{OAUTH_STATE_PREFIX}{state}"


def credentials_key(user: str) -> str:
    return f"{CREDENTIALS_PREFIX}{user}"


def pending_message_key(thread_id: str) -> str:
    return f"{PENDING_MESSAGE_PREFIX}{thread_slot(thread_id)}"


def user_sessions_key(email: str) -> str:
    return f"{USER_SESSIONS_PREFIX}{email}"


def user_threads_key(email: str) -> str:
    return f"{USER_THREADS_PREFIX}{email}"


def thread_owner_key(thread_id: str) -> str:
    return f"{THREAD_OWNER_PREFIX}{thread_slot(thread_id)}"


def lock_key(name: str) -> str:
    return f"{LOCK_PREFIX}{name}"


REFRESH_LOCK_SECONDS: Final = 15  # > the token endpoint's timeout: the holder finishes first


def refresh_lock_key(email: str) -> str:
    """The lock one request holds while it refreshes ``email``'s Google access token."""
    return lock_key(f"refresh:{credentials_key(email)}")


def login_token_key(token: str) -> str:
    return f"{LOGIN_TOKEN_PREFIX}{token}"


# Sessions: how stale ``last_accessed`` may get before a read rewrites it (see
# sessions_redis.store); setting SESSION_LAST_ACCESSED_RESOLUTION overrides it.
SESSION_LAST_ACCESSED_RESOLUTION_SECONDS: Final = 60

# Checkpointer (db 1): the global thread index and the keys of one thread. Every key of a
# thread carries the Redis Cluster hash tag "{<thread>}" (escaped so that braces in a
# thread id cannot cut the tag short), so a whole thread lives in one slot.
CHECKPOINT_THREAD_INDEX_KEY: Final = f"{CHECKPOINT_PREFIX}threads"


def checkpoint_hash_tag(thread_id: str) -> str:
    """``{<thread id>}`` with ``%``, ``{`` and ``}`` percent-escaped (injective; "" -> "%")."""
    escaped = thread_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return "{" + (escaped or "%") + "}"


def checkpoint_thread_key(thread_id: str, kind: str) -> str:
    return f"{CHECKPOINT_PREFIX}{checkpoint_hash_tag(thread_id)}:{kind}"


# Redis Cluster (settings.REDIS["CLUSTER"]): one database, 16384 hash slots, and a script
# or transaction may only touch keys of one slot. The db 0 keys of one thread (queue,
# run lock, cancel flag, event stream, owner, action records and log) then carry the
# thread's hash tag, "pending_msg:{<thread>}", so the scripts of chat.pending and
# workspace.actions stay atomic; the db 1 split becomes the "checkpoint:" prefix.
# On a single server the names stay the seed's ("pending_msg:<thread>").


@functools.cache
def cluster_mode() -> bool:
    """Whether the project runs on a Redis Cluster (cached; tests reset it on a change)."""
    from django.conf import settings

    return bool(settings.REDIS.get("CLUSTER"))


def thread_slot(thread_id: str) -> str:
    """How a thread names its db 0 keys: itself, or its hash tag on a cluster."""
    return checkpoint_hash_tag(thread_id) if cluster_mode() else thread_id


# Chat runs (db 0, see chat.pending and chat.events). One thread's run state:
# the pending_msg: queue above, a run lock (lock:thread_run:<thread>), a cancel flag and
# a capped event stream that SSE clients resume from.
CANCEL_RUN_PREFIX: Final = "cancel_run:"  # message id of the run to stop (or "*")
THREAD_EVENTS_PREFIX: Final = "thread_events:"  # Redis Stream of a thread's chat events
RUN_LOCK_TTL_MS: Final = 20_000  # renewed by a reply's events, or each second, while a run lives
CANCEL_FLAG_TTL_SECONDS: Final = 300
THREAD_EVENTS_MAXLEN: Final = 2_000  # approximate cap (XADD MAXLEN ~)
THREAD_EVENTS_TTL_SECONDS: Final = 86_400  # an idle thread's stream expires after a day


# Limits on what one user can queue (settings CHAT_MAX_QUEUED_MESSAGES and
# CHAT_MESSAGES_PER_MINUTE override them): nobody fills Redis for everyone else.
MESSAGE_RATE_PREFIX: Final = "rate:messages:"  # messages a user sent in one minute
MAX_QUEUED_MESSAGES: Final = 20  # waiting in one thread's queue
MESSAGES_PER_MINUTE: Final = 30  # sent by one user, all threads together
MAX_THREADS_PER_USER: Final = 1_000  # chats one user keeps (CHAT_MAX_THREADS_PER_USER)


SIGN_IN_RATE_PREFIX: Final = "rate:sign_in:"  # sign-in attempts from one address a minute
SIGN_IN_ATTEMPTS_PER_MINUTE: Final = 20


def sign_in_rate_key(address: str, minute: int) -> str:
    return f"{SIGN_IN_RATE_PREFIX}{address}:{minute}"


def message_rate_key(email: str, minute: int) -> str:
    return f"{MESSAGE_RATE_PREFIX}{email}:{minute}"


def run_lock_key(thread_id: str) -> str:
    return lock_key(f"thread_run:{thread_slot(thread_id)}")


def cancel_run_key(thread_id: str) -> str:
    return f"{CANCEL_RUN_PREFIX}{thread_slot(thread_id)}"


def thread_events_key(thread_id: str) -> str:
    return f"{THREAD_EVENTS_PREFIX}{thread_slot(thread_id)}"


# Workspace actions (db 0, see workspace.actions): one record per approved change to a
# user's Google account (so it runs once whatever crashes in between) and each thread's
# audit trail of what ran, newest first.
ACTION_PREFIX: Final = "action:"  # action:<thread>:<interrupt id> -> JSON record
ACTION_LOG_PREFIX: Final = "action_log:"  # list of JSON audit entries per thread
ACTION_TTL_SECONDS: Final = 90 * 86_400  # longer than any approval is expected to wait
ACTION_LOG_MAX: Final = 500


def action_key(key: str) -> str:
    """``key`` is ``<thread>:<interrupt id>``."""
    thread_id, _, interrupt_id = key.partition(":")
    return f"{ACTION_PREFIX}{thread_slot(thread_id)}:{interrupt_id}"


def action_log_key(thread_id: str) -> str:
    return f"{ACTION_LOG_PREFIX}{thread_slot(thread_id)}"
