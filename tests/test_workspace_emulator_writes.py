"""The Workspace emulator's writes: Calendar events (insert, patch, delete, RSVP, Meet),
Gmail (send, drafts, labels, trash) and Tasks, through the project's own client functions
and as raw requests: Google's shapes and errors, and later reads that see each change."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.google_bodies import FakeTokens
from tests.test_workspace_emulator import NOW, PARIS, TOKEN, assert_matches
from workspace.emulator import create_app
from workspace.google import calendar, gmail, tasks
from workspace.google.client import BadRequest, GoogleClient, NotFound
from workspace.google.mail import build_message, encode_raw, reply_subject

EVENTS = "/calendar/v3/calendars/primary/events"
MESSAGES = "/gmail/v1/users/me/messages"
WEEK = (NOW - timedelta(days=2), NOW + timedelta(days=7))
ME = "sam@example.com"
TIMED = {
    "summary": "Quokka sync",
    "start": {"dateTime": "2026-12-04T10:00:00+01:00", "timeZone": "Europe/Paris"},
    "end": {"dateTime": "2026-12-04T10:30:00+01:00", "timeZone": "Europe/Paris"},
}


@pytest.fixture
def app() -> Starlette:
    return create_app(now=NOW)  # each test writes to a workspace of its own


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://emulator", headers=headers
    ) as client:
        yield client


@pytest.fixture
def google(http: httpx.AsyncClient) -> GoogleClient:
    """The project's client, talking to the emulator in process."""
    return GoogleClient(FakeTokens(TOKEN), base_url="http://emulator", http=http)


def requests(app: Starlette) -> list[tuple[str, str]]:
    """What the emulator received from the user, as (method, path)."""
    return [(method, path) for method, path, _ in app.state.emulator.users[TOKEN].requests]


