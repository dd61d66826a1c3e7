"""ASGI entry point: HTTP through Django, websockets through Channels.

Also, at import (uvicorn configures its logging before it imports the app): the
redaction filter on uvicorn's loggers (:func:`agenticpal.log_redaction.install`), so
the access log shows no OAuth code, state or sign-in token. Websockets pass
:class:`SameOriginValidator` first: only this site's own pages may open one.
"""

import logging
import os
from urllib.parse import urlsplit

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agenticpal.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http.request import split_domain_port, validate_host  # noqa: E402
from django.utils.http import is_same_domain  # noqa: E402

from agenticpal import log_redaction  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from sessions_redis.websocket import AuthMiddlewareStack  # noqa: E402

log_redaction.install()
security_logger = logging.getLogger("django.security.websocket")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _trusted(origin: str) -> bool:
    """Listed in ``CSRF_TRUSTED_ORIGINS`` (exactly, or ``https://*.example.com``)."""
    parts = urlsplit(origin)
    for trusted in (t.lower() for t in settings.CSRF_TRUSTED_ORIGINS):
        if "*" not in trusted:
            if origin == trusted:
                return True
            continue
        wanted = urlsplit(trusted)
        if parts.scheme == wanted.scheme and is_same_domain(parts.netloc, wanted.netloc[1:]):
            return True
    return False


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """Whether a handshake with these ``Origin`` and ``Host`` headers comes from this site.

    Same origin: the Origin's host and port are the Host header's (the scheme aside:
    behind a TLS proxy the page is https while the server sees ws), and the host is in
    ``ALLOWED_HOSTS``. A Host without a port matches an Origin on its scheme's default
    port. Otherwise the Origin must be listed in ``CSRF_TRUSTED_ORIGINS``. Browsers
    always send an Origin; a handshake without one is refused.
    """
    if not origin or not host:
        return False
    origin = origin.strip().lower()
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
    except ValueError:
        return False
    if _trusted(origin):
        return True
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return False
    origin_host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    host_name, host_port = split_domain_port(host.strip())
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]  # as Django's get_host()
    if not host_name or origin_host != host_name or not validate_host(host_name, allowed_hosts):
        return False
    effective_port = origin_port or DEFAULT_PORTS[parts.scheme]
    if host_port:
        return int(host_port) == effective_port
    return effective_port == DEFAULT_PORTS[parts.scheme]


class SameOriginValidator:
    """Refuses (HTTP 403) a websocket handshake that :func:`origin_allowed` refuses."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin, host = _header(scope, b"origin"), _header(scope, b"host")
            if not origin_allowed(origin, host):
                security_logger.warning(
                    "Websocket refused: Origin %r is not this site (Host %r); list it in "
                    "CSRF_TRUSTED_ORIGINS if a proxy rewrites Host.",
                    origin,
                    host,
                )
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
