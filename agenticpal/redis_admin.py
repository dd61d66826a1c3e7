"""The generic base of every admin page that reads Redis instead of the ORM.

An app registers an unmanaged model (no table) with a :class:`RedisPagesAdmin`
subclass whose ``get_urls`` gives its own views: the URL names, permissions,
breadcrumbs and ``LogEntry`` audit trail stay the admin's own. The helpers page
through SCAN cursors and read values with their TTLs in one pipeline (GET + PTTL:
looking at a key must not extend its life).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import redis
from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
CURSOR_TRAIL_LIMIT = 50  # how many "previous page" cursors the querystring remembers


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
        return int(request.GET.get("n", DEFAULT_PAGE_SIZE))
    except ValueError:
        return DEFAULT_PAGE_SIZE


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_duration(seconds: int | None) -> str:
    """A remaining TTL for people: ``6d 23h``, ``5h 3m``, ``42s``; ``no expiry`` for None."""
    if seconds is None:
        return "no expiry"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def values_and_ttls(
    client: redis.Redis, names: Iterable[str], key_of: Callable[[str], str]
) -> list[tuple[str, bytes, int]]:
    """``(name, value, pttl)`` of each name's key, in one pipeline; keys gone are skipped.

    GET and PTTL, not the owners' GETEX: looking at a key must not extend its life.
    """
    names = list(dict.fromkeys(names))
    if not names:
        return []
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(key_of(name))
            pipe.pttl(key_of(name))
        replies = pipe.execute()
    return [
        (name, replies[2 * i], replies[2 * i + 1])
        for i, name in enumerate(names)
        if replies[2 * i] is not None
    ]


def scan_page(
    client: redis.Redis, prefix: str, cursor: int, page_size: int
) -> tuple[list[str], int]:
    """One admin page of the names under ``prefix``: whole SCAN batches until at least
    ``page_size`` names (or the end); returns the names and the next cursor (0: the end)."""
    page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
    if isinstance(client, redis.RedisCluster):
        return _scan_cluster_page(client, prefix, int(cursor), page_size)
    found: list[str] = []
    next_cursor = int(cursor)
    while True:
        next_cursor, batch = client.scan(next_cursor, match=f"{prefix}*", count=page_size)
        found.extend(key.decode()[len(prefix) :] for key in batch)
        if next_cursor == 0 or len(found) >= page_size:
            return found, int(next_cursor)


def _scan_cluster_page(
    client: redis.RedisCluster, prefix: str, cursor: int, page_size: int
) -> tuple[list[str], int]:
    """:func:`scan_page` on a Redis Cluster: the primaries one after another (by name), the
    page's cursor packing which one and where in it: ``node cursor * nodes + node index``
    (0 still means the start, and the end)."""
    nodes = sorted(client.get_primaries(), key=lambda node: node.name)
    index, node_cursor = cursor % len(nodes), cursor // len(nodes)
    found: list[str] = []
    while True:
        reply = client.scan(
            node_cursor, match=f"{prefix}*", count=page_size, target_nodes=nodes[index]
        )
        cursors, batch = reply
        node_cursor = int(next(iter(cursors.values())))
        found.extend(key.decode()[len(prefix) :] for key in batch)
        if node_cursor == 0:
            index += 1
            if index == len(nodes):
                return found, 0
        if len(found) >= page_size:
            return found, node_cursor * len(nodes) + index


def ttl_seconds(pttl: int | None) -> int | None:
    """A PTTL reply as whole seconds, None for a key without expiry."""
    return None if pttl is None or pttl < 0 else pttl // 1000
