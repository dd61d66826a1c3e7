"""Channels' websocket auth stack, with the session read on the event loop and the user
looked up on one long-lived thread that keeps its database connection.

Channels' ``AuthMiddlewareStack`` reads the session inside ``get_user``, in a worker
thread, through the sync Redis client (``SessionStore.load``), for every socket opened.
:class:`AuthMiddleware` reads it first with ``SessionStore.aload`` (one async round trip
that renews the TTL, as every read does). A session without a user is anonymous at once,
without a thread. Redis unavailable while reading it: the user is anonymous and
``scope["redis_error"]`` holds the error, so the consumer can accept the socket and close
it with 1011 and a reason instead of the handshake failing.

The user itself comes from the database (Django's ORM has no async driver), which
Channels asks through ``database_sync_to_async``: that closes the thread's connection
before and after each call (``CONN_MAX_AGE`` is 0, as Django requires under ASGI), so
every socket opened a new database connection and closed it again. That was the largest
part of opening a socket, 2-4 ms of CPU a message in the chat benchmark's burst (three
messages a socket). Here the lookup runs on one thread of this module's own
(:data:`_LOOKUPS`) that lives as long as the process, so its connection is reused, the way
a long-running process keeps one: it is closed and opened again after
:data:`KEEP_CONNECTION_SECONDS`, after an error that left it unusable, or when
``CONN_MAX_AGE`` says so. Django's warning about persistent connections under ASGI is
about its per-request threads, which end with the connection still open; this thread
never ends. A lookup that fails on a connection the database dropped (a restart) is
tried once more on a new one.

The checks are Channels' ``get_user``'s: the session's user id and backend, the backend's
user (``None`` for an inactive one), and the session's auth hash against the user's (a
session whose password hash changed is flushed and anonymous). Nothing is cached: a user
deactivated a moment ago is refused on the next socket, as before.
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
from django.db import Error as DatabaseError
from django.db import connections
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
    try:
        return _checked_user(session)
    except DatabaseError:
        # The database may have dropped a kept connection (a restart): once more on a new
        # one. A second failure is the database's, and propagates as it did with Channels.
        for connection in connections.all(initialized_only=True):
            connection.close()
        return _checked_user(session)
    finally:
        _keep_connections()


def _checked_user(session):
    """Channels' ``get_user`` checks, on an already loaded session."""
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
        if not (session_hash and constant_time_compare(session_hash, user.get_session_auth_hash())):
            session.flush()
            return AnonymousUser()
    return user


def _drop_stale_connections() -> None:
    """Close this thread's connections that errors left unusable or that are past their
    age (Django's own check)."""
    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


def _keep_connections() -> None:
    """Give a connection opened with ``CONN_MAX_AGE = 0`` (closed at once by Django's
    check) :data:`KEEP_CONNECTION_SECONDS` instead; a longer ``CONN_MAX_AGE`` is kept."""
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        close_at = connection.close_at
        if connection.connection is not None and close_at is not None and close_at <= now:
            connection.close_at = close_at + KEEP_CONNECTION_SECONDS


def AuthMiddlewareStack(inner):
    """Channels' ``AuthMiddlewareStack`` with :class:`AuthMiddleware`."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
