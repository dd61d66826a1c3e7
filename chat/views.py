"""Server-rendered chat pages.

Every page works without JavaScript: the message box is a form that POSTs and
redirects back (the reply appears on the next load; the page refreshes itself while
a reply is pending). ``chat/static/chat/app.js`` upgrades the same page to a
websocket with streamed tokens, a stop button and reconnect with backoff.

Replies (sanitised Markdown) and Workspace tool results (an agenda, an inbox, a
checklist) are rendered by :mod:`chat.render`, the same HTML as the live stream's.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from chat import api, approvals, history, pending, runner, threads
from chat.render import render_approval, render_markdown
from workspace import access

EMPTY_MESSAGE_HINT = "Type a message first: an empty message is not sent."


def model_label() -> str:
    """What the UI says about the model: the offline model is named as such."""
    name = settings.AGENTICPAL_MODEL
    return name if name else "Offline demo model (built in, no network)"


def login_required(view):
    """Django's ``login_required`` for async views, resolving the user with
    :func:`chat.api.request_user` (which works with social-auth's backends too)."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = await api.request_user(request)
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return await view(request, *args, **kwargs)

    return wrapper


async def thread_summaries(request: HttpRequest) -> list[dict]:
    items = []
    for thread_id in await threads.athreads_for(threads.user_email(request.user)):
        summary = await history.thread_summary(thread_id)
        title = summary["title"]  # "untitled": app.js names it when its first message is sent
        items.append({**summary, "title": title or "New chat", "untitled": not title})
    return items


def forbidden_page(request: HttpRequest) -> HttpResponse:
    html = render_to_string("chat/forbidden.html", request=request)
    return HttpResponseForbidden(html)


async def claim_or_refusal(request: HttpRequest, thread_id: str) -> threads.Opened | HttpResponse:
    """Claim ``thread_id`` for the user (a new id is a new chat): what the claim found,
    or the page to answer instead when it is refused (an invalid id or someone else's:
    403; over the user's chat limit: back to the list, saying so)."""
    try:
        if threads.validate_thread_id(thread_id) and (
            opened := await api.claim(request, thread_id)
        ):
            return opened
    except threads.TooManyThreads as exc:
        messages.error(request, str(exc))
        return redirect(reverse("chat:index"))
    return forbidden_page(request)


@never_cache
@require_GET
@login_required
async def index(request: HttpRequest) -> HttpResponse:
    """The thread list, newest first."""
    context = {
        "threads": await thread_summaries(request),
        "model_label": model_label(),
        "google": await access.connection(threads.user_email(request.user)),
    }
    return render(request, "chat/index.html", context)


@require_POST
@login_required
async def new_chat(request: HttpRequest) -> HttpResponse:
    return redirect("chat:thread", thread_id=threads.new_thread_id())


@never_cache
@require_GET
@login_required
async def thread(request: HttpRequest, thread_id: str) -> HttpResponse:
    """One conversation; a new id becomes a new thread of the signed-in user."""
    opened = await claim_or_refusal(request, thread_id)
    if isinstance(opened, HttpResponse):
        return opened
    new = opened == threads.Opened.NEW_AND_EMPTY  # a new chat: nothing to read back
    conversation = [] if new else await history.get_history(thread_id)
    for message in conversation:
        if message["role"] == "assistant":
            message["html"] = render_markdown(message["content"])

    replying = await pending.ahas_pending(thread_id)  # a reply is on its way
    waiting = [
        {**a, "html": render_approval(thread_id, a["interrupt_id"], a["card"], request)}
        for a in ([] if new else await history.get_approvals(thread_id))
    ]
    context = {
        "thread_id": thread_id,
        "conversation": conversation,
        "threads": await thread_summaries(request),
        "model_label": model_label(),
        "google": await access.connection(threads.user_email(request.user)),
        "pending": replying,
        "approvals": waiting,
        "max_message_bytes": threads.MAX_MESSAGE_BYTES,
    }
    return render(request, "chat/thread.html", context)


@require_POST
@login_required
async def send(request: HttpRequest, thread_id: str) -> HttpResponse:
    """The no-JavaScript path: queue the message, then redirect back to the thread."""
    if isinstance(refusal := await claim_or_refusal(request, thread_id), HttpResponse):
        return refusal
    text = request.POST.get("message", "")
    if not text.strip():  # the same hint as the page's with JavaScript
        messages.warning(request, EMPTY_MESSAGE_HINT)
        return redirect("chat:thread", thread_id=thread_id)
    try:
        await runner.submit(thread_id, text, threads.user_email(request.user))
    except runner.InvalidMessage as exc:
        messages.error(request, str(exc))
    return redirect("chat:thread", thread_id=thread_id)


@require_POST
@login_required
async def cancel(request: HttpRequest, thread_id: str) -> HttpResponse:
    if not await api.owns(request, thread_id):
        return forbidden_page(request)
    await runner.cancel(thread_id)
    return redirect("chat:thread", thread_id=thread_id)


@require_POST
@login_required
async def delete(request: HttpRequest, thread_id: str) -> HttpResponse:
    if not await api.owns(request, thread_id):
        return forbidden_page(request)
    await threads.adelete(thread_id)
    messages.info(request, "Chat deleted.")
    return redirect(reverse("chat:index"))


@require_POST
@login_required
async def decide(request: HttpRequest, thread_id: str) -> HttpResponse:
    """The no-JavaScript approval card: ``interrupt_id``, ``decision`` (approve, edit or
    reject), ``message`` (why, on reject) and, for an edit, the card's fields as
    ``arg_<name>`` (see :func:`chat.approvals.edit_from_form`)."""
    if not threads.validate_thread_id(thread_id) or not await api.owns(request, thread_id):
        return forbidden_page(request)
    interrupt_id = request.POST.get("interrupt_id", "")
    decision: dict = {"type": request.POST.get("decision", "")}
    if decision["type"] == "reject":
        decision["message"] = request.POST.get("message", "")
    elif decision["type"] == "edit":
        decision["args"] = approvals.edit_from_form(request.POST)
    try:
        await runner.decide(thread_id, {interrupt_id: decision}, threads.user_email(request.user))
    except runner.InvalidMessage as exc:
        messages.error(request, str(exc))
    return redirect("chat:thread", thread_id=thread_id)
