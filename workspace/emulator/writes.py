"""The write endpoints of the Workspace emulator: Calendar events, Gmail sends, drafts,
labels and trash, Tasks and task lists.

Each handler checks its request as Google does (400 with Google's messages for a bad
body, 404 for an unknown id, 409 for an event id already taken, 410 for an event
deleted before) and changes the user's state in place, so later reads see the change:
an inserted event is listed, a sent mail is in ``in:sent`` (and found by
``rfc822msgid:``), a deleted event is ``cancelled``. The routes are appended to
``app.ROUTES``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, date, datetime, time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as email_policy
from email.utils import format_datetime, getaddresses
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

from .app import (
    Call,
    GoogleError,
    Handler,
    Json,
    _check_calendar,
    _localized,
    _millis,
    _span,
    bad_value,
    find_event,
    not_found,
)
from .seed import API, UserState, etag, meet_data, opaque_id, rfc3339, stamp

SEND_UPDATES = ("all", "externalOnly", "none")
EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")  # base32hex, lower case
EVENT_STATUSES = ("confirmed", "tentative", "cancelled")
RESPONSES = ("needsAction", "declined", "tentative", "accepted")
READ_ONLY_EVENT_FIELDS = frozenset(
    {"kind", "etag", "id", "htmlLink", "created", "updated", "creator", "organizer", "iCalUID"}
    | {"sequence", "recurringEventId", "originalStartTime", "hangoutLink", "eventType"}
)
TASK_FIELDS = ("title", "notes", "status", "due", "completed")
TASK_STATUSES = ("needsAction", "completed")
SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|tr|aw|wg)\s*:\s*)+", re.IGNORECASE)


def invalid(message: str, reason: str = "invalid") -> GoogleError:
    return GoogleError(400, message, reason)


# Calendar


def events_insert(call: Call) -> Json:
    _check_calendar(call)
    user, body = call.user, call.body
    call.choice("sendUpdates", SEND_UPDATES)
    event_id = body["id"] if "id" in body else _new_event_id(user)
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        raise invalid("Invalid resource id value.")
    if event_id in user.events:
        raise GoogleError(409, "The requested identifier already exists.", "duplicate")
    owner = {"email": user.email, "self": True}
    eid = base64.urlsafe_b64encode(f"{event_id} {user.email}".encode()).decode().rstrip("=")
    event: Json = {
        "kind": "calendar#event",
        "etag": etag(event_id, stamp(call.now)),
        "id": event_id,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
        "created": stamp(call.now),
        "updated": stamp(call.now),
        **_writable(body),
        "creator": owner,
        "organizer": owner,
        "iCalUID": f"{event_id}@google.com",
        "sequence": 0,
        "reminders": {"useDefault": True},
        "eventType": "default",
    }
    event = _checked_event(call, event, None)
    user.events[event_id] = event
    return _localized(event, call.zone())


def events_patch(call: Call) -> Json:
    _check_calendar(call)
    user, event_id = call.user, call.path["eventId"]
    call.choice("sendUpdates", SEND_UPDATES)
    old = find_event(user, event_id)
    if old is None:
        raise not_found()
    patch = _writable(call.body)
    if "recurringEventId" in old:
        patch.pop("recurrence", None)  # an instance cannot become a series
    new = _checked_event(call, _merged(old, patch), old)
    if old["organizer"]["email"] != user.email and _others(new, user) != _others(old, user):
        raise GoogleError(
            403,
            "Shared properties can only be changed by the organizer of the event.",
            "forbiddenForNonOrganizer",
        )
    moved = (new["start"], new["end"]) != (old["start"], old["end"])
    new |= {
        "updated": stamp(call.now),
        "etag": etag(event_id, stamp(call.now), str(user.next_serial())),
        "sequence": old.get("sequence", 0) + moved,
    }
    _store_event(user, new)
    return _localized(new, call.zone())


def events_delete(call: Call) -> None:
    _check_calendar(call)
    user, event_id = call.user, call.path["eventId"]
    call.choice("sendUpdates", SEND_UPDATES)
    event = find_event(user, event_id)
    if event is None:
        raise not_found()
    if event["status"] == "cancelled":
        raise GoogleError(410, "Resource has been deleted", "deleted")
    cancelled = {"status": "cancelled", "updated": stamp(call.now)}
    _store_event(user, event | cancelled | {"etag": etag(event_id, "cancelled")})
    for instance_id, instance in list(user.overrides.items()):  # a series takes its exceptions
        if instance["recurringEventId"] == event_id:
            user.overrides[instance_id] = instance | cancelled
    return None


def _new_event_id(user: UserState) -> str:
    """An id as Google makes them: 26 base32hex characters."""
    digest = hashlib.sha256(f"event|{user.email}|{user.next_serial()}".encode()).digest()
    return base64.b32hexencode(digest).decode().lower()[:26]


def _writable(body: Json) -> Json:
    return {key: value for key, value in body.items() if key not in READ_ONLY_EVENT_FIELDS}


def _merged(old: Json, patch: Json) -> Json:
    """A patch's semantics: objects merged key by key, ``null`` removes, lists replace."""
    merged = dict(old)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _store_event(user: UserState, event: Json) -> None:
    if "recurringEventId" in event:  # an instance changed on its own
        user.overrides[event["id"]] = event
    else:
        user.events[event["id"]] = event


