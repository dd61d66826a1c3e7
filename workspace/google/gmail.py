"""Gmail: searching messages, reading one message or a thread, labels, and writes.

A search is one paginated ``messages.list`` plus concurrent ``messages.get`` calls in
``format=metadata`` with only the From/To/Subject/Date headers (at most
``CONCURRENCY`` in flight, via :func:`~workspace.google.client.gather_bounded`), each
with a tight ``fields=`` selector: 20 results take two round trips, not 21.
Reading a message fetches ``format=full`` and turns its MIME tree into text with
:func:`workspace.google.mail.message_text` in a worker thread (a big HTML body takes
CPU time the event loop should not lose); attachments are listed, not downloaded.

Writes send and draft a MIME message built by :mod:`workspace.google.mail` (a send is
never retried by the client; :func:`find_by_rfc822_id` tells whether one started before
a crash reached Google), change labels, and trash (never delete for good).

Its guarantee: headers come back decoded (RFC 2047), dates aware or None, snippets
unescaped; a message deleted between the list and the get is left out, not an error.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
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
from workspace.google.mail import Attachment, encode_raw, headers, message_text

USER = "gmail/v1/users/me"
PAGE_SIZE = 100  # messages.list allows up to 500
CONCURRENCY = 20  # a 20-message search is one list + one wave of reads: 2 round trips
SUMMARY_HEADERS = ["From", "To", "Subject", "Date"]
SUMMARY_FIELDS = "id,threadId,labelIds,snippet,payload/headers"
FULL_FIELDS = "id,threadId,labelIds,snippet,payload"
SENT_FIELDS = "id,threadId,labelIds"
REPLY_TEXT_LIMIT = 20_000  # characters of the original kept for a forward's quote


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


@dataclass(frozen=True)
class Sent:
    """A message Google stored (sent, or a draft's message: then ``draft_id`` is set)."""

    id: str
    thread_id: str
    label_ids: tuple[str, ...]
    draft_id: str = ""


@dataclass(frozen=True)
class ReplyContext:
    """What a reply or a forward of a message needs (addresses as ``Name <addr>``)."""

    message_id: str  # Gmail's id
    thread_id: str
    rfc822_id: str  # the Message-ID header
    references: str  # the original's References header
    subject: str
    sender: str
    reply_to: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    text: str
    date: datetime | None

    @property
    def reply_references(self) -> str:
        """A reply's References: the original's, then its Message-ID."""
        return " ".join(filter(None, [self.references, self.rfc822_id]))


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


async def send_message(
    client: GoogleClient, message: EmailMessage, *, thread_id: str | None = None
) -> Sent:
    """Send ``message`` (in ``thread_id``'s conversation if given); POSTs are not retried."""
    data = await client.request(
        "POST", f"{USER}/messages/send", json=_raw(message, thread_id), fields=SENT_FIELDS
    )
    return _sent(data)


async def create_draft(
    client: GoogleClient, message: EmailMessage, *, thread_id: str | None = None
) -> Sent:
    """Save ``message`` as a draft; ``Sent.id`` is its message's id, ``draft_id`` the draft's."""
    data = await client.request(
        "POST",
        f"{USER}/drafts",
        json={"message": _raw(message, thread_id)},
        fields=f"id,message({SENT_FIELDS})",
    )
    return _sent(dict_at(data, "message"), draft_id=str_at(data, "id"))


async def find_by_rfc822_id(client: GoogleClient, rfc822_message_id: str) -> Sent | None:
    """The stored message with this Message-ID header (trash and spam included), None if
    Google has none; a sent one rather than a draft when both exist."""
    wanted = rfc822_message_id.strip().removeprefix("<").removesuffix(">")
    if not wanted:
        return None
    data = await client.get(
        f"{USER}/messages",
        params={"q": f"rfc822msgid:{wanted}", "includeSpamTrash": "true", "maxResults": 10},
        fields="messages(id)",
    )
    ids = [message_id for item in dicts_at(data, "messages") if (message_id := str_at(item, "id"))]
    found = await gather_bounded((_sent_or_none(client, id_) for id_ in ids), CONCURRENCY)
    stored = [sent for sent in found if sent is not None]
    return next((s for s in stored if "DRAFT" not in s.label_ids), stored[0] if stored else None)


async def reply_context(client: GoogleClient, message_id: str) -> ReplyContext:
    """One GET of the message (format=full) and what a reply or a forward takes from it."""
    data = await client.get(
        _message_path(message_id), params={"format": "full"}, fields=FULL_FIELDS
    )
    return await asyncio.to_thread(_reply_context, data)


async def modify_message(
    client: GoogleClient, message_id: str, *, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> tuple[str, ...]:
    """Add and remove label ids; the message's labels after it.

    Archive: remove INBOX; read: remove UNREAD; unread: add UNREAD; star: add STARRED.
    """
    data = await client.request(
        "POST",
        f"{_message_path(message_id)}/modify",
        json={"addLabelIds": list(add), "removeLabelIds": list(remove)},
        fields="id,labelIds",
    )
    return strs_at(data, "labelIds")


async def trash_message(client: GoogleClient, message_id: str) -> None:
    """Move to the trash (Gmail empties it after 30 days; ``gmail.modify`` cannot delete)."""
    await client.request("POST", f"{_message_path(message_id)}/trash", fields="id")


async def label_id(client: GoogleClient, name: str) -> str | None:
    """The id of the label named ``name`` (any case) or with that id; None if none."""
    labels = await list_labels(client)
    wanted = name.strip().casefold()
    by_id = next((label.id for label in labels if label.id == name.strip()), None)
    return by_id or next((label.id for label in labels if label.name.casefold() == wanted), None)


def _raw(message: EmailMessage, thread_id: str | None) -> dict[str, str]:
    return {"raw": encode_raw(message), **({"threadId": thread_id} if thread_id else {})}


def _sent(data: Mapping[str, Any], draft_id: str = "") -> Sent:
    return Sent(
        id=str_at(data, "id"),
        thread_id=str_at(data, "threadId"),
        label_ids=strs_at(data, "labelIds"),
        draft_id=draft_id,
    )


async def _sent_or_none(client: GoogleClient, message_id: str) -> Sent | None:
    try:
        data = await client.get(
            _message_path(message_id), params={"format": "minimal"}, fields=SENT_FIELDS
        )
    except NotFound:
        return None
    return _sent(data)


def _reply_context(data: Mapping[str, Any]) -> ReplyContext:
    payload = dict_at(data, "payload")
    found = headers(payload)
    return ReplyContext(
        message_id=str_at(data, "id"),
        thread_id=str_at(data, "threadId"),
        rfc822_id=found.get("message-id", "").strip(),
        references=" ".join(found.get("references", "").split()),
        subject=found.get("subject", ""),
        sender=found.get("from", ""),
        reply_to=found.get("reply-to", ""),
        to=addresses(found.get("to", "")),
        cc=addresses(found.get("cc", "")),
        text=message_text(payload, limit=REPLY_TEXT_LIMIT).text,
        date=parse_date(found.get("date", "")),
    )


def addresses(value: str) -> tuple[str, ...]:
    """The addresses of a decoded To/Cc header, each as ``Name <addr>`` (quoted as needed)."""
    found: list[str] = []
    for name, address in getaddresses([value]):
        if "@" not in address:
            continue
        try:
            found.append(str(Address(display_name=name, addr_spec=address)))
        except (ValueError, IndexError):
            found.append(address)
    return tuple(found)


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