async def ok(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await http.request(method, path, **kwargs)
    assert response.is_success, response.text
    return response.json() if response.content else None


async def refused(http: httpx.AsyncClient, status: int, method: str, path: str, **kw: Any) -> dict:
    response = await http.request(method, path, **kw)
    assert response.status_code == status, response.text
    body = response.json()
    assert_matches(body, "errors.json")
    assert body["error"]["code"] == status
    return body["error"]


def mail(subject: str = "Slides", **fields: Any) -> Any:
    return build_message(
        **{
            "sender": ME,
            "to": ["Zoë Müller <zoe.mueller@example.de>"],
            "subject": subject,
            "body": "Here they are.",
        }
        | fields
    )


# Calendar


async def test_an_inserted_event_is_listed_with_a_meet_link(app, google) -> None:
    event_id = calendar.event_id_for("approval:1")
    body = TIMED | {"attendees": [{"email": "priya.natarajan@example.com"}]}
    created = await calendar.insert_event(google, body, event_id=event_id, conference=True)
    assert (created.id, created.title, created.organizer) == (event_id, "Quokka sync", ME)
    assert created.meet_link and created.meet_link.startswith("https://meet.google.com/")
    assert [(a.email, a.response, a.is_self) for a in created.attendees] == [
        (ME, "accepted", True),
        ("priya.natarajan@example.com", "needsAction", False),
    ]
    listed = await calendar.list_events(google, *WEEK, query="quokka sync")
    assert [event.id for event in listed.events] == [event_id]
    assert listed.events[0] == created
    assert requests(app) == [("POST", EVENTS), ("GET", EVENTS)]


async def test_an_inserted_event_has_googles_shape(http) -> None:
    body = TIMED | {
        "id": "roadmap0001",
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
        "attendees": [{"email": "priya.natarajan@example.com", "optional": True}],
        "conferenceData": {"createRequest": {"requestId": "req-1"}},
    }
    created = await ok(http, "POST", EVENTS, json=body, params={"conferenceDataVersion": 1})
    assert_matches(created, "calendar_event_inserted.json")
    assert created["conferenceData"]["createRequest"]["status"] == {"statusCode": "success"}
    assert created["hangoutLink"] == created["conferenceData"]["entryPoints"][0]["uri"]
    assert await ok(http, "GET", f"{EVENTS}/roadmap0001") == created
    instances = await ok(http, "GET", EVENTS, params={"q": "Quokka sync", "singleEvents": "true"})
    assert [i["start"]["dateTime"][:10] for i in instances["items"]] == [
        "2026-12-04",
        "2026-12-11",
        "2026-12-18",
        "2026-12-25",
    ]
    generated = await ok(http, "POST", EVENTS, json=TIMED)
    assert len(generated["id"]) == 26 and "conferenceData" not in generated


async def test_an_insert_retried_with_the_same_id_creates_nothing(app, google, http) -> None:
    event_id = calendar.event_id_for("approval:2")
    first = await calendar.insert_event(google, TIMED, event_id=event_id)
    again = await calendar.insert_event(google, TIMED | {"summary": "Other"}, event_id=event_id)
    assert again == first
    assert requests(app) == [("POST", EVENTS), ("POST", EVENTS), ("GET", f"{EVENTS}/{event_id}")]
    error = await refused(http, 409, "POST", EVENTS, json=TIMED | {"id": event_id})
    assert error["message"] == "The requested identifier already exists."
    assert error["errors"][0]["reason"] == "duplicate" and error["status"] == "ALREADY_EXISTS"
    listed = await calendar.list_events(google, *WEEK, query="Quokka")
    assert len(listed.events) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"summary": "x", "end": TIMED["end"]}, "Missing start time."),
        ({"start": TIMED["start"]}, "Missing end time."),
        ({"start": TIMED["end"], "end": TIMED["start"]}, "The specified time range is empty."),
        (
            {"start": {"date": "2026-12-04"}, "end": {"date": "2026-12-04"}},
            "The specified time range is empty.",
        ),
        ({**TIMED, "id": "Not_Base32"}, "Invalid resource id value."),
        ({**TIMED, "id": "abcw1"}, "Invalid resource id value."),
        ({**TIMED, "id": "abc1"}, "Invalid resource id value."),
        (
            {**TIMED, "start": {"dateTime": "2026-12-04T10:00:00"}},
            "Missing time zone definition for start time.",
        ),
        ({**TIMED, "end": {"dateTime": "soon", "timeZone": "UTC"}}, "Invalid end time."),
        (
            {**TIMED, "start": {"dateTime": "2026-12-04T10:00:00Z", "timeZone": "Mars/Olympus"}},
            "Invalid time zone definition for start time.",
        ),
        (
            {**TIMED, "start": {"date": "2026-12-04"}},
            "Start and end times must either both be date or both be dateTime.",
        ),
        (
            {
                "start": {"dateTime": "2026-12-04T10:00:00+01:00"},
                "end": {"dateTime": "2026-12-04T11:00:00+01:00"},
                "recurrence": ["RRULE:FREQ=DAILY;COUNT=2"],
            },
            "Missing time zone definition for start time.",
        ),
        ({**TIMED, "recurrence": ["RRULE:FREQ=SOMETIMES"]}, "Invalid recurrence rule."),
        ({**TIMED, "attendees": [{"displayName": "Nobody"}]}, "Missing attendee email."),
    ],
)
async def test_a_bad_event_is_400(http, body: dict, message: str) -> None:
    error = await refused(http, 400, "POST", EVENTS, json=body)
    assert error["message"] == message and error["status"] == "INVALID_ARGUMENT"
    assert (await ok(http, "GET", EVENTS, params={"q": "Quokka"}))["items"] == []


async def test_patch_changes_only_the_given_fields(google) -> None:
    event_id = calendar.event_id_for("approval:3")
    created = await calendar.insert_event(
        google, TIMED | {"location": "Room Ada"}, event_id=event_id
    )
    later = {"dateTime": "2026-12-04T15:00:00+01:00"}
    moved = await calendar.patch_event(
        google,
        event_id,
        {
            "summary": "Quokka sync (moved)",
            "start": later,
            "end": {"dateTime": "2026-12-04T16:00:00+01:00"},
        },
    )
    assert (moved.title, moved.location) == ("Quokka sync (moved)", "Room Ada")
    assert moved.start == datetime(2026, 12, 4, 15, tzinfo=PARIS) != created.start
    assert moved.start.tzinfo.key == "Europe/Paris"  # the event kept its zone
    all_day = await calendar.patch_event(
        google, event_id, {"start": {"date": "2026-12-05"}, "end": {"date": "2026-12-06"}}
    )
    assert (all_day.all_day, all_day.start, all_day.end) == (
        True,
        date(2026, 12, 5),
        date(2026, 12, 6),
    )
    cleared = await calendar.patch_event(google, event_id, {"location": None}, conference=True)
    assert cleared.location == "" and cleared.meet_link
    (listed,) = (await calendar.list_events(google, *WEEK, query="moved")).events
    assert listed == cleared


