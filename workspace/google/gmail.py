"""Reading Gmail: searching messages, reading one message or a thread, listing labels.

A search is one paginated ``messages.list`` plus concurrent ``messages.get`` calls in
``format=metadata`` with only the From/To/Subject/Date headers (at most
``CONCURRENCY`` in flight, via :func:`~workspace.google.client.gather_bounded`), each
with a tight ``fields=`` selector: 20 results take two round trips, not 21.
Reading a message fetches ``format=full`` and turns its MIME tree into text with
:func:`workspace.google.mail.message_text` in a worker thread (a big HTML body takes
CPU time the event loop should not lose); attachments are listed, not downloaded.

Its guarantee: headers come back decoded (RFC 2047), dates aware or None, snippets
unescaped; a message deleted between the list and the get is left out, not an error.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from workspace.google.client import (
    GoogleClient,
    NotFound,
    dict_at,
    dicts_at,
    gather_bounded,
    path_segment,
    str_at,
    strs_at,
)
from workspace.google.mail import Attachment, headers, message_text

USER = "gmail/v1/users/me"
PAGE_SIZE = 100  # messages.list allows up to 500
CONCURRENCY = 20  # a 20-message search is one list + one wave of reads: 2 round trips
SUMMARY_HEADERS = ["From", "To", "Subject", "Date"]
SUMMARY_FIELDS = "id,threadId,labelIds,snippet,payload/headers"
FULL_FIELDS = "id,threadId,labelIds,snippet,payload"


@dataclass(frozen=True)
class MessageSummary:
    id: str
    thread_id: str
    sender: str
    to: str
    subject: str
    date: datetime | None
    snippet: str
    unread: bool
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Message(MessageSummary):
    cc: str
    message_id: str  # the Message-ID header: a reply's In-Reply-To
    references: str
    text: str
    truncated: bool
    attachments: tuple[Attachment, ...]


@dataclass(frozen=True)
class Label:
    id: str
    name: str
    type: str  # "system" or "user"


async def search_messages(
    client: GoogleClient, query: str, limit: int = 20
) -> list[MessageSummary]:
    """Messages matching a Gmail search (``from:ann is:unread``), newest first."""
    listing = await client.get_all(
        f"{USER}/messages",
        key="messages",
        limit=limit,
        page_size=PAGE_SIZE,
        params={"q": query},
        fields="messages(id)",
    )
    ids = [message_id for item in listing.items if (message_id := str_at(item, "id"))]
    found = await gather_bounded((_summary_or_none(client, id_) for id_ in ids), CONCURRENCY)
    return [summary for summary in found if summary is not None]


async def get_message(client: GoogleClient, message_id: str) -> Message:
    data = await client.get(
        _message_path(message_id),
        params={"format": "full"},
        fields=FULL_FIELDS,
    )
    return await asyncio.to_thread(message_from_json, data)


async def get_thread(client: GoogleClient, thread_id: str) -> list[Message]:
    """A conversation's messages, oldest first."""
    data = await client.get(
        f"{USER}/threads/{path_segment(thread_id)}",
        params={"format": "full"},
        fields=f"messages({FULL_FIELDS})",
    )
    return await asyncio.to_thread(_messages_from_json, dicts_at(data, "messages"))


async def list_labels(client: GoogleClient) -> list[Label]:
    data = await client.get(f"{USER}/labels", fields="labels(id,name,type)")
    return [
        Label(id=str_at(label, "id"), name=str_at(label, "name"), type=str_at(label, "type"))
        for label in dicts_at(data, "labels")
    ]


async def _summary_or_none(client: GoogleClient, message_id: str) -> MessageSummary | None:
    try:
        data = await client.get(
            _message_path(message_id),
            params={"format": "metadata", "metadataHeaders": SUMMARY_HEADERS},
            fields=SUMMARY_FIELDS,
        )
    except NotFound:  # deleted since the list
        return None
    return MessageSummary(**_summary_fields(data, headers(dict_at(data, "payload"))))


def _message_path(message_id: str) -> str:
    return f"{USER}/messages/{path_segment(message_id)}"


def message_from_json(data: Mapping[str, Any]) -> Message:
    """A ``format=full`` message resource as a :class:`Message`."""
    payload = dict_at(data, "payload")
    found = headers(payload)
    body = message_text(payload)
    return Message(
        **_summary_fields(data, found),
        cc=found.get("cc", ""),
        message_id=found.get("message-id", ""),
        references=found.get("references", ""),
        text=body.text,
        truncated=body.truncated,
        attachments=body.attachments,
    )


def _messages_from_json(messages: list[Mapping[str, Any]]) -> list[Message]:
    return [message_from_json(message) for message in messages]


def _summary_fields(data: Mapping[str, Any], found: Mapping[str, str]) -> dict[str, Any]:
    labels = strs_at(data, "labelIds")
    return {
        "id": str_at(data, "id"),
        "thread_id": str_at(data, "threadId"),
        "sender": found.get("from", ""),
        "to": found.get("to", ""),
        "subject": found.get("subject", ""),
        "date": parse_date(found.get("date", "")),
        "snippet": html.unescape(str_at(data, "snippet")),
        "unread": "UNREAD" in labels,
        "labels": labels,
    }


def parse_date(value: str) -> datetime | None:
    """A Date header as an aware datetime (``-0000`` means UTC); None when unreadable."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
