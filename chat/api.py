"""The chat HTTP API: JSON endpoints and a Server-Sent Events stream.

Session-authenticated and CSRF-protected like any Django view (send the
``X-CSRFToken`` header with POST and DELETE). Anonymous callers get a JSON 401,
a thread of someone else a JSON 403 that says nothing about it, and Redis being
down a JSON 503 from :mod:`agenticpal.middleware`.

``GET /api/chat/stream?thread_id=`` sends the same event objects as the websocket,
one per SSE message with its stream id in the ``id:`` line, so ``EventSource``
resumes after a dropped connection by sending ``Last-Event-ID``. A stream opened
without it starts with a ``history`` event (the conversation so far) whose id is the
last event of the thread at that moment: nothing falls between the two.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message
from chat import events, history, runner, threads

logger = logging.getLogger("chat.api")

SSE_BLOCK_MS = 15_000  # a keep-alive comment at least this often keeps proxies from closing
SSE_RETRY_MS = 2_000  # how long EventSource waits before reconnecting

View = Callable[..., Awaitable[HttpResponse]]


def error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def forbidden() -> JsonResponse:
    return error(403, "forbidden", "This thread is not yours.")


async def request_user(request: HttpRequest):
    """The signed-in user (or AnonymousUser), also set as ``request.user`` for templates.

    ``request.auser()`` needs ``backend.aget_user``, which social-auth's Google backend
    does not have; for such a backend Django's own ``get_user`` runs in a thread.
    """
    backend_path = await request.session.aget(auth.BACKEND_SESSION_KEY)
    if backend_path in settings.AUTHENTICATION_BACKENDS and not hasattr(
        auth.load_backend(backend_path), "aget_user"
    ):
        user = await sync_to_async(auth.get_user)(request)
    else:
        user = await request.auser()
    request.user = user
    return user


def api_login_required(view: View) -> View:
    """Like ``login_required``, but answers a JSON 401 instead of redirecting."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = await request_user(request)
        if not user.is_authenticated:
            return error(401, "unauthenticated", "Sign in first.")
        return await view(request, *args, **kwargs)

    return wrapper


async def claim(request: HttpRequest, thread_id: str) -> bool:
    """Own ``thread_id`` for the signed-in user (a new id is a new thread), in this session."""
    email = threads.user_email(request.user)
    return await threads.aclaim(email, thread_id, request.session.session_key)


async def owns(request: HttpRequest, thread_id: str) -> bool:
    return await threads.aowns(threads.user_email(request.user), thread_id)


@never_cache
@require_http_methods(["POST"])
@api_login_required
async def post_chat(request: HttpRequest) -> JsonResponse:
    """``{"message": "...", "thread_id"?: "..."}`` -> 202 ``{"thread_id", "message_id"}``."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return error(400, "bad_request", "The body is not valid JSON.")
    if not isinstance(body, dict):
        return error(400, "bad_request", 'Send a JSON object: {"message": "..."}.')
    reason = threads.check_message(body.get("message"))
    if reason is not None:
        return error(400, "invalid_message", reason)
    thread_id = body.get("thread_id") or threads.new_thread_id()
    if not threads.validate_thread_id(thread_id):
        return error(400, "bad_thread_id", "thread_id must be 1-64 letters, digits, '_' or '-'.")
    if not await claim(request, thread_id):
        return forbidden()
    try:
        message_id = await runner.submit(
            thread_id, body["message"], threads.user_email(request.user), body.get("timezone")
        )
    except runner.InvalidMessage as exc:
        return error(400, "invalid_message", str(exc))
    return JsonResponse({"thread_id": thread_id, "message_id": message_id}, status=202)


def sse(event: dict) -> bytes:
    data = json.dumps(event, ensure_ascii=False)
    head = f"id: {event['id']}\n" if event.get("id") else ""
    return f"{head}data: {data}\n\n".encode()


async def event_stream(thread_id: str, last_id: str | None) -> AsyncIterator[bytes]:
    yield f"retry: {SSE_RETRY_MS}\n\n".encode()
    try:
        if last_id is None:
            last_id = await events.last_id(thread_id)
            messages = await history.get_history(thread_id)
            yield sse(
                {"type": "history", "id": last_id, "thread_id": thread_id, "messages": messages}
            )
        task = asyncio.current_task()
        while True:
            batch = await events.read_since(thread_id, last_id, block_ms=SSE_BLOCK_MS)
            if task is not None and task.cancelling():
                # The client went away and Django cancelled the response, but redis-py can
                # swallow a CancelledError raised inside a command: stop here ourselves.
                raise asyncio.CancelledError
            if not batch:
                yield b": keep-alive\n\n"
                continue
            for event in batch:
                last_id = event["id"]
                yield sse(event)
    except UNAVAILABLE_ERRORS as exc:
        # EventSource reconnects by itself (with Last-Event-ID) after `retry` ms.
        logger.warning("SSE stream of thread %s ended: Redis unavailable (%s)", thread_id, exc)
        reason = unavailable_message(exc)
        yield f"event: unavailable\ndata: {json.dumps({'reason': reason})}\n\n".encode()


@never_cache
@require_http_methods(["GET"])
@api_login_required
async def chat_stream(request: HttpRequest) -> HttpResponse:
    thread_id = request.GET.get("thread_id", "")
    if not threads.validate_thread_id(thread_id):
        return error(
            400, "bad_thread_id", "Pass ?thread_id= with 1-64 letters, digits, '_' or '-'."
        )
    if not await claim(request, thread_id):  # like the websocket, a new id is a new thread
        return forbidden()
    last_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or None
    if last_id is not None and not events.validate_event_id(last_id):
        last_id = None  # not one of our ids: start over with the history
    response = StreamingHttpResponse(
        event_stream(thread_id, last_id), content_type="text/event-stream"
    )
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


@never_cache
@require_http_methods(["GET"])
@api_login_required
async def thread_list(request: HttpRequest) -> JsonResponse:
    """The user's threads, newest first: ``{"threads": [{"id", "title"}]}``."""
    items = []
    for thread_id in await threads.athreads_for(threads.user_email(request.user)):
        items.append({"id": thread_id, "title": await history.thread_title(thread_id)})
    return JsonResponse({"threads": items})


@never_cache
@require_http_methods(["GET", "DELETE"])
@api_login_required
async def thread_detail(request: HttpRequest, thread_id: str) -> JsonResponse:
    if not await owns(request, thread_id):
        return forbidden()
    if request.method == "DELETE":
        await threads.adelete(thread_id)
        return JsonResponse({"deleted": thread_id})
    messages = await history.get_history(thread_id)
    return JsonResponse({"thread_id": thread_id, "messages": messages})


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: JSON for the API, Django's page everywhere else."""
    if request.path.startswith("/api/"):
        return error(
            403, "csrf_failed", f"CSRF check failed ({reason}). Send the X-CSRFToken header."
        )
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason=reason)