async def test_a_patch_counts_as_a_change_of_time_only_when_times_change(http) -> None:
    await ok(http, "POST", EVENTS, json=TIMED | {"id": "seq00001"})
    renamed = await ok(http, "PATCH", f"{EVENTS}/seq00001", json={"summary": "Renamed"})
    assert renamed["sequence"] == 0 and renamed["summary"] == "Renamed"
    moved = await ok(
        http, "PATCH", f"{EVENTS}/seq00001", json={"end": {"dateTime": "2026-12-04T11:00:00+01:00"}}
    )
    assert moved["sequence"] == 1 and moved["etag"] != renamed["etag"]
    assert moved["end"] == {"dateTime": "2026-12-04T11:00:00+01:00", "timeZone": "Europe/Paris"}
    bad = {"end": {"dateTime": "2026-12-04T09:00:00+01:00"}}
    await refused(http, 400, "PATCH", f"{EVENTS}/seq00001", json=bad)
    await refused(http, 404, "PATCH", f"{EVENTS}/nosuchevent", json={"summary": "x"})


async def test_delete_cancels_and_a_second_delete_is_410(app, google, http) -> None:
    event_id = calendar.event_id_for("approval:4")
    await calendar.insert_event(google, TIMED, event_id=event_id)
    response = await http.delete(f"{EVENTS}/{event_id}", params={"sendUpdates": "none"})
    assert (response.status_code, response.content) == (204, b"")
    assert (await calendar.get_event(google, event_id)).status == "cancelled"
    assert (await calendar.list_events(google, *WEEK, query="Quokka")).events == []
    assert await calendar.delete_event(google, event_id) is False
    error = await refused(http, 410, "DELETE", f"{EVENTS}/{event_id}")
    assert error["errors"][0]["reason"] == "deleted" and "status" not in error
    shown = await ok(http, "GET", EVENTS, params={"q": "Quokka", "showDeleted": "true"})
    assert [event["status"] for event in shown["items"]] == ["cancelled"]
    with pytest.raises(NotFound) as raised:
        await calendar.delete_event(google, "nosuchevent")
    assert raised.value.status == 404


async def test_delete_a_seeded_event_and_one_instance_of_a_series(google) -> None:
    week = (await calendar.list_events(google, *WEEK)).events
    dentist = next(event for event in week if event.title == "Dentist")
    assert await calendar.delete_event(google, dentist.id) is True
    standups = [event for event in week if event.title == "Daily stand-up"]
    assert await calendar.delete_event(google, standups[1].id) is True
    assert await calendar.delete_event(google, standups[1].id) is False
    after = (await calendar.list_events(google, *WEEK)).events
    assert dentist.id not in {event.id for event in after}
    assert [e.id for e in after if e.title == "Daily stand-up"] == [
        e.id for e in standups if e.id != standups[1].id
    ]
    vendor_demo = (await calendar.list_events(google, *WEEK, query="Vendor demo")).events
    assert vendor_demo == []  # seeded as cancelled: deleting it again is a 410
    series = standups[0].id.partition("_")[0]
    assert await calendar.delete_event(google, series) is True
    assert [e for e in (await calendar.list_events(google, *WEEK)).events if e.recurring] == []


async def test_respond_to_an_invitation(google, http) -> None:
    week = (await calendar.list_events(google, *WEEK)).events
    review = next(event for event in week if event.title == "Design review: onboarding flow")
    assert {a.email: a.response for a in review.attendees}[ME] == "needsAction"
    accepted = await calendar.respond_to_event(google, review.id, "accepted", email=ME)
    responses = {a.email: a.response for a in accepted.attendees}
    assert responses == {a.email: a.response for a in review.attendees} | {ME: "accepted"}
    again = (await calendar.list_events(google, *WEEK, query="Design review")).events[0]
    assert again == accepted
    others = [a for a in (await ok(http, "GET", f"{EVENTS}/{review.id}"))["attendees"]]
    others[0]["responseStatus"] = "declined"  # the organizer's: not ours to change
    error = await refused(http, 403, "PATCH", f"{EVENTS}/{review.id}", json={"attendees": others})
    assert error["errors"][0]["reason"] == "forbiddenForNonOrganizer"


