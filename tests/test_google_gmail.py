"""Gmail reads: a search (list pages + concurrent metadata gets), one message, a thread,
labels; headers decoded, dates aware, bodies as text."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from tests.google_bodies import (
    attachment,
    message,
    multipart,
    part,
)
from workspace.google.gmail import (
    FULL_FIELDS,
    SUMMARY_FIELDS,
    get_message,
    get_thread,
    list_labels,
    parse_date,
    search_messages,
)
from workspace.google.mail import Attachment

MESSAGES = "/gmail/v1/users/me/messages"
ONE_MESSAGE = rf"{MESSAGES}/(?P<message_id>[^/]+)"


def listed(ids: list[str], next_page: str = "") -> httpx.Response:
    body = {
        "messages": [{"id": i, "threadId": f"thread-{i}"} for i in ids],
        "resultSizeEstimate": len(ids),
        **({"nextPageToken": next_page} if next_page else {}),
    }
    return httpx.Response(200, json=body)


async def test_a_search_pages_the_list_and_gets_metadata_concurrently(
    google_api, google_client, monkeypatch
):
    monkeypatch.setattr("workspace.google.gmail.CONCURRENCY", 10)  # the bound holds
    ids = [f"m{n:02}" for n in range(20)]
    listing = google_api.get(MESSAGES).mock(
        side_effect=[listed(ids[:12], next_page="page-2"), listed(ids[12:])]
    )
    running = peak = 0

    async def metadata(request, message_id):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return httpx.Response(200, json=message(message_id, snippet="Tom &amp; Jerry&#39;s"))

    gets = google_api.get(path__regex=ONE_MESSAGE).mock(side_effect=metadata)
    started = time.monotonic()
    found = await search_messages(google_client, "from:bob is:unread", limit=20)
    elapsed = time.monotonic() - started

    assert [m.id for m in found] == ids
    assert gets.call_count == 20 and peak == 10
    assert elapsed < 0.3  # two waves of 0.05 s, not twenty
    first, second = (dict(call.request.url.params) for call in listing.calls)
    assert first == {
        "q": "from:bob is:unread",
        "maxResults": "20",
        "fields": "nextPageToken,messages(id)",
    }
    assert second["pageToken"] == "page-2" and second["maxResults"] == "8"
    params = gets.calls.last.request.url.params
    assert params.get_list("metadataHeaders") == ["From", "To", "Subject", "Date"]
    assert (params["format"], params["fields"]) == ("metadata", SUMMARY_FIELDS)

    summary = found[0]
    assert summary.thread_id == "thread-m00"
    assert summary.sender == "Bob Example <bob@example.com>" and summary.to == "alice@example.com"
    assert summary.subject == "Lunch m00"
    assert summary.date == datetime(2026, 3, 3, 9, 15, tzinfo=UTC)
    assert summary.snippet == "Tom & Jerry's"
    assert summary.unread and summary.labels == ("INBOX", "UNREAD")


async def test_a_message_deleted_since_the_list_is_left_out(google_api, google_client):
    google_api.get(MESSAGES).mock(return_value=listed(["kept", "gone"]))
    google_api.get(f"{MESSAGES}/kept").mock(
        return_value=httpx.Response(200, json=message("kept", labels=("INBOX",)))
    )
    google_api.get(f"{MESSAGES}/gone").mock(return_value=httpx.Response(404))
    found = await search_messages(google_client, "lunch")
    assert [m.id for m in found] == ["kept"] and not found[0].unread


async def test_an_empty_search_makes_one_call(google_api, google_client):
    route = google_api.get(MESSAGES).mock(
        return_value=httpx.Response(200, json={"resultSizeEstimate": 0})
    )
    assert await search_messages(google_client, "nothing") == []
    assert route.call_count == 1


async def test_encoded_and_non_ascii_headers_are_decoded(google_api, google_client):
    headers = {
        "From": "=?iso-8859-1?q?J=F6rg_M=FCller?= <jorg@example.de>",
        "To": "Zoë Ōtani <zoe@example.com>",  # Gmail usually sends them decoded already
        "Subject": "=?UTF-8?B?UsOpdW5pb24gZGUgbCfDqXF1aXBl?=",
        "Date": "Mon, 2 Mar 2026 18:00:00 -0000",
    }
    google_api.get(MESSAGES).mock(return_value=listed(["u1"]))
    google_api.get(f"{MESSAGES}/u1").mock(
        return_value=httpx.Response(200, json=message("u1", headers=headers))
    )
    (found,) = await search_messages(google_client, "is:unread")
    assert found.sender == "Jörg Müller <jorg@example.de>"
    assert found.to == "Zoë Ōtani <zoe@example.com>"
    assert found.subject == "Réunion de l'équipe"
    assert found.date == datetime(2026, 3, 2, 18, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "Tue, 3 Mar 2026 10:15:00 +0100",
            datetime(2026, 3, 3, 10, 15, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("3 Mar 2026 10:15 GMT", datetime(2026, 3, 3, 10, 15, tzinfo=UTC)),
        ("yesterday-ish", None),
        ("", None),
    ],
)
def test_dates_are_aware_or_none(value, expected):
    assert parse_date(value) == expected


async def test_get_message_reads_the_body_attachments_and_reply_headers(google_api, google_client):
    payload = multipart(
        "multipart/mixed",
        multipart(
            "multipart/alternative",
            part("text/plain", "Hi Alice,\n\nLunch at noon?\n\nBob"),
            part("text/html", "<p>Hi Alice,</p><p>Lunch at <b>noon</b>?</p>"),
        ),
        attachment("menu.pdf", "application/pdf", 48213),
    )
    headers = {
        "From": "Bob <bob@example.com>",
        "To": "alice@example.com",
        "Cc": "carol@example.com",
        "Subject": "Lunch",
        "Date": "Tue, 3 Mar 2026 10:15:00 +0100",
        "Message-ID": "<CAB123@mail.gmail.com>",
        "References": "<CAA000@mail.gmail.com>",
    }
    route = google_api.get(f"{MESSAGES}/m1").mock(
        return_value=httpx.Response(200, json=message("m1", headers=headers, payload=payload))
    )
    found = await get_message(google_client, "m1")
    assert dict(route.calls.last.request.url.params) == {"format": "full", "fields": FULL_FIELDS}
    assert found.text == "Hi Alice,\n\nLunch at noon?\n\nBob" and not found.truncated
    assert found.attachments == (Attachment("menu.pdf", "application/pdf", 48213),)
    assert (found.cc, found.message_id, found.references) == (
        "carol@example.com",
        "<CAB123@mail.gmail.com>",
        "<CAA000@mail.gmail.com>",
    )
    assert found.subject == "Lunch" and found.unread


async def test_an_iso_8859_1_body_is_decoded_with_its_charset(google_api, google_client):
    body = part("text/plain", "Grüße aus Köln, à bientôt", charset="iso-8859-1")
    google_api.get(f"{MESSAGES}/latin").mock(
        return_value=httpx.Response(200, json=message("latin", payload=body))
    )
    assert (await get_message(google_client, "latin")).text == "Grüße aus Köln, à bientôt"


async def test_get_thread_returns_its_messages_in_order(google_api, google_client):
    thread = {
        "id": "t1",
        "messages": [
            message("first", payload=part("text/plain", "Lunch?")),
            message(
                "second",
                payload=part(
                    "text/plain",
                    "Yes!\n\nOn Tue, 3 Mar 2026 at 10:15, Bob <bob@example.com> wrote:\n> Lunch?",
                ),
            ),
        ],
    }
    route = google_api.get("/gmail/v1/users/me/threads/t1").mock(
        return_value=httpx.Response(200, json=thread)
    )
    found = await get_thread(google_client, "t1")
    assert [(m.id, m.text) for m in found] == [("first", "Lunch?"), ("second", "Yes!")]
    assert route.calls.last.request.url.params["fields"] == f"messages({FULL_FIELDS})"


async def test_list_labels(google_api, google_client):
    google_api.get("/gmail/v1/users/me/labels").mock(
        return_value=httpx.Response(
            200,
            json={
                "labels": [
                    {"id": "INBOX", "name": "INBOX", "type": "system"},
                    {"id": "Label_7", "name": "Receipts", "type": "user"},
                    "junk",
                ]
            },
        )
    )
    labels = await list_labels(google_client)
    assert [(label.id, label.name, label.type) for label in labels] == [
        ("INBOX", "INBOX", "system"),
        ("Label_7", "Receipts", "user"),
    ]
