"""The chat HTTP API: JSON endpoints and a Server-Sent Events stream.

Session-authenticated and CSRF-protected like any Django view (the ``X-CSRFToken``
header on POST and DELETE). Every answer is JSON, errors included: 401 signed out, 403
someone else's thread (nothing revealed), 400 / 404 / 405 / 413 / 415 / 429 with a
reason, 503 when Redis is down. ``GET /api/chat/stream`` sends the websocket's events,
one per SSE message with its stream id as ``id:``, so ``EventSource`` resumes after a
dropped connection with ``Last-Event-ID``; without one it starts with a ``history``
event whose id is the thread's last event, so nothing falls between the two.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from redis.exceptions import ResponseError

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message
from chat import events, frames, history, runner, threads

logger = logging.getLogger("chat.api")

SSE_BLOCK_MS = 15_000  # a keep-alive comment at least this often keeps proxies from closing
SSE_RETRY_MS = 2_000  # how long EventSource waits before reconnecting
MAX_STREAM_ID_PART = 2**64 - 1  # a Redis Stream id is two unsigned 64-bit numbers
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

View = Callable[..., Awaitable[HttpResponse]]


def error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def forbidden() -> JsonResponse:
    return error(403, "forbidden", "This thread is not yours.")


def bad_thread_id(
    detail: str = "thread_id must be 1-64 letters, digits, '_' or '-'.",
) -> JsonResponse:
    return error(400, "bad_thread_id", detail)


def api_methods(*methods: str) -> Callable[[View], View]:
    """Like ``require_http_methods``, but the 405 is JSON (with the ``Allow`` header)."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                response = error(
                    405, "method_not_allowed", f"Use {' or '.join(methods)} on {request.path}."
                )
                response["Allow"] = ", ".join(methods)
                return response
            return await view(request, *args, **kwargs)

        return wrapper

    return decorator


def api_csrf(view: View) -> View:
    """CSRF protection as ``csrf_protect`` gives it, after refusing form bodies (415).

    The CSRF middleware looks for ``csrfmiddlewaretoken`` in the form of every POST, so
    a form body reached Django's parsers first: a bad multipart body, 1,000 fields or
    2.5 MB answered an HTML 400 (and logged a traceback), and once a multipart body was
    read as a stream ``request.body`` raised (a 500). The API takes JSON only, and its
    token comes in the ``X-CSRFToken`` header: the middleware skips these views
    (``csrf_exempt``) and the same check runs here once the body is known not to be a form.
    """
    protected = csrf_protect(view)

    @csrf_exempt
    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST" and request.content_type.lower() in FORM_TYPES:
            return error(
                415,
                "unsupported_media_type",
                f"Send JSON with Content-Type: application/json, not {request.content_type}.",
            )
        return await protected(request, *args, **kwargs)

    return wrapper


def json_body(request: HttpRequest) -> Any:
    """The request's JSON body (empty: ``{}``), bounded by :mod:`chat.frames`.

    Raises :class:`chat.frames.FrameError` (its ``status`` is 400 or 413). A declared
    ``Content-Length`` over the limit is refused without reading the body.
    """
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not (declared.isascii() and declared.isdigit()):  # Django's int() would raise
        raise frames.FrameError(f"The Content-Length header is not a number: {declared[:40]!r}.")
    if int(declared) > frames.MAX_BYTES:
        raise frames.too_large(int(declared))
    try:
        body = request.body
    except RequestDataTooBig:  # past DATA_UPLOAD_MAX_MEMORY_SIZE, no Content-Length
        raise frames.FrameTooLarge(
            f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; "
            f"the limit is {frames.MAX_BYTES} bytes."
        ) from None
    return frames.parse(body or b"{}")


def valid_stream_id(value: str | None) -> bool:
    """One of our event ids: ``<ms>-<seq>``, each number fitting in 64 bits (else Redis
    refuses it with "Invalid stream ID")."""
    if value is None or not value.isascii() or not events.validate_event_id(value):
        return False  # isascii: the pattern's \d also matches digits such as "٣"
    return all(int(part) <= MAX_STREAM_ID_PART for part in value.split("-"))


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


async def claim(request: HttpRequest, thread_id: str) -> threads.Opened:
    """Own ``thread_id`` for the signed-in user (a new id is a new thread), in this
    session; falsy when refused (see :func:`chat.threads.aopen`)."""
    email = threads.user_email(request.user)
    return await threads.aopen(email, thread_id, request.session.session_key)


async def owns(request: HttpRequest, thread_id: str) -> bool:
    return await threads.aowns(threads.user_email(request.user), thread_id)


@never_cache
@api_methods("POST")
@api_csrf
@api_login_required
async def post_chat(request: HttpRequest) -> JsonResponse:
    """``{"message": "...", "thread_id"?: "..."}`` -> 202 ``{"thread_id", "message_id"}``."""
    try:
        body = json_body(request)
    except frames.FrameError as exc:
        return error(exc.status, exc.code, str(exc))
    if not isinstance(body, dict):
        return error(400, "bad_request", 'Send a JSON object: {"message": "..."}.')
    reason = threads.check_message(body.get("message"))
    if reason is not None:
        return error(400, "invalid_message", reason)
    thread_id = body.get("thread_id") or threads.new_thread_id()
    if not threads.validate_thread_id(thread_id):
        return bad_thread_id()
    try:
        if not await claim(request, thread_id):
            return forbidden()
    except threads.TooManyThreads as exc:
        return error(429, "too_many_threads", str(exc))
    try:
        message_id = await runner.submit(
            thread_id,
            body["message"],
            threads.user_email(request.user),
            body.get("timezone"),
            body.get("message_id"),
        )
    except runner.InvalidMessage as exc:
        return refused(exc, "invalid_message")
    return JsonResponse({"thread_id": thread_id, "message_id": message_id}, status=202)


