"""Channels' websocket auth stack, with the session read on the event loop and the user
looked up on one long-lived thread that keeps its database connection.

Channels' ``AuthMiddlewareStack`` reads the session inside ``get_user``, in a worker
thread, through the sync Redis client (``SessionStore.load``), for every socket opened.
:class:`AuthMiddleware` reads it first with ``SessionStore.aload`` (one async round trip
that renews the TTL, as every read does). A session without a user is anonymous at once,
without a thread. Redis unavailable while reading it: the user is anonymous and
``scope["redis_error"]`` holds the error, so the consumer can accept the socket and close
it with 1011 and a reason instead of the handshake failing.

The user itself comes from the database (Django's ORM has no async driver). Channels asks
it through ``database_sync_to_async``, which closes the thread's connection before and
after each call when ``CONN_MAX_AGE`` is 0 (Django's default, and what its docs advise
under ASGI), so every socket opened a new database connection and closed it again: the
largest part of opening a socket (the README's "Chat websocket benchmark"). Here the
lookup runs on one thread of this module's own (:data:`_LOOKUPS`) that lives as long as
the process, so its connection is reused, as a long-running process keeps one. The first
lookup after :data:`KEEP_CONNECTION_SECONDS` (or after ``CONN_MAX_AGE``, when that is
set), or after an error that left the connection unusable, opens a new one. Django's
warning about persistent connections under ASGI is about its per-request threads, which
end with their connection open; this thread does not end, and :func:`close_connections`
closes its connection when the worker stops. A lookup that fails with an operational
error on a connection opened by an earlier lookup (the database restarted meanwhile) is
tried once more on a new one.

The checks are Django's ``get_user``'s (as Channels makes them): the session's user id and
backend, the backend's user (``None`` for an inactive one), and the session's auth hash
against the user's, or against one made with a ``SECRET_KEY_FALLBACKS`` key (accepted; a
socket cannot set the new cookie Django's key rotation would make, the next page does). A
session whose hash matches neither (the password changed) is flushed and anonymous.
Nothing is cached: a user deactivated a moment ago is refused on the next socket.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from channels.auth import AuthMiddleware as ChannelsAuthMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError, OperationalError, connections
from django.utils.crypto import constant_time_compare

from agenticpal.redis_clients import UNAVAILABLE_ERRORS

KEEP_CONNECTION_SECONDS = 60.0
_LOOKUPS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="websocket-sign-in")


class AuthMiddleware(ChannelsAuthMiddleware):
    """``scope["user"]`` as Channels sets it: the session read natively async, the user
    looked up on :data:`_LOOKUPS`."""

    async def resolve_scope(self, scope) -> None:
        session = scope["session"]
        try:
            signed_in = await session.aget(SESSION_KEY) is not None
        except UNAVAILABLE_ERRORS as exc:
            scope["redis_error"] = exc
            signed_in = False
        if not signed_in:
            scope["user"]._wrapped = AnonymousUser()
            return
        loop = asyncio.get_running_loop()
        scope["user"]._wrapped = await loop.run_in_executor(_LOOKUPS, session_user, session)


def session_user(session):
    """The user a loaded session signs in, or ``AnonymousUser`` (on :data:`_LOOKUPS`)."""
    _drop_stale_connections()
    kept = any(c.connection is not None for c in connections.all(initialized_only=True))
    try:
        return _checked_user(session)
    except (OperationalError, InterfaceError):
        if not kept:
            raise  # a connection opened just now: the database's failure, as with Channels
        # The database may have dropped the kept connection (a restart): once more on a
        # new one. A second failure propagates.
        for connection in connections.all(initialized_only=True):
            connection.close()
        return _checked_user(session)
    finally:
        _keep_connections()


def close_connections() -> None:
    """Close the sign-in thread's database connections (a worker's shutdown)."""
    _LOOKUPS.submit(connections.close_all).result()


def _checked_user(session):
    """Django's ``get_user`` checks, on an already loaded session."""
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return AnonymousUser()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return AnonymousUser()
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return AnonymousUser()
    if hasattr(user, "get_session_auth_hash"):
        session_hash = session.get(HASH_SESSION_KEY)
        hashes = [user.get_session_auth_hash()]
        if hasattr(user, "get_session_auth_fallback_hash"):
            hashes += user.get_session_auth_fallback_hash()
        if not (session_hash and any(constant_time_compare(session_hash, h) for h in hashes)):
            session.flush()
            return AnonymousUser()
    return user


def _drop_stale_connections() -> None:
    """Close this thread's connections that errors left unusable or that are past their
    age (Django's own check)."""
    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


def _keep_connections() -> None:
    """Give a connection opened with ``CONN_MAX_AGE = 0`` (due at once, for Django's check)
    :data:`KEEP_CONNECTION_SECONDS` from now; any other ``CONN_MAX_AGE`` is left alone."""
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        if (
            connection.connection is not None
            and connection.settings_dict["CONN_MAX_AGE"] == 0
            and connection.close_at is not None
            and connection.close_at <= now
        ):
            connection.close_at = now + KEEP_CONNECTION_SECONDS


def AuthMiddlewareStack(inner):
    """Channels' ``AuthMiddlewareStack`` with :class:`AuthMiddleware`."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
