"""Calendar, Gmail and Tasks writes: the exact requests Google receives (method, URL,
query, JSON body, the MIME inside ``raw``), and how answers and errors come back
(409 on a retried insert, 410 on a retried delete, a send never retried)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as email_policy

import httpx
import pytest

from tests.google_bodies import error_body, event, message, part, task
from workspace.google.calendar import (
    EVENT_FIELDS,
    delete_event,
    event_id_for,
    insert_event,
    patch_event,
    respond_to_event,
)
from workspace.google.client import BadRequest, Conflict, GoogleUnavailable, NotFound
from workspace.google.gmail import (
    FULL_FIELDS,
    ReplyContext,
    Sent,
    create_draft,
    find_by_rfc822_id,
    label_id,
    modify_message,
    reply_context,
    send_message,
    trash_message,
)
from workspace.google.mail import build_message, encode_raw, forward_subject, reply_subject
from workspace.google.tasks import (
    TASK_FIELDS,
    delete_task,
    find_task,
    insert_task,
    insert_tasklist,
    patch_task,
)

EVENTS = "/calendar/v3/calendars/primary/events"
MESSAGES = "/gmail/v1/users/me/messages"
START, END = "2026-12-04T10:00:00+01:00", "2026-12-04T10:30:00+01:00"
BODY = {
    "summary": "Roadmap sync",
    "start": {"dateTime": START, "timeZone": "Europe/Paris"},
    "end": {"dateTime": END, "timeZone": "Europe/Paris"},
    "attendees": [{"email": "priya@example.com"}],
}


def sent_json(request: httpx.Request) -> dict:
    return json.loads(request.content)


def mime_of(raw: str) -> tuple[bytes, EmailMessage]:
    data = base64.urlsafe_b64decode(raw)
    return data, message_from_bytes(data, policy=email_policy)


def mail(**overrides) -> EmailMessage:
    fields = {
        "sender": "Sam Example <sam@example.com>",
        "to": ["Zoë Müller <zoe@example.de>", "bob@example.com"],
        "cc": ['"Doe, Jane" <jane@example.org>'],
        "subject": "Réunion café ☕ jeudi",
        "body": "Salut Zoë,\n\nÀ jeudi !\n",
        "message_id": "<agenticpal.42@example.com>",
    }
    return build_message(**(fields | overrides))


# Calendar


def test_event_ids_are_valid_calendar_ids_and_stable():
    first, other = event_id_for("thread-1:call-7"), event_id_for("thread-1:call-8")
    assert first == event_id_for("thread-1:call-7") != other
    for key in ("thread-1:call-7", "", "ünïcode ☕ " * 200):
        found = event_id_for(key)
        assert 5 <= len(found) <= 1024 and set(found) <= set("abcdefghijklmnopqrstuv0123456789")


async def test_insert_event_posts_the_body_its_id_and_a_meet_request(google_api, google_client):
    event_id = event_id_for("approval-1")
    answer = event(
        event_id,
        START,
        END,
        summary="Roadmap sync",
        hangoutLink="https://meet.google.com/abc-defg-hij",
    )
    route = google_api.post(EVENTS).mock(return_value=httpx.Response(200, json=answer))
    created = await insert_event(google_client, BODY, event_id=event_id, conference=True)
    assert (created.id, created.title) == (event_id, "Roadmap sync")
    assert created.meet_link == "https://meet.google.com/abc-defg-hij"
    request = route.calls.last.request
    assert dict(request.url.params) == {
        "sendUpdates": "all",
        "conferenceDataVersion": "1",
        "fields": EVENT_FIELDS,
    }
    assert sent_json(request) == BODY | {
        "id": event_id,
        "conferenceData": {
            "createRequest": {
                "requestId": event_id,
                "conferenceSolutionKey": {"type": "hangoutsMeet"},
            }
        },
    }


async def test_insert_event_without_meet_and_on_another_calendar(google_api, google_client):
    route = google_api.post("/calendar/v3/calendars/team%40example.com/events").mock(
        return_value=httpx.Response(200, json=event("abcde", START, END))
    )
    await insert_event(
        google_client, BODY, event_id="abcde", send_updates="none", calendar_id="team@example.com"
    )
    request = route.calls.last.request
    assert dict(request.url.params) == {"sendUpdates": "none", "fields": EVENT_FIELDS}
    assert sent_json(request) == BODY | {"id": "abcde"}


async def test_a_retried_insert_returns_the_event_already_there(google_api, google_client):
    event_id = event_id_for("approval-2")
    insert = google_api.post(EVENTS).mock(
        return_value=httpx.Response(
            409, json=error_body(409, "duplicate", "The requested identifier already exists.")
        )
    )
    read = google_api.get(f"{EVENTS}/{event_id}").mock(
        return_value=httpx.Response(200, json=event(event_id, START, END, summary="Roadmap sync"))
    )
    found = await insert_event(google_client, BODY, event_id=event_id)
    assert (found.id, found.title) == (event_id, "Roadmap sync")
    assert insert.call_count == 1 and read.call_count == 1
    assert read.calls.last.request.url.params["fields"] == EVENT_FIELDS


async def test_an_insert_is_not_retried_after_a_5xx(google_api, google_client, retry_sleeps):
    route = google_api.post(EVENTS).mock(return_value=httpx.Response(503))
    with pytest.raises(GoogleUnavailable):
        await insert_event(google_client, BODY, event_id="abcde")
    assert route.call_count == 1 and retry_sleeps == []


async def test_patch_event_sends_only_the_given_fields(google_api, google_client):
    route = google_api.patch(f"{EVENTS}/abcde").mock(
        return_value=httpx.Response(200, json=event("abcde", START, END, summary="New title"))
    )
    patched = await patch_event(google_client, "abcde", {"summary": "New title", "location": None})
    assert patched.title == "New title"
    request = route.calls.last.request
    assert request.method == "PATCH"
    assert dict(request.url.params) == {"sendUpdates": "all", "fields": EVENT_FIELDS}
    assert sent_json(request) == {"summary": "New title", "location": None}


async def test_a_patch_between_timed_and_all_day_clears_the_other_kind(google_api, google_client):
    route = google_api.patch(f"{EVENTS}/abcde").mock(
        return_value=httpx.Response(200, json=event("abcde", "2026-12-04", "2026-12-05"))
    )
    await patch_event(
        google_client,
        "abcde",
        {"start": {"date": "2026-12-04"}, "end": {"date": "2026-12-05"}},
        send_updates="none",
        conference=True,
    )
    body = sent_json(route.calls.last.request)
    assert body["start"] == {"date": "2026-12-04", "dateTime": None, "timeZone": None}
    assert body["conferenceData"]["createRequest"]["requestId"] == event_id_for("meet:abcde")
    assert route.calls.last.request.url.params["conferenceDataVersion"] == "1"
    await patch_event(google_client, "abcde", {"start": {"dateTime": START}})
    assert sent_json(route.calls.last.request)["start"] == {"dateTime": START, "date": None}


@pytest.mark.parametrize(("status", "deleted"), [(204, True), (200, True), (410, False)])
async def test_delete_event_tells_a_deletion_from_a_retry(
    google_api, google_client, status, deleted
):
    body = error_body(410, "deleted", "Resource has been deleted") if status == 410 else None
    route = google_api.delete(f"{EVENTS}/abcde").mock(
        return_value=httpx.Response(status, json=body)
    )
    assert await delete_event(google_client, "abcde", send_updates="none") is deleted
    request = route.calls.last.request
    assert dict(request.url.params) == {"sendUpdates": "none"} and request.content == b""


async def test_delete_event_after_a_lost_answer(google_api, google_client, retry_sleeps):
    route = google_api.delete(f"{EVENTS}/abcde").mock(
        side_effect=[
            httpx.Response(503),  # deleted, but the answer was lost
            httpx.Response(410, json=error_body(410, "deleted", "Resource has been deleted")),
        ]
    )
    assert await delete_event(google_client, "abcde") is False
    assert route.call_count == 2 and len(retry_sleeps) == 1


async def test_deleting_an_unknown_event_raises(google_api, google_client):
    google_api.delete(f"{EVENTS}/nosuch").mock(
        return_value=httpx.Response(404, json=error_body(404, "notFound", "Not Found"))
    )
    with pytest.raises(NotFound) as raised:
        await delete_event(google_client, "nosuch")
    assert raised.value.status == 404


ATTENDEES = [
    {"email": "marco@example.com", "organizer": True, "responseStatus": "accepted"},
    {"email": "camille@example.com", "displayName": "Camille", "responseStatus": "tentative"},
    {"email": "sam@example.com", "self": True, "optional": True, "responseStatus": "needsAction"},
]


async def test_respond_to_event_patches_the_whole_attendee_list(google_api, google_client):
    read = google_api.get(f"{EVENTS}/abcde").mock(
        return_value=httpx.Response(200, json={"attendees": ATTENDEES})
    )
    answered = [*ATTENDEES[:2], ATTENDEES[2] | {"responseStatus": "declined"}]
    patch = google_api.patch(f"{EVENTS}/abcde").mock(
        return_value=httpx.Response(200, json=event("abcde", START, END, attendees=answered))
    )
    responded = await respond_to_event(
        google_client, "abcde", "declined", email="SAM@example.com", send_updates="none"
    )
    assert responded.declined_by_me
    assert read.calls.last.request.url.params["fields"] == "attendees"
    request = patch.calls.last.request
    assert dict(request.url.params) == {"sendUpdates": "none", "fields": EVENT_FIELDS}
    assert sent_json(request) == {"attendees": answered}


async def test_respond_finds_the_user_by_email_without_a_self_flag(google_api, google_client):
    attendees = [{k: v for k, v in a.items() if k != "self"} for a in ATTENDEES]
    google_api.get(f"{EVENTS}/abcde").mock(
        return_value=httpx.Response(200, json={"attendees": attendees})
    )
    patch = google_api.patch(f"{EVENTS}/abcde").mock(
        return_value=httpx.Response(200, json=event("abcde", START, END))
    )
    await respond_to_event(google_client, "abcde", "tentative", email="sam@example.com")
    sent = sent_json(patch.calls.last.request)["attendees"]
    assert [a["responseStatus"] for a in sent] == ["accepted", "tentative", "tentative"]


async def test_responding_to_an_event_one_is_not_invited_to(google_api, google_client):
    google_api.get(f"{EVENTS}/abcde").mock(return_value=httpx.Response(200, json={}))
    patch = google_api.patch(f"{EVENTS}/abcde")
    with pytest.raises(BadRequest) as raised:
        await respond_to_event(google_client, "abcde", "accepted", email="sam@example.com")
    assert "not on the guest list" in raised.value.user_message
    assert not patch.called
    with pytest.raises(ValueError):
        await respond_to_event(google_client, "abcde", "maybe", email="sam@example.com")


# Mail


def test_build_message_encodes_non_ascii_names_and_subjects():
    built = mail(bcc=["audit@example.com"], in_reply_to="<a@x>", references="<r@x> <a@x>")
    data, parsed = mime_of(encode_raw(built))
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")  # the header is ASCII only
    assert "To: =?utf-8?q?Zo=C3=AB_M=C3=BCller?= <zoe@example.de>, bob@example.com" in head
    assert "Subject: =?utf-8?" in head and "\r\n" in data.decode()
    assert str(parsed["To"]) == "Zoë Müller <zoe@example.de>, bob@example.com"
    assert str(parsed["Cc"]) == '"Doe, Jane" <jane@example.org>'
    assert str(parsed["Bcc"]) == "audit@example.com"
    assert parsed["Subject"] == "Réunion café ☕ jeudi"
    assert parsed["Message-ID"] == "<agenticpal.42@example.com>"
    assert (parsed["In-Reply-To"], parsed["References"]) == ("<a@x>", "<r@x> <a@x>")
    assert parsed.get_content().replace("\r\n", "\n") == "Salut Zoë,\n\nÀ jeudi !\n"
    assert parsed["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert parsed["Date"].datetime.tzinfo is not None


def test_build_message_makes_a_message_id_on_the_senders_domain():
    built = mail(message_id=None)
    assert built["Message-ID"].startswith("<") and built["Message-ID"].endswith("@example.com>")
    assert "Cc" not in mail(cc=[]) and "In-Reply-To" not in built


@pytest.mark.parametrize(
    "fields",
    [
        {"to": ["not an address"]},
        {"to": ["bob@example.com, oops"]},
        {"to": [], "cc": []},
        {"subject": "Hi\r\nBcc: evil@example.com"},
        {"to": ["bob@example.com\nBcc: evil@example.com"]},
    ],
)
def test_build_message_refuses_bad_addresses_and_header_injection(fields):
    with pytest.raises(ValueError):
        mail(**fields)


@pytest.mark.parametrize(
    ("subject", "reply", "forward"),
    [
        ("Lunch", "Re: Lunch", "Fwd: Lunch"),
        ("RE: Lunch", "RE: Lunch", "Fwd: RE: Lunch"),
        ("re:Lunch", "re:Lunch", "Fwd: re:Lunch"),
        ("Fw: Lunch", "Re: Fw: Lunch", "Fw: Lunch"),
        ("FWD: Lunch", "Re: FWD: Lunch", "FWD: Lunch"),
        ("Regarding lunch", "Re: Regarding lunch", "Fwd: Regarding lunch"),
    ],
)
def test_reply_and_forward_subjects(subject, reply, forward):
    assert (reply_subject(subject), forward_subject(subject)) == (reply, forward)


# Gmail


async def test_send_message_posts_raw_mime_in_the_thread(google_api, google_client):
    route = google_api.post(f"{MESSAGES}/send").mock(
        return_value=httpx.Response(200, json={"id": "m2", "threadId": "t1", "labelIds": ["SENT"]})
    )
    reply = mail(in_reply_to="<orig@example.de>", references="<first@x> <orig@example.de>")
    sent = await send_message(google_client, reply, thread_id="t1")
    assert sent == Sent(id="m2", thread_id="t1", label_ids=("SENT",))
    request = route.calls.last.request
    assert request.method == "POST" and dict(request.url.params) == {
        "fields": "id,threadId,labelIds"
    }
    body = sent_json(request)
    assert body.keys() == {"raw", "threadId"} and body["threadId"] == "t1"
    _, parsed = mime_of(body["raw"])
    assert parsed["In-Reply-To"] == "<orig@example.de>"
    assert parsed["References"] == "<first@x> <orig@example.de>"
    assert parsed["Subject"] == "Réunion café ☕ jeudi"


async def test_a_new_mail_has_no_thread_and_a_send_is_never_retried(
    google_api, google_client, retry_sleeps
):
    route = google_api.post(f"{MESSAGES}/send").mock(return_value=httpx.Response(503))
    with pytest.raises(GoogleUnavailable):
        await send_message(google_client, mail())
    assert route.call_count == 1 and retry_sleeps == []
    assert sent_json(route.calls.last.request).keys() == {"raw"}


async def test_create_draft(google_api, google_client):
    route = google_api.post("/gmail/v1/users/me/drafts").mock(
        return_value=httpx.Response(
            200,
            json={"id": "r-77", "message": {"id": "m9", "threadId": "t1", "labelIds": ["DRAFT"]}},
        )
    )
    draft = await create_draft(google_client, mail(), thread_id="t1")
    assert draft == Sent(id="m9", thread_id="t1", label_ids=("DRAFT",), draft_id="r-77")
    request = route.calls.last.request
    assert request.url.params["fields"] == "id,message(id,threadId,labelIds)"
    body = sent_json(request)
    assert body["message"]["threadId"] == "t1"
    assert mime_of(body["message"]["raw"])[1]["Message-ID"] == "<agenticpal.42@example.com>"


async def test_find_by_rfc822_id(google_api, google_client):
    listing = google_api.get(MESSAGES).mock(
        return_value=httpx.Response(
            200, json={"messages": [{"id": "d1", "threadId": "t"}, {"id": "m1", "threadId": "t"}]}
        )
    )
    labels = {"d1": ["DRAFT"], "m1": ["SENT"]}
    reads = google_api.get(path__regex=rf"{MESSAGES}/(?P<message_id>\w+)$").mock(
        side_effect=lambda request, message_id: httpx.Response(
            200, json={"id": message_id, "threadId": "t", "labelIds": labels[message_id]}
        )
    )
    found = await find_by_rfc822_id(google_client, " <agenticpal.42@example.com> ")
    assert found == Sent(id="m1", thread_id="t", label_ids=("SENT",))  # not the draft
    assert dict(listing.calls.last.request.url.params) == {
        "q": "rfc822msgid:agenticpal.42@example.com",
        "includeSpamTrash": "true",
        "maxResults": "10",
        "fields": "messages(id)",
    }
    assert reads.calls.last.request.url.params["format"] == "minimal"


async def test_find_by_rfc822_id_when_google_has_none(google_api, google_client):
    google_api.get(MESSAGES).mock(return_value=httpx.Response(200, json={"resultSizeEstimate": 0}))
    assert await find_by_rfc822_id(google_client, "<nowhere@example.com>") is None
    assert await find_by_rfc822_id(google_client, "<>") is None


async def test_reply_context_has_what_a_reply_and_a_forward_need(google_api, google_client):
    original = message(
        "m1",
        headers={
            "From": "=?utf-8?q?Zo=C3=AB_M=C3=BCller?= <zoe@example.de>",
            "Reply-To": "team@example.de",
            "To": 'sam@example.com, "Doe, Jane" <jane@example.org>',
            "Cc": "=?utf-8?q?Andr=C3=A9?= <andre@example.fr>, undisclosed-recipients:;",
            "Subject": "=?utf-8?q?R=C3=A9union?=",
            "Date": "Tue, 1 Dec 2026 10:15:00 +0100",
            "Message-ID": "<orig@example.de>",
            "References": "<first@x>\r\n <second@x>",
        },
        payload=part("text/plain", "Salut !\n\nOn se voit jeudi ?\n\n> old quote"),
    )
    route = google_api.get(f"{MESSAGES}/m1").mock(return_value=httpx.Response(200, json=original))
    context = await reply_context(google_client, "m1")
    assert dict(route.calls.last.request.url.params) == {"format": "full", "fields": FULL_FIELDS}
    assert context == ReplyContext(
        message_id="m1",
        thread_id="thread-m1",
        rfc822_id="<orig@example.de>",
        references="<first@x> <second@x>",
        subject="Réunion",
        sender="Zoë Müller <zoe@example.de>",
        reply_to="team@example.de",
        to=("sam@example.com", '"Doe, Jane" <jane@example.org>'),
        cc=("André <andre@example.fr>",),
        text="Salut !\n\nOn se voit jeudi ?",
        date=datetime(2026, 12, 1, 9, 15, tzinfo=UTC),
    )
    assert context.reply_references == "<first@x> <second@x> <orig@example.de>"


async def test_modify_message_and_trash(google_api, google_client):
    modify = google_api.post(f"{MESSAGES}/m1/modify").mock(
        return_value=httpx.Response(200, json={"id": "m1", "labelIds": ["STARRED"]})
    )
    labels = await modify_message(google_client, "m1", add=["STARRED"], remove=("INBOX", "UNREAD"))
    assert labels == ("STARRED",)
    assert sent_json(modify.calls.last.request) == {
        "addLabelIds": ["STARRED"],
        "removeLabelIds": ["INBOX", "UNREAD"],
    }
    assert modify.calls.last.request.url.params["fields"] == "id,labelIds"
    trash = google_api.post(f"{MESSAGES}/m1/trash").mock(
        return_value=httpx.Response(200, json={"id": "m1", "labelIds": ["TRASH"]})
    )
    assert await trash_message(google_client, "m1") is None
    assert trash.calls.last.request.method == "POST" and trash.calls.last.request.content == b""
    assert not google_api.delete(f"{MESSAGES}/m1").called


async def test_label_id_by_name_or_system_id(google_api, google_client):
    labels = [
        {"id": "INBOX", "name": "INBOX", "type": "system"},
        {"id": "Label_1", "name": "Receipts", "type": "user"},
        {"id": "Label_2", "name": "Projects/AgenticPal", "type": "user"},
    ]
    google_api.get("/gmail/v1/users/me/labels").mock(
        return_value=httpx.Response(200, json={"labels": labels})
    )
    assert await label_id(google_client, "receipts") == "Label_1"
    assert await label_id(google_client, "projects/agenticpal") == "Label_2"
    assert await label_id(google_client, "Inbox") == "INBOX"
    assert await label_id(google_client, "Label_2") == "Label_2"
    assert await label_id(google_client, "Holidays") is None


# Tasks


async def test_insert_task_as_a_subtask(google_api, google_client):
    route = google_api.post("/tasks/v1/lists/L1/tasks").mock(
        return_value=httpx.Response(200, json=task("t9", "00000000000000000000", parent="t1"))
    )
    created = await insert_task(
        google_client, "L1", {"title": "Call Priya", "due": "2026-12-04T00:00:00.000Z"}, parent="t1"
    )
    assert (created.id, created.parent) == ("t9", "t1")
    request = route.calls.last.request
    assert dict(request.url.params) == {"parent": "t1", "fields": TASK_FIELDS}
    assert sent_json(request) == {"title": "Call Priya", "due": "2026-12-04T00:00:00.000Z"}
    await insert_task(google_client, "L1", {"title": "Top level"})
    assert dict(route.calls.last.request.url.params) == {"fields": TASK_FIELDS}


async def test_complete_and_reopen_a_task(google_api, google_client):
    route = google_api.patch("/tasks/v1/lists/L1/tasks/t1").mock(
        return_value=httpx.Response(200, json=task("t1", "0", status="completed"))
    )
    assert (await patch_task(google_client, "L1", "t1", {"status": "completed"})).completed
    assert sent_json(route.calls.last.request) == {"status": "completed"}
    await patch_task(google_client, "L1", "t1", {"status": "needsAction", "completed": None})
    assert route.calls.last.request.content == b'{"status":"needsAction","completed":null}'


@pytest.mark.parametrize(("status", "deleted"), [(204, True), (404, False)])
async def test_delete_task(google_api, google_client, status, deleted):
    body = error_body(404, "notFound", "Task not found.") if status == 404 else None
    route = google_api.delete("/tasks/v1/lists/L1/tasks/t1").mock(
        return_value=httpx.Response(status, json=body)
    )
    assert await delete_task(google_client, "L1", "t1") is deleted
    assert route.call_count == 1


async def test_insert_tasklist(google_api, google_client):
    route = google_api.post("/tasks/v1/users/@me/lists").mock(
        return_value=httpx.Response(
            200,
            json={
                "kind": "tasks#taskList",
                "id": "L9",
                "title": "Trip",
                "updated": "2026-12-02T09:00:00.000Z",
            },
        )
    )
    created = await insert_tasklist(google_client, "Trip")
    assert (created.id, created.title) == ("L9", "Trip")
    assert created.updated == datetime(2026, 12, 2, 9, tzinfo=UTC)
    assert sent_json(route.calls.last.request) == {"title": "Trip"}
    assert route.calls.last.request.url.params["fields"] == "id,title,updated"


async def test_find_task_checks_title_and_time(google_api, google_client):
    since = datetime(2026, 12, 2, 9, tzinfo=UTC)
    items = [
        task("old", "1", title="Call Priya", updated="2026-12-02T08:59:59.000Z"),
        task("other", "2", title="Call Priya later", updated="2026-12-02T09:30:00.000Z"),
        task("new", "3", title="Call Priya", updated="2026-12-02T09:00:00.000Z"),
        task("newer", "4", title="Call Priya", updated="2026-12-02T09:00:01.000Z"),
    ]
    route = google_api.get("/tasks/v1/lists/L1/tasks").mock(
        return_value=httpx.Response(200, json={"kind": "tasks#tasks", "items": items})
    )
    found = await find_task(google_client, "L1", title="Call Priya", updated_min=since)
    assert found is not None and found.id == "newer"
    assert dict(route.calls.last.request.url.params) == {
        "showCompleted": "true",
        "showHidden": "true",
        "updatedMin": "2026-12-02T09:00:00+00:00",
        "maxResults": "100",
        "fields": f"nextPageToken,items({TASK_FIELDS},updated)",
    }
    assert await find_task(google_client, "L1", title="Nothing", updated_min=since) is None


async def test_errors_of_writes_keep_googles_message(google_api, google_client):
    google_api.post(EVENTS).mock(
        return_value=httpx.Response(400, json=error_body(400, "required", "Missing end time."))
    )
    with pytest.raises(BadRequest) as raised:
        await insert_event(google_client, {"summary": "x"}, event_id="abcde")
    assert not isinstance(raised.value, Conflict)
    assert raised.value.user_message == "Google Calendar refused the request: Missing end time."