def refused(exc: runner.InvalidMessage, code: str) -> JsonResponse:
    """What the runner refused, as JSON: 403 (someone else's thread, nothing said), 409
    (the card is not waiting), 429 (a limit), else 400 with ``code``."""
    if isinstance(exc, runner.NotYourThread):
        return forbidden()
    if isinstance(exc, runner.DecisionGone):
        return error(409, "not_waiting", str(exc))
    if isinstance(exc, runner.TooManyMessages):
        return error(429, "too_many_messages", str(exc))
    return error(400, code, str(exc))


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
    except ResponseError as exc:
        # The headers are sent: a traceback here would only cut the stream. Say why and end.
        logger.error("SSE stream of thread %s ended: Redis refused a read (%s)", thread_id, exc)
        reason = f"The event stream could not be read ({exc}); reload the page."
        yield sse({"type": "error", "reason": reason})


@never_cache
@api_methods("GET")
@api_csrf
@api_login_required
async def chat_stream(request: HttpRequest) -> HttpResponse:
    thread_id = request.GET.get("thread_id", "")
    if not threads.validate_thread_id(thread_id):
        return bad_thread_id("Pass ?thread_id= with 1-64 letters, digits, '_' or '-'.")
    try:
        if not await claim(request, thread_id):  # like the websocket, a new id is a new thread
            return forbidden()
    except threads.TooManyThreads as exc:
        return error(429, "too_many_threads", str(exc))
    last_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or None
    if not valid_stream_id(last_id):
        last_id = None  # not one of our ids: start over with the history
    await runner.recover(thread_id)  # a queue left by a dead process runs for this reader
    response = StreamingHttpResponse(
        event_stream(thread_id, last_id), content_type="text/event-stream"
    )
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


@never_cache
@api_methods("GET")
@api_csrf
@api_login_required
async def thread_list(request: HttpRequest) -> JsonResponse:
    """The user's threads, newest first: ``{"threads": [{"id", "title", "status"}]}``."""
    email = threads.user_email(request.user)
    items = [await history.thread_summary(t) for t in await threads.athreads_for(email)]
    return JsonResponse({"threads": items})


@never_cache
@api_methods("GET", "DELETE")
@api_csrf
@api_login_required
async def thread_detail(request: HttpRequest, thread_id: str) -> JsonResponse:
    if not threads.validate_thread_id(thread_id):
        return bad_thread_id("A thread id is 1-64 letters, digits, '_' or '-'.")
    if not await owns(request, thread_id) and not await threads.arestore(
        threads.user_email(request.user), thread_id, request.session.session_key
    ):
        return forbidden()
    if request.method == "DELETE":
        await threads.adelete(thread_id)
        return JsonResponse({"deleted": thread_id})
    await runner.recover(thread_id)  # a queue left by a dead process runs without a socket
    messages = await history.get_history(thread_id)
    approvals = await history.get_approvals(thread_id)
    status = await history.thread_status(thread_id, approvals)
    return JsonResponse(
        {
            "thread_id": thread_id,
            "status": status,
            "messages": messages,
            "approvals": [{k: v for k, v in a.items() if k != "html"} for a in approvals],
        }
    )


@never_cache
@api_methods("POST")
@api_csrf
@api_login_required
async def post_decisions(request: HttpRequest, thread_id: str) -> JsonResponse:
    """``{"decisions": {"<interrupt id>": {"type": "approve" | "edit" | "reject", "args"?,
    "message"?}}, "message_id"?, "timezone"?}`` -> 202 ``{"thread_id", "message_id"}``; 409 when no
    decision answers a waiting approval (already decided, or gone): nothing runs."""
    try:
        body = json_body(request)
    except frames.FrameError as exc:
        return error(exc.status, exc.code, str(exc))
    if not isinstance(body, dict):
        return error(400, "bad_request", 'Send a JSON object: {"decisions": {...}}.')
    if not threads.validate_thread_id(thread_id):
        return bad_thread_id()
    if not await owns(request, thread_id):
        return forbidden()
    try:
        message_id = await runner.decide(
            thread_id,
            body.get("decisions"),
            threads.user_email(request.user),
            body.get("message_id"),
            body.get("timezone"),
        )
    except runner.InvalidMessage as exc:
        return refused(exc, "invalid_decision")
    return JsonResponse({"thread_id": thread_id, "message_id": message_id}, status=202)


@never_cache
@csrf_exempt  # it changes nothing, and a form body must not be parsed to say so
async def not_found(request: HttpRequest) -> JsonResponse:
    """Any ``/api/`` path that is not an endpoint: a JSON 404, not Django's page."""
    return error(
        404,
        "not_found",
        f"No API endpoint at {request.path}; the endpoints are /api/chat, "
        "/api/chat/stream, /api/threads, /api/threads/<thread_id> and "
        "/api/threads/<thread_id>/decisions.",
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: JSON for the API, Django's page everywhere else."""
    if request.path.startswith("/api/"):
        return error(
            403, "csrf_failed", f"CSRF check failed ({reason}). Send the X-CSRFToken header."
        )
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason=reason)