async def test_respond_to_one_instance_of_a_recurring_event(google) -> None:
    standups = [e for e in (await calendar.list_events(google, *WEEK)).events if e.recurring]
    declined = await calendar.respond_to_event(google, standups[2].id, "declined", email=ME)
    assert declined.declined_by_me and declined.id == standups[2].id
    after = [e for e in (await calendar.list_events(google, *WEEK)).events if e.recurring]
    assert [e.declined_by_me for e in after] == [e.id == standups[2].id for e in standups]
    assert (await calendar.get_event(google, standups[2].id)) == declined
    day = standups[2].start
    free = calendar.free_slots(after, day.replace(hour=9), day.replace(hour=10), 30, PARIS)
    assert (day.replace(hour=9, minute=30), day.replace(hour=10)) in free


async def test_responding_to_ones_own_event_without_guests(google) -> None:
    dentist = (await calendar.list_events(google, *WEEK, query="Dentist")).events[0]
    with pytest.raises(BadRequest):
        await calendar.respond_to_event(google, dentist.id, "declined", email=ME)


# Gmail


async def test_a_sent_mail_is_in_sent_and_found_by_its_message_id(app, google, http) -> None:
    message = mail("Réunion café ☕ jeudi", message_id="<agenticpal.1@example.com>")
    sent = await gmail.send_message(google, message)
    assert sent.label_ids == ("SENT",) and sent.thread_id == sent.id
    assert await gmail.find_by_rfc822_id(google, "<agenticpal.1@example.com>") == sent
    assert await gmail.find_by_rfc822_id(google, "agenticpal.2@example.com") is None
    found = await gmail.search_messages(google, "in:sent")
    assert found[0].id == sent.id and found[0].subject == "Réunion café ☕ jeudi"
    assert found[0].to == "Zoë Müller <zoe.mueller@example.de>"
    read = await gmail.get_message(google, sent.id)
    assert (read.message_id, read.text) == ("<agenticpal.1@example.com>", "Here they are.")
    full = await ok(http, "GET", f"{MESSAGES}/{sent.id}")
    assert_matches(full, "gmail_message_full.json", "gmail_thread.json:messages")
    assert ("POST", f"{MESSAGES}/send") in requests(app)


async def test_a_reply_stays_in_its_thread(google) -> None:
    (original,) = await gmail.search_messages(google, "from:priya is:unread subject:roadmap")
    context = await gmail.reply_context(google, original.id)
    assert context.subject == "Re: Q4 roadmap review" and "hiring plan" in context.text
    reply = build_message(
        sender=ME,
        to=[context.reply_to or context.sender],
        subject=reply_subject(context.subject),
        body="Sure, I'll add it.",
        in_reply_to=context.rfc822_id,
        references=context.reply_references,
    )
    sent = await gmail.send_message(google, reply, thread_id=context.thread_id)
    assert sent.thread_id == context.thread_id
    thread = await gmail.get_thread(google, context.thread_id)
    assert [m.id for m in thread][-2:] == [original.id, sent.id]
    assert thread[-1].references.split() == [*context.references.split(), context.rfc822_id]
    other_topic = mail("Something else", to=["priya.natarajan@example.com"])
    elsewhere = await gmail.send_message(google, other_topic, thread_id=context.thread_id)
    assert elsewhere.thread_id == elsewhere.id  # Gmail threads only matching subjects


