"""The demo workspace: Google's APIs answered by the local emulator, for local users.

With ``WORKSPACE_DEMO`` on (development without Google, the default of ``make run``),
a local sign-in stores credentials whose token is ``demo.<email>``, and the Google
client sends its requests to :mod:`workspace.emulator` in this process through
httpx's ASGI transport: no port, no network, the same tools, errors and pages as
with Google. Results say "Demo workspace — not your Google account". The sample data
lives in memory, per process, and starts again after a restart.
"""

from __future__ import annotations

import asyncio
import functools
import weakref

import httpx
from django.conf import settings

from workspace import credentials

DEMO_LABEL = "Demo workspace — not your Google account"
BASE_URL = "http://demo-workspace"


def enabled() -> bool:
    return bool(getattr(settings, "WORKSPACE_DEMO", False))


def demo_credentials(email: str) -> credentials.GoogleCredentials:
    """What a local user gets instead of a Google grant: every scope, a demo token."""
    return credentials.GoogleCredentials(
        token=f"{credentials.DEMO_TOKEN_PREFIX}{email}",
        refresh_token=None,
        client_id=credentials.DEMO_CLIENT_ID,
        client_secret="",
        scopes=list(settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SCOPE),
    )


def connect(email: str) -> None:
    """Give ``email`` the demo workspace (a local sign-in with ``WORKSPACE_DEMO`` on),
    unless they have a real Google grant: that is never replaced."""
    if credentials.connection_kind(email) != "google":
        credentials.save_credentials(email, demo_credentials(email))


@functools.cache
def _emulator():
    from tzlocal import get_localzone_name

    from workspace.emulator import create_app

    return create_app(timezone=get_localzone_name() or settings.TIME_ZONE)


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def http_client() -> httpx.AsyncClient:
    """The running loop's client of the emulator (one app, one set of sample data, per
    process), through httpx's ASGI transport."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        transport = httpx.ASGITransport(app=_emulator())
        client = _clients[loop] = httpx.AsyncClient(transport=transport)
    return client
