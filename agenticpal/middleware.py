"""Turn "Redis is not there" into a 503 page that says how to fix it.

Exceptions raised by a view (or by anything the view touches lazily: the session,
``request.user``) reach ``process_exception`` here. Errors while *saving* the session
happen in the session middleware's response phase, so
:class:`sessions_redis.middleware.SessionMiddleware` calls :func:`redis_unavailable_response`
itself. Either way, nobody sees a traceback, in DEBUG or not.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, display_url, unavailable_message

logger = logging.getLogger("agenticpal.redis")


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


def redis_unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    logger.error("Redis unavailable while serving %s: %s", request.path, exc)
    message = unavailable_message(exc)
    if wants_json(request):
        response = JsonResponse({"error": "redis_unavailable", "detail": message}, status=503)
    else:
        html = render_to_string(
            "503_redis.html", {"redis_url": display_url(), "reason": str(exc)}, request=None
        )
        response = HttpResponse(html, status=503)
    response["Retry-After"] = "5"
    response["Cache-Control"] = "no-store"
    return response


class RedisUnavailableMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception):
        if isinstance(exception, UNAVAILABLE_ERRORS):
            return redis_unavailable_response(request, exception)
        return None
