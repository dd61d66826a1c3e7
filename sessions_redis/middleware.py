"""Django's SessionMiddleware, plus a 503 page when Redis is down while saving."""

from __future__ import annotations

from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware

from agenticpal.middleware import redis_unavailable_response
from agenticpal.redis_clients import UNAVAILABLE_ERRORS


class SessionMiddleware(DjangoSessionMiddleware):
    def process_response(self, request, response):
        try:
            return super().process_response(request, response)
        except UNAVAILABLE_ERRORS as exc:
            return redis_unavailable_response(request, exc)
