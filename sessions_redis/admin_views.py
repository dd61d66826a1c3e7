"""Admin pages for the sessions in Redis db 0.

:class:`RedisSessionAdmin` serves them for an unmanaged model through
:class:`agenticpal.redis_admin.RedisPagesAdmin`: the admin's own URL names, staff only,
the model's permissions, every action written to ``LogEntry``. Key guarantee: no page,
URL or ``LogEntry`` holds a usable session id (a bearer secret); pages show a short
prefix and links carry an expiring encrypted reference (:func:`session_ref`). See the
README's "Operating: the admin and maintenance commands" section.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.crypto import salted_hmac
from django.utils.http import urlencode

from agenticpal.redis_admin import RedisPagesAdmin, cursor_param, page_size_param, pager_links
from sessions_redis import admin_service as service

REF_MAX_AGE_SECONDS = 24 * 3600


# --- session references in URLs ------------------------------------------------------


def _ref_fernet() -> Fernet:
    digest = salted_hmac("sessions_redis.admin_views.session_ref", "", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def session_ref(session_id: str) -> str:
    """An encrypted, expiring stand-in for ``session_id`` that is safe to put in a URL."""
    return _ref_fernet().encrypt(session_id.encode()).decode()


def session_id_from_ref(ref: str) -> str:
    try:
        return _ref_fernet().decrypt(ref.encode(), ttl=REF_MAX_AGE_SECONDS).decode()
    except (InvalidToken, UnicodeError):
        raise Http404(
            "This session link is invalid or older than a day; open the session from the list again."
        ) from None


def session_repr(row: service.SessionRow) -> str:
    return f"session {row.short_id}… of {row.user_email or 'anonymous'}"


# --- sessions -------------------------------------------------------------------------


class RedisSessionAdmin(RedisPagesAdmin):
    def get_urls(self) -> list:
        return [
            path("", self.view(self.list_view), name=self.url_name("changelist")),
            path("sign-out/", self.view(self.sign_out_view), name=self.url_name("signout")),
            path("<str:ref>/", self.view(self.detail_view), name=self.url_name("change")),
            path("<str:ref>/delete/", self.view(self.delete_view), name=self.url_name("delete")),
        ]

    def list_view(self, request: HttpRequest) -> TemplateResponse:
        self.require(request, "view")
        query = request.GET.get("q", "").strip()
        if query:
            rows = service.search_sessions(query)
            pager = {"prev_link": None, "next_link": None, "page_number": 1}
        else:
            page = service.list_sessions(cursor_param(request), page_size_param(request))
            rows = page.rows
            pager = pager_links(request, page.cursor, page.next_cursor)
        return self.render(
            request,
            "admin/sessions_redis/session_list.html",
            "Sessions in Redis",
            rows=[(row, session_ref(row.session_id)) for row in rows],
            query=query,
            searched_email=query if "@" in query else "",
            **pager,
        )

    def detail_view(self, request: HttpRequest, ref: str) -> TemplateResponse:
        self.require(request, "view")
        session_id = session_id_from_ref(ref)
        try:
            detail = service.session_detail(session_id)
        except service.SessionNotFound as exc:
            raise Http404(str(exc)) from None
        return self.render(
            request,
            "admin/sessions_redis/session_detail.html",
            f"Session {detail.row.short_id}…",
            detail=detail,
            row=detail.row,
            ref=ref,
            breadcrumb_object=(f"Session {detail.row.short_id}…", None),
            conversation_links=_conversation_links(detail.thread_ids),
        )

    def delete_view(self, request: HttpRequest, ref: str) -> HttpResponse:
        self.require(request, "delete")
        session_id = session_id_from_ref(ref)
        try:
            row = service.session_detail(session_id).row
        except service.SessionNotFound as exc:
            raise Http404(str(exc)) from None
        if request.method == "POST":
            if service.delete_session(session_id):
                self.log(request, [row.short_id], "Deleted the session.", reprs=[session_repr(row)])
                messages.success(request, f"Deleted {session_repr(row)}.")
            else:
                messages.warning(request, f"{session_repr(row)} was already gone.")
            return HttpResponseRedirect(reverse(f"admin:{self.url_name('changelist')}"))
        return self.render(
            request,
            "admin/redis/confirm.html",
            "Are you sure?",
            object_label=session_repr(row),
            question=f"Delete {session_repr(row)}? Whoever uses it is signed out at once.",
            cancel_url=reverse(f"admin:{self.url_name('change')}", args=[ref]),
            confirm_label="Yes, delete the session",
            breadcrumb_object=(
                session_repr(row),
                reverse(f"admin:{self.url_name('change')}", args=[ref]),
            ),
        )

    def sign_out_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, "delete")
        email = (request.POST.get("email") or request.GET.get("email") or "").strip()
        if not email:
            raise Http404("Say whose sessions to end: ?email=<address>.")
        rows = service.sessions_for_email(email)
        list_url = reverse(f"admin:{self.url_name('changelist')}")
        if request.method == "POST":
            count = service.sign_out_everywhere(email)
            if rows:
                self.log(
                    request,
                    [row.short_id for row in rows],
                    f"Signed {email} out everywhere ({count} session(s) deleted).",
                    reprs=[session_repr(row) for row in rows],
                )
            messages.success(request, f"Signed {email} out everywhere: {count} session(s) deleted.")
            return HttpResponseRedirect(list_url)
        return self.render(
            request,
            "admin/redis/confirm.html",
            "Are you sure?",
            object_label=email,
            question=(
                f"Sign {email} out everywhere? Their {len(rows)} session(s) are deleted; "
                "their Google credentials are kept (revoke them under Google credentials)."
            ),
            items=[session_repr(row) for row in rows],
            hidden={"email": email},
            cancel_url=f"{list_url}?{urlencode({'q': email})}",
            confirm_label="Yes, sign them out everywhere",
            breadcrumb_object=(email, f"{list_url}?{urlencode({'q': email})}"),
        )


def _conversation_links(thread_ids: list[str]) -> list[tuple[str, str | None]]:
    """(thread id, its admin page or None) for the threads of a session."""
    links = []
    for thread_id in thread_ids:
        try:
            url = reverse("admin:chat_conversation_change", args=[thread_id])
        except NoReverseMatch:  # the chat admin is not installed, or the id is not routable
            url = None
        links.append((thread_id, url))
    return links
