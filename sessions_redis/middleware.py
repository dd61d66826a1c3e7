"""Django's SessionMiddleware, plus the sliding cookie and a 503 page when Redis is down.

- Sliding cookie: a read renews the record's TTL in Redis (see
  :mod:`sessions_redis.store`) without saving it, so Django would never refresh the
  browser's cookie and it would expire ``SESSION_TTL_SECONDS`` after the last *write*.
  When a live session was read but not modified, the response re-sends the cookie
  with a renewed ``Max-Age``: a header, no Redis command.
- Redis down while saving (the response phase) answers the same 503 page as
  :class:`agenticpal.middleware.RedisUnavailableMiddleware`; the record is written by
  one atomic script, so nothing half-written is left behind.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date

from agenticpal.middleware import redis_unavailable_response
from agenticpal.redis_clients import UNAVAILABLE_ERRORS
from sessions_redis.backend import SessionStore


def _renew_cookie(request: HttpRequest, response: HttpResponse) -> None:
    session = getattr(request, "session", None)
    if (
        not isinstance(session, SessionStore)
        or not session.accessed
        or session.modified
        or session.record is None
        or session.session_key is None
        or response.status_code >= 500
        or settings.SESSION_COOKIE_NAME in response.cookies
        or session.get_expire_at_browser_close()
    ):
        return
    max_age = session.get_expiry_age()
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        session.session_key,
        max_age=max_age,
        expires=http_date(time.time() + max_age),
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE or None,
        httponly=settings.SESSION_COOKIE_HTTPONLY or None,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )


class SessionMiddleware(DjangoSessionMiddleware):
    def process_response(self, request, response):
        try:
            response = super().process_response(request, response)
        except UNAVAILABLE_ERRORS as exc:
            return redis_unavailable_response(request, exc)
        _renew_cookie(request, response)
        return response
