"""Admin pages for what lives in Redis db 0: sessions and Google credentials.

How they sit in the admin: each page belongs to an unmanaged model (no table, see
:mod:`sessions_redis.models`) registered with a :class:`RedisPagesAdmin`, whose
``get_urls`` replaces the ORM views with these. The URL names stay the admin's own
(``admin:sessions_redis_redissession_changelist``...), so the admin index, the app
index, the sidebar and breadcrumbs link to them as to any model, every view goes
through ``admin_site.admin_view`` (staff only, CSRF, never cached), and permissions
are the model's: ``view_*`` to look, ``delete_*`` to delete or revoke.

Session ids are bearer secrets: whoever holds one is signed in. Pages show only a
short prefix, and links carry an encrypted reference (Fernet, key derived from
``SECRET_KEY``, valid for a day) instead of the id, so URLs in access logs, browser
history and ``LogEntry`` never contain a usable session id.

Every action is written to Django's ``LogEntry`` (who, what, when), visible under
"Recent actions" and in ``django_admin_log``.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.crypto import salted_hmac

from sessions_redis import admin_service as service

REF_MAX_AGE_SECONDS = 24 * 3600
CURSOR_TRAIL_LIMIT = 50  # how many "previous page" cursors the querystring remembers


# --- shared by every Redis-backed admin page (chat.admin_views uses it too) ----------


class RedisPagesAdmin(admin.ModelAdmin):
    """A ModelAdmin whose pages read Redis instead of the ORM (subclasses give the URLs)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def url_name(self, page: str) -> str:
        opts = self.model._meta
        return f"{opts.app_label}_{opts.model_name}_{page}"

    def view(self, func) -> Any:
        return self.admin_site.admin_view(func)

    def require(self, request: HttpRequest, action: str) -> None:
        """403 unless the user has the model's ``action`` permission (view, delete, ...)."""
        opts = self.model._meta
        if not request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}"):
            raise PermissionDenied

    def render(
        self, request: HttpRequest, template: str, title: str, **context: Any
    ) -> TemplateResponse:
        opts = self.model._meta
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": opts,
                "app_label": opts.app_label,
                "title": title,
                "has_view_permission": self.has_view_permission(request),
                "has_delete_permission": self.has_delete_permission(request),
                **context,
            },
        )

    def log(
        self,
        request: HttpRequest,
        object_ids: list[str],
        message: str,
        action_flag: int = DELETION,
        reprs: list[str] | None = None,
    ) -> None:
        """One ``LogEntry`` per object, naming the staff user (Django's own audit trail)."""
        pk_name = self.model._meta.pk.name
        texts = reprs or [None] * len(object_ids)
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=[
                _Logged(self.model(**{pk_name: object_id}), text)
                for object_id, text in zip(object_ids, texts, strict=True)
            ],
            action_flag=action_flag,
            change_message=message,
        )


class _Logged:
    """What ``log_actions`` reads from an object (model, pk, text) for a row that has no table."""

    def __init__(self, obj: models.Model, text: str | None = None) -> None:
        self._meta = obj._meta
        self.pk = obj.pk
        self._text = text or str(obj)

    def __str__(self) -> str:
        return self._text


def cursor_param(request: HttpRequest, name: str = "cursor") -> int:
    try:
        return max(0, int(request.GET.get(name, "0")))
    except ValueError:
        return 0


def cursor_trail(request: HttpRequest) -> list[int]:
    """The cursors of the pages before this one (for "previous"), oldest first."""
    trail = []
    for part in request.GET.get("trail", "").split(","):
        if part.isdigit():
            trail.append(int(part))
    return trail[-CURSOR_TRAIL_LIMIT:]


def pager_links(request: HttpRequest, cursor: int, next_cursor: int) -> dict[str, str | None]:
    """Querystrings for the previous and next SCAN pages (None when there is none)."""
    trail = cursor_trail(request)
    size = request.GET.get("n")
    extra = f"&n={size}" if size and size.isdigit() else ""
    prev_link = None
    if cursor:
        previous, earlier = (trail[-1], trail[:-1]) if trail else (0, [])
        prev_link = f"?cursor={previous}&trail={','.join(map(str, earlier))}{extra}"
    next_link = None
    if next_cursor:
        newer = [*trail, cursor][-CURSOR_TRAIL_LIMIT:]
        next_link = f"?cursor={next_cursor}&trail={','.join(map(str, newer))}{extra}"
    return {"prev_link": prev_link, "next_link": next_link, "page_number": len(trail) + 1}


def page_size_param(request: HttpRequest) -> int:
    try:
        return int(request.GET.get("n", service.DEFAULT_PAGE_SIZE))
    except ValueError:
        return service.DEFAULT_PAGE_SIZE


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
            "admin/sessions_redis/confirm.html",
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
            "admin/sessions_redis/confirm.html",
            "Are you sure?",
            object_label=email,
            question=(
                f"Sign {email} out everywhere? Their {len(rows)} session(s) are deleted; "
                "their Google credentials are kept (revoke them under Google credentials)."
            ),
            items=[session_repr(row) for row in rows],
            hidden={"email": email},
            cancel_url=f"{list_url}?q={email}",
            confirm_label="Yes, sign them out everywhere",
            breadcrumb_object=(email, f"{list_url}?q={email}"),
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


# --- Google credentials ----------------------------------------------------------------


class GoogleCredentialAdmin(RedisPagesAdmin):
    def get_urls(self) -> list:
        return [
            path("", self.view(self.list_view), name=self.url_name("changelist")),
            path("revoke/", self.view(self.revoke_view), name=self.url_name("revoke")),
        ]

    def list_view(self, request: HttpRequest) -> TemplateResponse:
        self.require(request, "view")
        query = request.GET.get("q", "").strip()
        page = service.list_credentials(
            cursor_param(request), page_size_param(request), query=query
        )
        pager = (
            {"prev_link": None, "next_link": None, "page_number": 1}
            if query
            else pager_links(request, page.cursor, page.next_cursor)
        )
        return self.render(
            request,
            "admin/sessions_redis/credential_list.html",
            "Users with Google credentials",
            rows=page.rows,
            query=query,
            **pager,
        )

    def revoke_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, "delete")
        email = (request.POST.get("email") or request.GET.get("email") or "").strip()
        rows = service.list_credentials(query=email).rows if email else []
        if not rows:
            raise Http404(f"No Google credentials are stored for {email or 'that user'}.")
        list_url = reverse(f"admin:{self.url_name('changelist')}")
        if request.method == "POST":
            confirmed = service.revoke_credentials(rows[0].user_email)
            note = "Google confirmed" if confirmed else "Google could not be reached"
            self.log(request, [rows[0].user_email], f"Revoked the Google grant ({note}).")
            level = messages.SUCCESS if confirmed else messages.WARNING
            messages.add_message(
                request,
                level,
                f"Deleted the Google credentials of {rows[0].user_email}; {note} the revocation.",
            )
            return HttpResponseRedirect(list_url)
        return self.render(
            request,
            "admin/sessions_redis/confirm.html",
            "Are you sure?",
            object_label=rows[0].user_email,
            question=(
                f"Revoke the Google access of {rows[0].user_email}? The grant is revoked at Google "
                "and the stored tokens are deleted; the assistant cannot use their Google data "
                "until they sign in with Google again."
            ),
            hidden={"email": rows[0].user_email},
            cancel_url=list_url,
            confirm_label="Yes, revoke",
            breadcrumb_object=(rows[0].user_email, f"{list_url}?q={rows[0].user_email}"),
        )