def _others(event: Json, user: UserState) -> list[Json]:
    """The attendees but the user, as an attendee who is not the organizer may not change."""
    return [a for a in event.get("attendees", []) if a.get("email") != user.email]


def _checked_event(call: Call, event: Json, old: Json | None) -> Json:
    """``event`` (new, or ``old`` patched) with its times, attendees and conference
    checked and written as Google does; a 400 for what Google refuses."""
    event = dict(event)
    if event.get("status") not in EVENT_STATUSES:
        raise invalid("Invalid value for: status")
    if event.get("transparency", "opaque") not in ("opaque", "transparent"):
        raise invalid("Invalid value for: transparency")
    for key in ("summary", "description", "location"):
        if not isinstance(event.get(key, ""), str):
            raise invalid(f"Invalid value for: {key}")
    recurring = "recurrence" in event
    (event["start"], start), (event["end"], end) = (
        _event_time(event.get(key), key, recurring) for key in ("start", "end")
    )
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise invalid("Start and end times must either both be date or both be dateTime.")
    if end < start or (not isinstance(start, datetime) and end == start):
        raise invalid("The specified time range is empty.", "timeRangeEmpty")
    if recurring:
        _check_recurrence(event)
    if "attendees" in event:
        event["attendees"] = _attendees(event["attendees"], call.user, event["organizer"]["email"])
        if not event["attendees"]:
            del event["attendees"]
    before = (old or {}).get("conferenceData")
    if call.choice("conferenceDataVersion", ("0", "1"), "0") != "1":
        event.pop("conferenceData", None)  # left as it was without conferenceDataVersion=1
        event |= {"conferenceData": before} if before else {}
    elif "createRequest" in (call.body.get("conferenceData") or {}):
        event |= _conference(call.body["conferenceData"]["createRequest"])
    return event


