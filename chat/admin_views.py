"""Admin pages for conversations: LangGraph checkpoints in Redis db 1 (time travel).

:class:`ConversationAdmin` is arranged like :mod:`sessions_redis.admin_views` (an
unmanaged model whose ``get_urls`` serves these pages under the admin's own URL names;
staff only; ``view_conversation`` to look, ``delete_conversation`` to delete,
``fork_conversation`` to fork), and every action is written to ``LogEntry``. Pages: the
list, a thread's checkpoint history with "fork from here", and delete; the logic is in
:mod:`chat.admin_service`. See the README's "Operating: the admin and maintenance
commands" section.

Approvals are read only here: the list and the detail show the thread's status, the
detail its actions waiting for the owner and the audit trail of executed ones (who
approved, when, what Google returned). No page decides an approval (only the owner
does, in their chat), the detail page answers GET only, and nothing about approvals is
written to ``LogEntry``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.models import ADDITION
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.http import urlencode

from agenticpal.redis_admin import RedisPagesAdmin
from chat import admin_service as service
from chat import threads


class ConversationAdmin(RedisPagesAdmin):
    def get_urls(self) -> list:
        return [
            path("", self.view(self.list_view), name=self.url_name("changelist")),
            path("<str:thread_id>/", self.view(self.detail_view), name=self.url_name("change")),
            path(
                "<str:thread_id>/delete/", self.view(self.delete_view), name=self.url_name("delete")
            ),
            path(
                "<str:thread_id>/fork/<str:checkpoint_id>/",
                self.view(self.fork_view),
                name=self.url_name("fork"),
            ),
        ]

    def _url(self, page: str, *args: str) -> str:
        return reverse(f"admin:{self.url_name(page)}", args=args)

    def list_view(self, request: HttpRequest) -> TemplateResponse:
        self.require(request, "view")
        query = request.GET.get("q", "").strip()
        prev_link = next_link = None
        total = None
        if query:
            rows = service.search_conversations(query)
            page_number = 1
        else:
            try:
                offset = max(0, int(request.GET.get("o", "0")))
                size = int(request.GET.get("n", service.DEFAULT_PAGE_SIZE))
            except ValueError:
                offset, size = 0, service.DEFAULT_PAGE_SIZE
            page = service.list_conversations(offset, size)
            rows, total = page.rows, page.total
            page_number = offset // page.page_size + 1
            if page.prev_offset is not None:
                prev_link = "?" + urlencode({"o": page.prev_offset, "n": page.page_size})
            if page.next_offset is not None:
                next_link = "?" + urlencode({"o": page.next_offset, "n": page.page_size})
        return self.render(
            request,
            "admin/chat/conversation_list.html",
            "Conversations",
            rows=rows,
            query=query,
            total=total,
            prev_link=prev_link,
            next_link=next_link,
            page_number=page_number,
            sessions_url=_sessions_url(),
        )

    def _detail(self, thread_id: str) -> service.ConversationDetail:
        try:
            return service.conversation_detail(thread_id)
        except service.ConversationNotFound as exc:
            raise Http404(str(exc)) from None

    def detail_view(self, request: HttpRequest, thread_id: str) -> HttpResponse:
        self.require(request, "view")
        if request.method not in ("GET", "HEAD"):  # read only: approvals are the owner's
            return HttpResponseNotAllowed(["GET", "HEAD"])
        detail = self._detail(thread_id)
        opts = self.model._meta
        return self.render(
            request,
            "admin/chat/conversation_detail.html",
            f"Conversation {thread_id}",
            detail=detail,
            row=detail.row,
            breadcrumb_object=(f"Conversation {thread_id}", None),
            can_fork=request.user.has_perm(f"{opts.app_label}.fork_{opts.model_name}"),
            sessions_url=_sessions_url(),
        )

    def delete_view(self, request: HttpRequest, thread_id: str) -> HttpResponse:
        self.require(request, "delete")
        detail = self._detail(thread_id)
        label = f"conversation {thread_id} of {detail.row.owner or 'nobody'}"
        if request.method == "POST":
            try:
                owner = service.delete_conversation(thread_id)
            except threads.ThreadBusy as exc:
                messages.error(request, str(exc))
                return HttpResponseRedirect(self._url("change", thread_id))
            self.log(
                request,
                [thread_id],
                f"Deleted the conversation ({detail.row.checkpoints} checkpoint(s)) of "
                f"{owner or 'nobody'}.",
                reprs=[label],
            )
            messages.success(request, f"Deleted {label}.")
            return HttpResponseRedirect(self._url("changelist"))
        return self.render(
            request,
            "admin/redis/confirm.html",
            "Are you sure?",
            question=(
                f"Delete {label}? Its {detail.row.checkpoints} checkpoint(s) "
                f"({detail.row.size_text}) are removed from Redis and it disappears from the "
                "owner's list. This cannot be undone."
            ),
            cancel_url=self._url("change", thread_id),
            confirm_label="Yes, delete the conversation",
            breadcrumb_object=(f"Conversation {thread_id}", self._url("change", thread_id)),
        )

    def fork_view(self, request: HttpRequest, thread_id: str, checkpoint_id: str) -> HttpResponse:
        self.require(request, "fork")
        detail = self._detail(thread_id)
        point = next((c for c in detail.history if c.checkpoint_id == checkpoint_id), None)
        if point is None:
            raise Http404(f"Thread {thread_id!r} has no checkpoint {checkpoint_id!r}.")
        if request.method == "POST":
            try:
                new_id = service.fork(thread_id, checkpoint_id, owner=detail.row.owner)
            except (service.CannotFork, service.ConversationNotFound) as exc:
                messages.error(request, str(exc))
                return HttpResponseRedirect(self._url("change", thread_id))
            self.log(
                request,
                [new_id],
                f"Forked from conversation {thread_id} at checkpoint {checkpoint_id} "
                f"(step {point.step}) for {detail.row.owner or 'nobody'}.",
                action_flag=ADDITION,
                reprs=[f"conversation {new_id} of {detail.row.owner or 'nobody'}"],
            )
            messages.success(
                request,
                f"Created conversation {new_id} for {detail.row.owner or 'nobody'} from step "
                f"{point.step} of {thread_id}; it continues in chat from there.",
            )
            return HttpResponseRedirect(self._url("change", new_id))
        return self.render(
            request,
            "admin/redis/confirm.html",
            "Fork this conversation?",
            question=(
                f"Create a new conversation for {detail.row.owner or 'nobody'} whose history "
                f"ends at step {point.step} ({point.source}) of {thread_id}, with "
                f"{len(point.messages)} message(s)? The original is not changed."
                + (f" Not possible here: {point.fork_problem}." if point.fork_problem else "")
            ),
            items=[f"{m.role}: {m.preview or m.detail}" for m in point.messages],
            cancel_url=self._url("change", thread_id),
            confirm_label="Yes, fork from here",
            breadcrumb_object=(f"Conversation {thread_id}", self._url("change", thread_id)),
        )


def _sessions_url() -> str | None:
    try:
        return reverse("admin:sessions_redis_redissession_changelist")
    except NoReverseMatch:  # the sessions admin is not installed
        return None