async def test_send_fills_in_the_sender_the_date_and_a_message_id(google, http) -> None:
    raw = (
        base64.urlsafe_b64encode(
            b"From: Someone <someone@else.example>\r\nTo: bob@example.com\r\nSubject: Hi\r\n\r\nHello"
        )
        .decode()
        .rstrip("=")
    )
    sent = await ok(http, "POST", f"{MESSAGES}/send", json={"raw": raw})
    assert_matches(sent, "gmail_message_labels.json")
    headers = {
        h["name"]: h["value"]
        for h in (await ok(http, "GET", f"{MESSAGES}/{sent['id']}"))["payload"]["headers"]
    }
    assert headers["From"] == ME
    assert headers["Message-ID"].startswith("<") and headers["Message-ID"].endswith(">")
    assert headers["Date"]
    found = await gmail.find_by_rfc822_id(google, headers["Message-ID"])
    assert found is not None and found.id == sent["id"]
    to_me = await gmail.send_message(google, mail(to=[ME]))
    assert to_me.label_ids == ("SENT", "INBOX", "UNREAD")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "'raw' RFC822 payload message string or uploading message via /upload/* URL required"),
        (
            {"raw": base64.urlsafe_b64encode(b"Subject: Hi\r\n\r\nHello").decode()},
            "Recipient address required",
        ),
        (
            {"raw": base64.urlsafe_b64encode(b"To: Bob, Ann\r\n\r\nHi").decode()},
            "Invalid To header",
        ),
        ({"raw": "!!!"}, "Invalid value for ByteString: !!!"),
    ],
)
async def test_a_bad_send_is_400(http, body: dict, message: str) -> None:
    error = await refused(http, 400, "POST", f"{MESSAGES}/send", json=body)
    assert error["message"] == message
    assert (await ok(http, "GET", MESSAGES, params={"q": "in:sent newer_than:1h"})) == {
        "resultSizeEstimate": 0
    }


async def test_a_send_to_an_unknown_thread_is_404(http) -> None:
    body = {"raw": encode_raw(mail()), "threadId": "ffffffffffffffff"}
    await refused(http, 404, "POST", f"{MESSAGES}/send", json=body)


async def test_a_draft_is_a_message_with_the_draft_label(google, http) -> None:
    message = mail("Draft: offsite", message_id="<agenticpal.draft@example.com>")
    draft = await gmail.create_draft(google, message)
    assert draft.label_ids == ("DRAFT",) and draft.draft_id.startswith("r")
    raw = await ok(
        http, "POST", "/gmail/v1/users/me/drafts", json={"message": {"raw": encode_raw(mail())}}
    )
    assert_matches(raw, "gmail_draft.json")
    assert await gmail.find_by_rfc822_id(
        google, "<agenticpal.draft@example.com>"
    ) == without_draft_id(draft)
    sent = await gmail.send_message(google, message)
    assert await gmail.find_by_rfc822_id(google, "<agenticpal.draft@example.com>") == sent
    drafts = await gmail.search_messages(google, "label:draft")
    assert [m.id for m in drafts] == [raw["message"]["id"], draft.id]  # newest first


def without_draft_id(sent: gmail.Sent) -> gmail.Sent:
    return gmail.Sent(sent.id, sent.thread_id, sent.label_ids)


async def test_labels_archive_read_star_and_trash(google, http) -> None:
    (contract,) = await gmail.search_messages(google, "subject:contract is:starred")
    labels = await gmail.modify_message(google, contract.id, remove=["INBOX", "UNREAD"])
    assert "INBOX" not in labels and "UNREAD" not in labels and "STARRED" in labels
    assert contract.id not in {m.id for m in await gmail.search_messages(google, "in:inbox")}
    assert (await gmail.get_message(google, contract.id)).unread is False
    receipts = await gmail.label_id(google, "receipts")
    labels = await gmail.modify_message(google, contract.id, add=[receipts, "UNREAD"])
    assert labels[-2:] == (receipts, "UNREAD")
    assert contract.id in {m.id for m in await gmail.search_messages(google, "label:receipts")}
    assert await gmail.label_id(google, "inbox") == "INBOX"
    assert await gmail.label_id(google, "No such label") is None
    error = await refused(
        http, 400, "POST", f"{MESSAGES}/{contract.id}/modify", json={"addLabelIds": ["Nope"]}
    )
    assert error["message"] == "Invalid label: Nope"
    await gmail.trash_message(google, contract.id)
    trashed = await ok(http, "GET", f"{MESSAGES}/{contract.id}", params={"format": "minimal"})
    assert "TRASH" in trashed["labelIds"] and "INBOX" not in trashed["labelIds"]
    assert_matches(
        {k: trashed[k] for k in ("id", "threadId", "labelIds")}, "gmail_message_labels.json"
    )
    assert await gmail.search_messages(google, "subject:contract") == []
    in_trash = await gmail.search_messages(google, "in:trash")
    assert [m.id for m in in_trash] == [contract.id]
    with pytest.raises(NotFound):
        await gmail.trash_message(google, "0000000000000000")