def _event_time(value: Any, key: str, recurring: bool) -> tuple[Json, date | datetime]:
    """An EventDateTime checked, and its day or moment."""
    if not isinstance(value, dict) or not (value.get("date") or value.get("dateTime")):
        raise invalid(f"Missing {key} time.", "required")
    zone_name = value.get("timeZone")
    zone = None
    if zone_name is not None:
        try:
            zone = ZoneInfo(str(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid(f"Invalid time zone definition for {key} time.") from None
    where = {"timeZone": zone_name} if zone_name else {}
    try:
        if value.get("date") is not None:
            if value.get("dateTime") is not None:
                raise ValueError("both")
            day = date.fromisoformat(value["date"])
            return {"date": day.isoformat(), **where}, day
        moment = datetime.fromisoformat(value["dateTime"])
    except (TypeError, ValueError):
        raise invalid(f"Invalid {key} time.") from None
    if (moment.tzinfo is None or recurring) and zone is None:
        raise invalid(f"Missing time zone definition for {key} time.", "required")
    moment = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment
    return {"dateTime": rfc3339(moment.astimezone(zone) if zone else moment), **where}, moment


def _check_recurrence(event: Json) -> None:
    rules = event["recurrence"]
    if not isinstance(rules, list) or not all(isinstance(rule, str) for rule in rules):
        raise invalid("Invalid recurrence rule.")
    start = _span(event, ZoneInfo(event["start"].get("timeZone", "UTC")))[0]
    try:
        rrulestr("\n".join(rules), dtstart=start, forceset=True)
    except (TypeError, ValueError):
        raise invalid("Invalid recurrence rule.") from None


def _attendees(value: Any, user: UserState, organizer: str) -> list[Json]:
    """Each attendee with ``responseStatus``, ``self`` and ``organizer`` as Google sets them;
    the organizer among them (accepted) when someone is invited."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid("Invalid value for: attendees")
    attendees: list[Json] = []
    for attendee in value:
        email = attendee.get("email")
        if not email:
            raise invalid("Missing attendee email.", "required")
        if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
            raise invalid("Invalid attendee email.")
        response = attendee.get("responseStatus", "needsAction")
        if response not in RESPONSES:
            raise invalid("Invalid value for: responseStatus")
        attendees.append(
            {
                key: attendee[key]
                for key in ("displayName", "optional", "comment", "additionalGuests")
                if attendee.get(key)
            }
            | {"email": email, "responseStatus": response}
            | ({"organizer": True} if email == organizer else {})
            | ({"self": True} if email == user.email else {})
        )
    if attendees and organizer not in {a["email"] for a in attendees}:
        attendees.insert(
            0,
            {"email": organizer, "organizer": True, "responseStatus": "accepted"}
            | ({"self": True} if organizer == user.email else {}),
        )
    return attendees


def _conference(create: Any) -> Json:
    """A Meet for ``conferenceData.createRequest`` (the same one for the same requestId)."""
    if not isinstance(create, dict) or not isinstance(create.get("requestId"), str):
        raise invalid("Invalid conference create request.")
    solution = create.get("conferenceSolutionKey", {"type": "hangoutsMeet"})
    if not isinstance(solution, dict) or solution.get("type") != "hangoutsMeet":
        raise invalid("Invalid conference type value.")
    meet = meet_data(create["requestId"])
    request = {
        "requestId": create["requestId"],
        "conferenceSolutionKey": {"type": "hangoutsMeet"},
        "status": {"statusCode": "success"},
    }
    return meet | {"conferenceData": {"createRequest": request, **meet["conferenceData"]}}


# Gmail


def messages_send(call: Call) -> Json:
    mime = _mime(call, call.body)
    addresses = [a for _, a in getaddresses(_all(mime, "To", "Cc", "Bcc"))]
    if not addresses:
        raise invalid("Recipient address required", "invalidArgument")
    for name in ("To", "Cc", "Bcc"):
        if any("@" not in a for _, a in getaddresses(_all(mime, name))):
            raise invalid(f"Invalid {name} header", "invalidArgument")
    labels = ["SENT"] + (["INBOX", "UNREAD"] if call.user.email in addresses else [])
    record = _store_message(call, mime, labels, call.body.get("threadId"))
    return {key: record[key] for key in ("id", "threadId", "labelIds")}


def drafts_create(call: Call) -> Json:
    message = call.body.get("message")
    if not isinstance(message, dict):
        raise invalid("Message is required", "invalidArgument")
    record = _store_message(call, _mime(call, message), ["DRAFT"], message.get("threadId"))
    draft_id = f"r{int(record['id'], 16) % 10**19}"
    call.user.drafts[draft_id] = record["id"]
    return {"id": draft_id, "message": {key: record[key] for key in ("id", "threadId", "labelIds")}}


def messages_modify(call: Call) -> Json:
    record = _stored_message(call)
    add, remove = (call.body.get(key, []) for key in ("addLabelIds", "removeLabelIds"))
    for ids in (add, remove):
        if not isinstance(ids, list):
            raise invalid("Invalid label ids", "invalidArgument")
        for label in ids:
            if label not in call.user.labels:
                raise invalid(f"Invalid label: {label}", "invalidArgument")
    _relabel(call.user, record, add, remove)
    return {key: record[key] for key in ("id", "threadId", "labelIds")}


def messages_trash(call: Call) -> Json:
    record = _stored_message(call)
    _relabel(call.user, record, ["TRASH"], ["INBOX"])
    return {key: record[key] for key in ("id", "threadId", "labelIds")}


def _stored_message(call: Call) -> Json:
    record = call.user.messages.get(call.path["id"])
    if record is None:
        raise not_found()
    return record


def _relabel(user: UserState, record: Json, add: list[str], remove: list[str]) -> None:
    kept = [label for label in record["labelIds"] if label not in remove]
    record["labelIds"] = kept + [label for label in dict.fromkeys(add) if label not in kept]
    record["historyId"] = _next_history(user)


def _mime(call: Call, message: Json) -> EmailMessage:
    """The ``raw`` message, as Gmail stores it: From is the user, a Date and a Message-ID
    are added when missing."""
    raw = message.get("raw")
    if not raw:
        raise invalid(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
            "invalidArgument",
        )
    text = "".join(str(raw).split())
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"Invalid value for ByteString: {str(raw)[:40]}") from None
    mime = message_from_bytes(data, policy=email_policy)
    senders = getaddresses(_all(mime, "From"))
    if [address for _, address in senders] != [call.user.email]:
        del mime["From"]
        mime["From"] = call.user.email
    if mime["Date"] is None:
        mime["Date"] = format_datetime(call.now)
    if mime["Message-ID"] is None:
        serial = str(call.user.next_serial())
        mime["Message-ID"] = f"<{opaque_id('mail', call.user.email, serial)}@mail.gmail.com>"
    return message_from_bytes(mime.as_bytes(), policy=email_policy)


def _all(mime: EmailMessage, *names: str) -> list[str]:
    return [str(value) for name in names for value in mime.get_all(name, [])]


def _store_message(call: Call, mime: EmailMessage, labels: list[str], thread: Any) -> Json:
    """A new message in the mailbox; in ``thread`` when given and the subjects match (as
    Gmail threads a reply), else in a thread of its own."""
    user = call.user
    if thread is not None:
        members = [m for m in user.messages.values() if m["threadId"] == thread]
        if not members:
            raise not_found()
        if _topic(str(members[0]["mime"].get("Subject", ""))) != _topic(mime.get("Subject", "")):
            thread = None
    millis = _millis(call.now)
    message_id = f"{millis << 20 | user.next_serial() % (1 << 20):016x}"
    while message_id in user.messages:
        message_id = f"{int(message_id, 16) + 1:016x}"
    record = {
        "id": message_id,
        "threadId": thread or message_id,
        "labelIds": labels,
        "historyId": _next_history(user),
        "internalDate": str(millis),
        "mime": mime,
    }
    user.messages[message_id] = record
    return record


def _topic(subject: str) -> str:
    """A subject without its Re:/Fwd: prefixes, as Gmail compares them to thread a reply."""
    return " ".join(SUBJECT_PREFIX.sub("", subject or "").split()).casefold()


def _next_history(user: UserState) -> str:
    return str(max((int(m["historyId"]) for m in user.messages.values()), default=0) + 1)


# Tasks


def tasks_insert(call: Call) -> Json:
    list_id, tasks = _tasklist(call)
    parent, previous = call.query.get("parent"), call.query.get("previous")
    if parent is not None and parent not in tasks:
        raise bad_value("parent", parent)
    task_id = opaque_id("task", list_id, call.user.email, str(call.user.next_serial()))
    task = {
        "kind": "tasks#task",
        "id": task_id,
        "etag": etag(task_id),
        "title": "",
        "updated": stamp(call.now),
        "selfLink": f"{API}/tasks/v1/lists/{list_id}/tasks/{task_id}",
        **({"parent": parent} if parent else {}),
        "position": "",
        "status": "needsAction",
        "links": [],
        "webViewLink": f"https://tasks.google.com/task/{task_id}?sa=6",
    }
    _apply_task(task, call.body, call.now)
    siblings = sorted(
        (t for t in tasks.values() if t.get("parent") == parent), key=lambda t: t["position"]
    )
    if previous is not None and previous not in {t["id"] for t in siblings}:
        raise bad_value("previous", previous)
    at = next((n + 1 for n, t in enumerate(siblings) if t["id"] == previous), 0)
    siblings.insert(at, task)
    for position, sibling in enumerate(siblings):  # Google renumbers; the new one is first
        sibling["position"] = f"{position:020d}"
    tasks[task_id] = task
    return task


def tasks_patch(call: Call) -> Json:
    _, tasks = _tasklist(call)
    task = tasks.get(call.path["task"])
    if task is None:
        raise not_found()
    _apply_task(task, call.body, call.now)
    return task


def tasks_delete(call: Call) -> None:
    _, tasks = _tasklist(call)
    task_id = call.path["task"]
    if task_id not in tasks:
        raise not_found()
    doomed = {task_id}
    while children := {t["id"] for t in tasks.values() if t.get("parent") in doomed} - doomed:
        doomed |= children  # subtasks go with their parent
    for gone in doomed:
        del tasks[gone]
    return None


def tasklists_insert(call: Call) -> Json:
    title = call.body.get("title")
    if not isinstance(title, str) or not title.strip():
        raise invalid("Invalid task list title.", "invalidArgument")
    user = call.user
    list_id = opaque_id("tasklist", user.email, str(user.next_serial()))
    user.tasklists[list_id] = {
        "kind": "tasks#taskList",
        "id": list_id,
        "etag": etag(list_id, stamp(call.now)),
        "title": title,
        "updated": stamp(call.now),
        "selfLink": f"{API}/tasks/v1/users/@me/lists/{list_id}",
    }
    user.tasks[list_id] = {}
    return user.tasklists[list_id]


def _tasklist(call: Call) -> tuple[str, dict[str, Json]]:
    tasks, list_id = call.user.tasks, call.path["tasklist"]
    if list_id == "@default":
        list_id = next(iter(tasks))
    if list_id not in tasks:
        raise not_found()
    return list_id, tasks[list_id]


def _apply_task(task: Json, body: Json, now: datetime) -> None:
    """The writable fields of ``body`` on ``task`` (``null`` clears one); completing sets
    ``completed``, reopening clears it."""
    for key in TASK_FIELDS:
        if key not in body:
            continue
        value = body[key]
        if value is None:
            task.pop(key, None)
        elif (key == "status" and value in TASK_STATUSES) or (
            key in ("title", "notes") and isinstance(value, str)
        ):
            task[key] = value
        elif key == "due":
            task[key] = stamp(datetime.combine(_day(value, key), time(), UTC))
        elif key == "completed":
            task[key] = stamp(_moment(value, key))
        else:
            raise invalid(f"Invalid value for: {key}")
    task.setdefault("title", "")
    task.setdefault("status", "needsAction")
    if task["status"] == "completed":
        task.setdefault("completed", stamp(now))
    else:
        for key in ("completed", "hidden"):
            task.pop(key, None)
    task["updated"] = stamp(now)
    task["etag"] = etag(task["id"], task["updated"], repr(sorted(task.items())))


def _day(value: Any, key: str) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise invalid(f"Invalid value for: {key}") from None


def _moment(value: Any, key: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise invalid(f"Invalid value for: {key}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/calendar/v3/calendars/{calendarId}/events", events_insert),
    ("PATCH", "/calendar/v3/calendars/{calendarId}/events/{eventId}", events_patch),
    ("DELETE", "/calendar/v3/calendars/{calendarId}/events/{eventId}", events_delete),
    ("POST", "/gmail/v1/users/me/messages/send", messages_send),
    ("POST", "/gmail/v1/users/me/drafts", drafts_create),
    ("POST", "/gmail/v1/users/me/messages/{id}/modify", messages_modify),
    ("POST", "/gmail/v1/users/me/messages/{id}/trash", messages_trash),
    ("POST", "/tasks/v1/users/@me/lists", tasklists_insert),
    ("POST", "/tasks/v1/lists/{tasklist}/tasks", tasks_insert),
    ("PATCH", "/tasks/v1/lists/{tasklist}/tasks/{task}", tasks_patch),
    ("DELETE", "/tasks/v1/lists/{tasklist}/tasks/{task}", tasks_delete),
]
