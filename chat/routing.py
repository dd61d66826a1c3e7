"""Websocket routes (mounted by agenticpal.asgi behind the origin check + AuthMiddlewareStack).

Every path reaches a consumer, which closes with a code a client can act on: any
segment after ``ws/chat/`` goes to :class:`ChatConsumer` (4400 when it is not a valid
thread id), anything else to :class:`NotFoundConsumer` (4404). An unrouted path would
make Channels raise, which uvicorn answers with an HTTP 500.
"""

from django.urls import re_path

from chat.consumers import ChatConsumer, NotFoundConsumer

websocket_urlpatterns = [
    # [\s\S]: any character, a newline too (a %0A in the URL arrives as one).
    re_path(r"^ws/chat/(?P<thread_id>[\s\S]*)/$", ChatConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
