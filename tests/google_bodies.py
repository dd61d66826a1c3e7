"""Google stubbed at the HTTP layer: respx fixtures and response bodies shaped like Google's.

Field names follow Google's discovery documents (``calendar.v3.json``, ``gmail.v1.json``,
``tasks.v1.json``). The fixtures ``google_api`` (the respx router, with
``settings.GOOGLE_API_BASE_URL`` pointing at it), ``retry_sleeps`` (the waits retries
asked for; nothing really sleeps) and ``google_client`` live in ``tests/conftest.py``.
"""

from __future__ import annotations

import base64
from typing import Any

from workspace.google.client import SignInAgain

BASE = "https://google.test"
TOKEN = "ya29.test-access-token-SECRET"
FRESH_TOKEN = "ya29.refreshed-access-token-SECRET"


class FakeTokens:
    """A TokenSource: one token, refreshable ``refreshes_left`` times."""

    def __init__(self, token: str = TOKEN, *, refreshes_left: int = 1) -> None:
        self.current = token
        self.refreshes_left = refreshes_left
        self.stale: list[str] = []

    async def token(self) -> str:
        return self.current

    async def refreshed(self, stale_token: str) -> str:
        self.stale.append(stale_token)
        if not self.refreshes_left:
            raise SignInAgain("the refresh token was revoked", status=401)
        self.refreshes_left -= 1
        self.current = FRESH_TOKEN
        return self.current


# --- Errors ---------------------------------------------------------------------------


def error_body(code: int, reason: str, message: str, status: str = "") -> dict[str, Any]:
    """Google's JSON error body (the v1 ``errors`` list plus the newer ``status``)."""
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status,
        }
    }


SCOPE_ERROR = {
    "error": {
        "code": 403,
        "message": "Request had insufficient authentication scopes.",
        "errors": [
            {
                "message": "Insufficient Permission",
                "domain": "global",
                "reason": "insufficientPermissions",
            }
        ],
        "status": "PERMISSION_DENIED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": "gmail.googleapis.com"},
            }
        ],
    }
}


# --- Calendar -------------------------------------------------------------------------


def event(
    event_id: str,
    start: str,
    end: str,
    *,
    time_zone: str | None = None,
    summary: str = "Meeting",
    **extra: Any,
) -> dict[str, Any]:
    """An events resource; ``start``/``end`` with a ``T`` are dateTimes, else all-day dates."""

    def when(value: str) -> dict[str, str]:
        if "T" not in value:
            return {"date": value}
        return {"dateTime": value, **({"timeZone": time_zone} if time_zone else {})}

    return {
        "kind": "calendar#event",
        "etag": f'"{event_id}-etag"',
        "id": event_id,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
        "summary": summary,
        "start": when(start),
        "end": when(end),
        **extra,
    }


def events_page(items: list[dict], *, time_zone: str = "Europe/Paris", next_page: str = "") -> dict:
    return {
        "kind": "calendar#events",
        "summary": "alice@example.com",
        "timeZone": time_zone,
        "items": items,
        **({"nextPageToken": next_page} if next_page else {}),
    }


# --- Gmail ----------------------------------------------------------------------------


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def part(
    mime: str, data: bytes | str = b"", *, charset: str = "utf-8", filename: str = "", **extra: Any
) -> dict[str, Any]:
    """A leaf MessagePart with its body inline (base64url) and a Content-Type header."""
    raw = data.encode(charset) if isinstance(data, str) else data
    return {
        "partId": "0",
        "mimeType": mime,
        "filename": filename,
        "headers": [{"name": "Content-Type", "value": f'{mime}; charset="{charset}"'}],
        "body": {"size": len(raw), "data": b64(raw)},
        **extra,
    }


def multipart(mime: str, *parts: dict) -> dict[str, Any]:
    return {
        "partId": "",
        "mimeType": mime,
        "filename": "",
        "headers": [],
        "body": {"size": 0},
        "parts": list(parts),
    }


def attachment(filename: str, mime: str, size: int) -> dict[str, Any]:
    return {
        "partId": "2",
        "mimeType": mime,
        "filename": filename,
        "headers": [{"name": "Content-Disposition", "value": f'attachment; filename="{filename}"'}],
        "body": {"attachmentId": "ANGjdJ8-attachment", "size": size},
    }


def message(
    message_id: str,
    *,
    headers: dict[str, str] | None = None,
    payload: dict | None = None,
    labels: tuple[str, ...] = ("INBOX", "UNREAD"),
    snippet: str = "Hi Alice, are we still on for lunch?",
) -> dict[str, Any]:
    """A messages resource; ``payload`` defaults to a header-only (metadata) payload."""
    found = headers or {
        "From": "Bob Example <bob@example.com>",
        "To": "alice@example.com",
        "Subject": f"Lunch {message_id}",
        "Date": "Tue, 3 Mar 2026 10:15:00 +0100",
    }
    body = payload if payload is not None else {"mimeType": "text/plain"}
    top_headers = [{"name": k, "value": v} for k, v in found.items()]
    return {
        "id": message_id,
        "threadId": f"thread-{message_id}",
        "labelIds": list(labels),
        "snippet": snippet,
        "payload": {**body, "headers": [*top_headers, *body.get("headers", [])]},
    }


# --- Tasks ----------------------------------------------------------------------------


def task(task_id: str, position: str, *, parent: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "tasks#task",
        "id": task_id,
        "etag": f'"{task_id}"',
        "title": f"Task {task_id}",
        "updated": "2026-03-01T09:00:00.000Z",
        "selfLink": f"https://www.googleapis.com/tasks/v1/lists/L/tasks/{task_id}",
        "position": position,
        "status": "needsAction",
        **({"parent": parent} if parent else {}),
        **extra,
    }