# Tasks


async def test_insert_complete_reopen_and_delete_a_task(google) -> None:
    (my_tasks, _) = await tasks.list_tasklists(google)
    created = await tasks.insert_task(
        google,
        my_tasks.id,
        {"title": "Call Priya", "notes": "About the offsite", "due": "2026-12-04"},
    )
    assert (created.title, created.due, created.status) == (
        "Call Priya",
        date(2026, 12, 4),
        "needsAction",
    )
    listed = await tasks.list_tasks(google, my_tasks.id)
    assert listed[0] == created  # a new task is first
    done = await tasks.patch_task(google, my_tasks.id, created.id, {"status": "completed"})
    assert done.completed and done.completed_at == NOW
    reopened = await tasks.patch_task(
        google, my_tasks.id, created.id, {"status": "needsAction", "completed": None}
    )
    assert (reopened.completed, reopened.completed_at) == (False, None)
    assert await tasks.delete_task(google, my_tasks.id, created.id) is True
    assert await tasks.delete_task(google, my_tasks.id, created.id) is False
    assert created.id not in {task.id for task in await tasks.list_tasks(google, my_tasks.id)}


async def test_subtasks_and_a_new_list(google, http) -> None:
    trip = await tasks.insert_tasklist(google, "Trip to Berlin")
    assert trip.title == "Trip to Berlin" and trip.updated == NOW
    assert [x.title for x in await tasks.list_tasklists(google)][-1] == "Trip to Berlin"
    parent = await tasks.insert_task(google, trip.id, {"title": "Pack"})
    first = await tasks.insert_task(google, trip.id, {"title": "Passport"}, parent=parent.id)
    second = await tasks.insert_task(google, trip.id, {"title": "Charger"}, parent=parent.id)
    listed = await tasks.list_tasks(google, trip.id)
    assert [(t.title, t.parent) for t in listed] == [
        ("Pack", None),
        ("Charger", parent.id),
        ("Passport", parent.id),
    ]
    raw = await ok(http, "GET", f"/tasks/v1/lists/{trip.id}/tasks")
    assert_matches(raw, "tasks_tasks_list.json")
    assert await tasks.delete_task(google, trip.id, parent.id) is True
    assert await tasks.list_tasks(google, trip.id) == []
    assert {first.id, second.id}.isdisjoint(t.id for t in await tasks.list_tasks(google, trip.id))
    await refused(http, 400, "POST", "/tasks/v1/users/@me/lists", json={})
    await refused(http, 404, "POST", "/tasks/v1/lists/nosuchlist/tasks", json={"title": "x"})
    await refused(http, 400, "POST", f"/tasks/v1/lists/{trip.id}/tasks", json={"due": "soon"})
    await refused(
        http, 400, "POST", f"/tasks/v1/lists/{trip.id}/tasks", params={"parent": "nope"}, json={}
    )


async def test_find_task_sees_an_insert_that_reached_google(google) -> None:
    before = NOW - timedelta(seconds=1)
    assert await tasks.find_task(google, "@default", title="Call Priya", updated_min=before) is None
    created = await tasks.insert_task(google, "@default", {"title": "Call Priya"})
    found = await tasks.find_task(google, "@default", title="Call Priya", updated_min=before)
    assert found == created
    later = NOW + timedelta(seconds=1)
    assert await tasks.find_task(google, "@default", title="Call Priya", updated_min=later) is None
    seeded = "Renew passport"  # updated two days ago
    assert await tasks.find_task(google, "@default", title=seeded, updated_min=before) is None


async def test_unknown_tasks_are_404(http) -> None:
    await refused(http, 404, "PATCH", "/tasks/v1/lists/@default/tasks/nosuchtask", json={})
    await refused(http, 404, "DELETE", "/tasks/v1/lists/@default/tasks/nosuchtask")
