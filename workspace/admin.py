"""Google credentials in the admin: who has them (metadata only) and revoking them.

Rows are read through the credentials model (:class:`GoogleCredentials`): scopes,
expiry and whether a refresh token is kept, never a secret. Revoking revokes the grant
at Google and deletes ``credentials:<email>`` (:func:`credentials.revoke_and_delete`);
every action is written to ``LogEntry``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from agenticpal import redis_keys as keys
from agenticpal.redis_admin import (
    DEFAULT_PAGE_SIZE,
    RedisPagesAdmin,
    cursor_param,
    format_duration,
    page_size_param,
    pager_links,
    scan_page,
    ttl_seconds,
    values_and_ttls,
)
from agenticpal.redis_clients import get_client
from workspace import credentials
from workspace.models import GoogleCredential


@dataclass(frozen=True)
class CredentialRow:
    """What an operator may know about a user's Google credentials: never the secrets."""

    user_email: str
    scopes: list[str]
    expiry: datetime | None
    has_refresh_token: bool
    ttl_seconds: int | None
    problem: str = ""

    @property
    def ttl_text(self) -> str:
        return format_duration(self.ttl_seconds)

    @property
    def expired(self) -> bool:
        return self.expiry is not None and self.expiry <= datetime.now(UTC)


def _row(email: str, raw: bytes, pttl: int) -> CredentialRow:
    ttl = ttl_seconds(pttl)
    try:
        stored = credentials.GoogleCredentials.from_json(raw)
    except credentials.encryption.InvalidToken:
        problem = "unreadable: encrypted with a key that is not in CREDENTIALS_ENCRYPTION_KEY"
        return CredentialRow(email, [], None, False, ttl, problem=problem)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return CredentialRow(email, [], None, False, ttl, problem=f"unreadable ({exc!r})")
    return CredentialRow(
        user_email=email,
        scopes=[s for s in stored.scopes if isinstance(s, str)],
        expiry=stored.expiry,
        has_refresh_token=bool(stored.refresh_token),
        ttl_seconds=ttl,
    )


def _rows(client: redis.Redis, emails: Iterable[str]) -> list[CredentialRow]:
    return [_row(*found) for found in values_and_ttls(client, emails, keys.credentials_key)]


@dataclass(frozen=True)
class CredentialPage:
    rows: list[CredentialRow]
    cursor: int
    next_cursor: int


def list_credentials(
    cursor: int = 0,
    page_size: int = DEFAULT_PAGE_SIZE,
    query: str = "",
    *,
    client: redis.Redis | None = None,
) -> CredentialPage:
    """Users with Google credentials: a SCAN page of ``credentials:*`` (or one user)."""
    client = client or get_client()
    query = query.strip()
    if query:
        return CredentialPage(_rows(client, dict.fromkeys([query, query.lower()])), 0, 0)
    found, next_cursor = scan_page(client, keys.CREDENTIALS_PREFIX, cursor, page_size)
    rows = sorted(_rows(client, found), key=lambda row: row.user_email)
    return CredentialPage(rows, int(cursor), next_cursor)


class GoogleCredentialAdmin(RedisPagesAdmin):
    def get_urls(self) -> list:
        return [
            path("", self.view(self.list_view), name=self.url_name("changelist")),
            path("revoke/", self.view(self.revoke_view), name=self.url_name("revoke")),
        ]

    def list_view(self, request: HttpRequest) -> TemplateResponse:
        self.require(request, "view")
        query = request.GET.get("q", "").strip()
        page = list_credentials(cursor_param(request), page_size_param(request), query=query)
        pager = (
            {"prev_link": None, "next_link": None, "page_number": 1}
            if query
            else pager_links(request, page.cursor, page.next_cursor)
        )
        return self.render(
            request,
            "admin/workspace/credential_list.html",
            "Users with Google credentials",
            rows=page.rows,
            query=query,
            **pager,
        )

    def revoke_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, "delete")
        email = (request.POST.get("email") or request.GET.get("email") or "").strip()
        rows = list_credentials(query=email).rows if email else []
        if not rows:
            raise Http404(f"No Google credentials are stored for {email or 'that user'}.")
        list_url = reverse(f"admin:{self.url_name('changelist')}")
        if request.method == "POST":
            confirmed = credentials.revoke_and_delete(rows[0].user_email)
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
            "admin/redis/confirm.html",
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
            breadcrumb_object=(
                rows[0].user_email,
                f"{list_url}?{urlencode({'q': rows[0].user_email})}",
            ),
        )


admin.site.register(GoogleCredential, GoogleCredentialAdmin)
