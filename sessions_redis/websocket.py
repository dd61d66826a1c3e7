"""Channels' websocket auth stack, with the session read on the event loop.

Channels' ``AuthMiddlewareStack`` reads the session inside ``get_user``, in a worker
thread, through the sync Redis client (``SessionStore.load``), for every socket opened.
:class:`AuthMiddleware` reads it first with ``SessionStore.aload`` (one async round trip
that renews the TTL, as every read does); Channels' ``get_user`` then finds it loaded
and only asks the database for the user (Django's ORM has no async driver: that step
stays in ``database_sync_to_async``, which also closes stale database connections). A
session without a user is anonymous at once, without the thread. Redis unavailable
while reading it: the user is anonymous and ``scope["redis_error"]`` holds the error, so
the consumer can accept the socket and close it with 1011 and a reason instead of the
handshake failing.
"""

from __future__ import annotations

from channels.auth import AuthMiddleware as ChannelsAuthMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import AnonymousUser

from agenticpal.redis_clients import UNAVAILABLE_ERRORS


class AuthMiddleware(ChannelsAuthMiddleware):
    """``scope["user"]`` as Channels sets it, the session read natively async first."""

    async def resolve_scope(self, scope) -> None:
        try:
            signed_in = await scope["session"].aget(SESSION_KEY) is not None
        except UNAVAILABLE_ERRORS as exc:
            scope["redis_error"] = exc
            signed_in = False
        if not signed_in:
            scope["user"]._wrapped = AnonymousUser()
            return
        await super().resolve_scope(scope)


def AuthMiddlewareStack(inner):
    """Channels' ``AuthMiddlewareStack`` with :class:`AuthMiddleware`."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
