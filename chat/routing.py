"""Websocket routes (mounted by agenticpal.asgi behind AllowedHostsOriginValidator + AuthMiddlewareStack)."""

from django.urls import re_path

from chat.consumers import ChatConsumer

# Thread ids are client-chosen: letters, digits, "_" and "-", 1-64 characters.
websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<thread_id>[A-Za-z0-9_-]{1,64})/$", ChatConsumer.as_asgi()),
]
