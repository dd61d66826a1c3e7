"""Turn "Redis is not there" into a 503 page that says how to fix it.

Exceptions raised by a view (or by anything the view touches lazily: the session,
``request.user``) reach ``process_exception`` here. Errors while *saving* the session
happen in the session middleware's response phase, so
:class:`sessions_redis.middleware.SessionMiddleware` calls :func:`redis_unavailable_response`
itself. Either way, nobody sees a traceback, in DEBUG or not; the Redis URL and the
error itself are shown only in DEBUG or to a signed-in staff member.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, display_url, unavailable_message

logger = logging.getLogger("agenticpal.redis")


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


PLAIN_MESSAGE = (
    "The service's data store (Redis) did not answer; try again in a few seconds. "
    "If you run this server: start Redis with `make redis` (or `docker compose up -d redis`), "
    "or set REDIS_URL to a running server."
)


def _shows_detail(request: HttpRequest) -> bool:
    """DEBUG, or a staff member whose session was already read (asking Redis again is
    pointless: it just failed)."""
    if settings.DEBUG:
        return True
    session = getattr(request, "session", None)
    if session is None or not hasattr(session, "_session_cache"):
        return False
    try:
        user = request.user
        return bool(user.is_active and user.is_staff)
    except Exception:  # the 503 must render whatever else is broken
        return False


def redis_unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    logger.error("Redis unavailable while serving %s: %s", request.path, exc)
    detail = _shows_detail(request)
    if wants_json(request):
        message = unavailable_message(exc) if detail else PLAIN_MESSAGE
        response = JsonResponse({"error": "redis_unavailable", "detail": message}, status=503)
    else:
        context = {"redis_url": display_url(), "reason": str(exc)} if detail else {}
        html = render_to_string("503_redis.html", context, request=None)
        response = HttpResponse(html, status=503)
    response["Retry-After"] = "5"
    response["Cache-Control"] = "no-store"
    return response


class RedisUnavailableMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception):
        if isinstance(exception, UNAVAILABLE_ERRORS):
            return redis_unavailable_response(request, exception)
        return None
