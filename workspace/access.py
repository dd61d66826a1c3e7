"""A signed-in user's Google client: their tokens, Google's address or the demo's.

:func:`client_for` is how the tools reach Google for one user: the token comes from
that user's encrypted credentials (:mod:`workspace.credentials`: refreshed under the
lock when expired, or after Google answered 401), never from a tool's arguments, so
one user's token is never used for another. A user holding demo credentials talks to
the in-process emulator (:mod:`workspace.demo`) instead of Google.
"""

from __future__ import annotations

import asyncio

from django.urls import reverse

from workspace import credentials, demo
from workspace.google.client import GoogleClient, GoogleUnavailable, SignInAgain


class NotConnected(Exception):
    """The user has no Google credentials (signed in locally, or access was revoked)."""

    user_message = (
        "Google is not connected: sign in with Google to let me read your Calendar, "
        "Gmail and Tasks."
    )


class UserTokens:
    """A :class:`~workspace.google.client.TokenSource` over ``credentials:<email>``.

    One per tool call: the credentials read by :func:`client_for` serve every request
    of the call, and one refresh (under this lock, then the credentials' Redis lock)
    serves every request that got a 401 meanwhile.
    """

    def __init__(self, email: str, known: credentials.GoogleCredentials | None = None) -> None:
        self.email = email
        self._known = known
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if self._known is None or self._known.expired:
            async with self._lock:
                if self._known is None or self._known.expired:
                    self._known = await self._credentials()
        return self._known.token

    async def refreshed(self, stale_token: str) -> str:
        async with self._lock:
            if self._known is None or self._known.token == stale_token:
                self._known = await self._credentials(stale_token)
            return self._known.token

    async def _credentials(self, stale_token: str | None = None) -> credentials.GoogleCredentials:
        try:
            return await credentials.agoogle_credentials(self.email, stale_token=stale_token)
        except credentials.SignInRequired as exc:
            raise SignInAgain(str(exc)) from None
        except credentials.RefreshFailed as exc:
            raise GoogleUnavailable(str(exc)) from None


async def client_for(email: str) -> GoogleClient:
    """The user's client; :class:`NotConnected` when they have no Google credentials."""
    stored = await credentials.aload_or_none(email)
    if stored is None:
        raise NotConnected(email)
    tokens = UserTokens(email, stored)
    if stored.is_demo and demo.enabled():
        return GoogleClient(tokens, base_url=demo.BASE_URL, http=demo.http_client())
    return GoogleClient(tokens)


async def connection(email: str) -> dict[str, str]:
    """What the pages say about the user's Google connection: ``demo``, ``google`` or
    ``none`` (with a link to connect), from one read of the credentials."""
    kind = await credentials.aconnection_kind(email)
    if kind is None:
        return {"state": "none", "text": "Google is not connected", "url": reverse("login")}
    if kind == "demo":
        return {"state": "demo", "text": demo.DEMO_LABEL}
    return {"state": "google", "text": "Google Workspace connected"}
