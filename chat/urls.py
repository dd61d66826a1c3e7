"""Chat pages and the JSON API (every other ``/api/`` path is a JSON 404)."""

from django.urls import path, re_path

from chat import api, views

app_name = "chat"
THREAD = "<str:thread_id>"
urlpatterns = [
    path("", views.index, name="index"),
    path("chat/new", views.new_chat, name="new"),
    path(f"chat/{THREAD}/", views.thread, name="thread"),
    path(f"chat/{THREAD}/send", views.send, name="send"),
    path(f"chat/{THREAD}/cancel", views.cancel, name="cancel"),
    path(f"chat/{THREAD}/delete", views.delete, name="delete"),
    path(f"chat/{THREAD}/decide", views.decide, name="decide"),
    path("api/chat", api.post_chat, name="api-chat"),
    path("api/chat/stream", api.chat_stream, name="api-stream"),
    path("api/threads", api.thread_list, name="api-threads"),
    path(f"api/threads/{THREAD}", api.thread_detail, name="api-thread"),
    path(f"api/threads/{THREAD}/decisions", api.post_decisions, name="api-decisions"),
    # Also "/api" itself: were only "/api/" to match, APPEND_SLASH would redirect a POST.
    re_path(r"^api(?:/[\s\S]*)?$", api.not_found, name="api-not-found"),
]
