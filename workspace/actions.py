"""The assistant's Google Workspace write tools: nothing changes before the user approves
it, and an approved change happens exactly once.

Every write tool takes one path (:func:`perform`). Its arguments (a pydantic schema, the
same one an edit is validated with) are resolved into a :class:`Plan`: one sentence a
person checks quickly ("Send to ann@example.com, subject ...") and the exact request.
Unless the policy (:func:`needs_approval`) lets the action run at once (a draft, by
default), the run then pauses with LangGraph's ``interrupt()`` whose JSON payload is the
approval card. The resume value is the user's decision (the approve / edit / reject
convention): ``approve`` runs the plan that was shown, ``edit`` plans the changed
arguments again (an invalid edit asks again, with the error on the card), ``reject``
runs nothing and tells the model why.

Exactly once: a node runs again from its start when it resumes, and a worker can die
between "Google accepted the request" and "checkpoint written". Each approved action
has a key derived from its interrupt id (a run's own key for an action that needs no
approval) and a record in Redis (:func:`agenticpal.redis_keys.action_key`, db 0):
``started`` before Google is called, ``done`` with Google's answer after. A retry
returns the recorded answer; a record left ``started`` is checked with Google first:
an event insert carries a client-chosen event id (a repeat answers 409), a mail carries
a Message-ID derived from the key (found again with ``rfc822msgid:``), a new task or
list is looked up by title and time; updates, label changes, answers and deletes are
idempotent by nature. Each outcome is appended to the thread's audit trail.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.errors import MessageError
from email.headerregistry import Address
from email.utils import getaddresses, parseaddr
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from django.conf import settings
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_config
from langgraph.types import interrupt
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_async_client
from workspace.dates import DateParseError, parse_moment
from workspace.google import calendar, gmail, mail, tasks
from workspace.google.client import GoogleClient, NotFound
from workspace.tools import Result, local, notice, run_tool, safe_link

logger = logging.getLogger("workspace.actions")

DEFAULT_EVENT_MINUTES = 60
BODY_PREVIEW = 300  # characters of a mail body on the card's one-line summary
Fault = Callable[[str], None]
fault: Fault | None = None  # tests: called at every step boundary of an execution


def _step(name: str) -> None:
    if fault is not None:
        fault(name)


# --- argument schemas (the tools' and the edit form's) ----------------------------------

ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]{2,}$")


def _addresses(values: list[str]) -> list[str]:
    found: list[str] = []
    for name, address in getaddresses([v for v in values if v and v.strip()]):
        if not ADDRESS.match(address):
            raise ValueError(f"{address or name!r} is not an email address")
        try:
            found.append(str(Address(display_name=name, addr_spec=address)) if name else address)
        except (ValueError, MessageError):
            raise ValueError(f"{address!r} is not an email address") from None
    return found


Addresses = Annotated[list[str], AfterValidator(_addresses)]
Text = Annotated[str, Field(max_length=10_000)]
Line = Annotated[str, Field(max_length=500)]


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CreateEvent(Args):
    title: Line = Field(min_length=1, description="The event's title.")
    start: Line = Field(description='When it starts: "next Tuesday 2pm", RFC 3339, a date.')
    end: Line = Field("", description="When it ends; empty: start + duration_minutes.")
    duration_minutes: int = Field(DEFAULT_EVENT_MINUTES, ge=5, le=24 * 60 * 14)
    all_day: bool = Field(False, description="An all-day event (start and end are dates).")
    attendees: Addresses = Field(default_factory=list, description="Guests' email addresses.")
    location: Line = ""
    description: Text = ""
    meet: bool = Field(False, description="Add a Google Meet video call.")
    recurrence: Line = Field(
        "", description='"daily", "weekdays", "weekly", "monthly", or an RRULE; empty: once.'
    )


class UpdateEvent(Args):
    event_id: Line = Field(min_length=1, description="The event's id.")
    title: Line | None = None
    start: Line | None = Field(None, description="A new start (the length is kept).")
    end: Line | None = None
    location: Line | None = None
    description: Text | None = None
    attendees: Addresses | None = Field(None, description="The whole new guest list.")


class DeleteEvent(Args):
    event_id: Line = Field(min_length=1)
    notify: bool = Field(True, description="Email the guests that it is cancelled.")


class RespondToEvent(Args):
    event_id: Line = Field(min_length=1)
    response: Literal["accepted", "declined", "tentative"]


class SendEmail(Args):
    to: Addresses = Field(min_length=1, description="Recipients' addresses.")
    cc: Addresses = Field(default_factory=list)
    bcc: Addresses = Field(default_factory=list)
    subject: Line = ""
    body: Text = Field(min_length=1, description="The mail's text.")


class ReplyEmail(Args):
    message_id: Line = Field(min_length=1, description="The id of the message to answer.")
    body: Text = Field(min_length=1)
    reply_all: bool = Field(False, description="Also to everyone else on the message.")


class ForwardEmail(Args):
    message_id: Line = Field(min_length=1)
    to: Addresses = Field(min_length=1)
    note: Text = Field("", description="Text above the forwarded message.")


EmailChange = Literal[
    "archive", "mark_read", "mark_unread", "star", "unstar", "add_label", "remove_label"
]


class ChangeEmail(Args):
    message_id: Line = Field(min_length=1)
    change: EmailChange
    label: Line = Field("", description="The label's name, for add_label / remove_label.")


class TrashEmail(Args):
    message_id: Line = Field(min_length=1)


class CreateTask(Args):
    title: Line = Field(min_length=1)
    notes: Text = ""
    due: Line = Field("", description='A due date: "Friday", "2026-12-24"; empty: none.')
    task_list: Line = Field("", description="A list's title or id; empty: the default list.")


class UpdateTask(Args):
    task_id: Line = Field(min_length=1)
    task_list: Line = ""
    title: Line | None = None
    notes: Text | None = None
    due: Line | None = None


class CompleteTask(Args):
    task_id: Line = Field(min_length=1)
    task_list: Line = ""
    done: bool = Field(True, description="False reopens a completed task.")


class DeleteTask(Args):
    task_id: Line = Field(min_length=1)
    task_list: Line = ""


class CreateTaskList(Args):
    title: Line = Field(min_length=1)


# --- plans ------------------------------------------------------------------------------


@dataclass
class Plan:
    """What an action will do: for the person (``summary``, ``details``) and for Google
    (``request``, JSON, everything :attr:`Spec.execute` needs)."""

    summary: str
    request: dict[str, Any]
    details: list[list[str]] = field(default_factory=list)  # [label, value] rows


class PlanError(ValueError):
    """The arguments cannot become an action; the message says why, for the model/user."""


def _quote(text: str) -> str:
    return f"'{text}'"


def _short(text: str, limit: int = BODY_PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _moment(text: str, zone: ZoneInfo) -> datetime:
    try:
        return parse_moment(text, zone)
    except DateParseError as exc:
        raise PlanError(str(exc)) from None


RECURRENCE = {
    "daily": "RRULE:FREQ=DAILY",
    "weekdays": "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    "weekly": "RRULE:FREQ=WEEKLY",
    "monthly": "RRULE:FREQ=MONTHLY",
    "yearly": "RRULE:FREQ=YEARLY",
}


def _recurrence(text: str) -> list[str]:
    if not text:
        return []
    rule = RECURRENCE.get(text.lower()) or (text if text.upper().startswith("RRULE:") else "")
    if not rule:
        raise PlanError(f"Unknown repetition {text!r}: use daily, weekdays, weekly or monthly.")
    return [rule]


def _span(start: datetime | date, end: datetime | date, zone: ZoneInfo) -> str:
    if isinstance(start, datetime) and isinstance(end, datetime):
        same_day = start.astimezone(zone).date() == end.astimezone(zone).date()
        until = f"{end.astimezone(zone):%H:%M}" if same_day else local(end, zone)
        return f"{local(start, zone)}-{until} {zone.key}"
    last = end - timedelta(days=1) if isinstance(end, date) else end
    return local(start, zone) + (f" to {local(last, zone)}" if last != start else "") + " (all day)"


def _times(
    start_text: str, end_text: str, minutes: int, all_day: bool, zone: ZoneInfo
) -> tuple[dict, dict, str]:
    """Google's ``start``/``end`` objects and the span in words."""
    start = _moment(start_text, zone)
    if all_day:
        first = start.date()
        last = _moment(end_text, zone).date() if end_text else first
        if last < first:
            raise PlanError("The event would end before it starts.")
        after = last + timedelta(days=1)
        body = ({"date": first.isoformat()}, {"date": after.isoformat()})
        return *body, _span(first, after, zone)
    end = _moment(end_text, zone) if end_text else start + timedelta(minutes=minutes)
    if end <= start:
        raise PlanError("The event would end before it starts; give a later end.")
    stamp = {"timeZone": zone.key}
    body = ({"dateTime": start.isoformat(), **stamp}, {"dateTime": end.isoformat(), **stamp})
    return *body, _span(start, end, zone)


def _guests(addresses: list[str]) -> str:
    if not addresses:
        return ""
    return f", {len(addresses)} guest{'s' if len(addresses) != 1 else ''}"


async def plan_create_event(client: GoogleClient, args: CreateEvent, zone: ZoneInfo) -> Plan:
    start, end, span = _times(args.start, args.end, args.duration_minutes, args.all_day, zone)
    body: dict[str, Any] = {"summary": args.title, "start": start, "end": end}
    if args.attendees:
        body["attendees"] = [{"email": parseaddr(a)[1]} for a in args.attendees]
    if args.location:
        body["location"] = args.location
    if args.description:
        body["description"] = args.description
    if rules := _recurrence(args.recurrence):
        body["recurrence"] = rules
    extras = [x for x, on in ((" with Google Meet", args.meet), (f", repeats {args.recurrence}",
              bool(rules))) if on]  # fmt: skip
    summary = f"Create {_quote(args.title)} {span}{_guests(args.attendees)}{''.join(extras)}"
    details = [["Guests", ", ".join(args.attendees)]] if args.attendees else []
    details += [["Where", args.location]] if args.location else []
    return Plan(summary, {"body": body, "meet": args.meet, "notify": bool(args.attendees)}, details)


def _event_words(event: calendar.Event, zone: ZoneInfo) -> str:
    title = _quote(event.title or "(no title)")
    if event.start is None or event.end is None:
        return title
    return f"{title} {_span(event.start, event.end, zone)}"


async def plan_update_event(client: GoogleClient, args: UpdateEvent, zone: ZoneInfo) -> Plan:
    event = await calendar.get_event(client, args.event_id)
    body: dict[str, Any] = {}
    changes: list[str] = []
    if args.title is not None:
        body["summary"] = args.title
        changes.append(f"title to {_quote(args.title)}")
    if args.start is not None or args.end is not None:
        if event.all_day or not isinstance(event.start, datetime):
            raise PlanError("Moving an all-day event is not supported; delete and create it.")
        old_start, old_end = event.start, event.end
        start = _moment(args.start, zone) if args.start else old_start
        length = (old_end - old_start) if isinstance(old_end, datetime) else timedelta(hours=1)
        end = _moment(args.end, zone) if args.end else start + length
        if end <= start:
            raise PlanError("The event would end before it starts; give a later end.")
        body["start"] = {"dateTime": start.isoformat(), "timeZone": zone.key}
        body["end"] = {"dateTime": end.isoformat(), "timeZone": zone.key}
        changes.append(f"time to {_span(start, end, zone)}")
    if args.location is not None:
        body["location"] = args.location
        changes.append(f"place to {_quote(args.location)}")
    if args.description is not None:
        body["description"] = args.description
        changes.append("description")
    if args.attendees is not None:
        body["attendees"] = [{"email": parseaddr(a)[1]} for a in args.attendees]
        changes.append(f"guests to {', '.join(args.attendees) or 'nobody'}")
    if not body:
        raise PlanError("Nothing to change: give a new title, time, place or guests.")
    summary = f"Change {_event_words(event, zone)}: {'; '.join(changes)}"
    request = {"event_id": event.id, "body": body, "notify": bool(event.attendees)}
    return Plan(summary, request)


async def plan_delete_event(client: GoogleClient, args: DeleteEvent, zone: ZoneInfo) -> Plan:
    event = await calendar.get_event(client, args.event_id)
    guests = [a for a in event.attendees if not a.is_self]
    notify = args.notify and bool(guests)
    tail = f", telling {len(guests)} guest(s)" if notify else ""
    summary = f"Delete {_event_words(event, zone)}{tail}"
    return Plan(summary, {"event_id": event.id, "notify": notify})


RESPONSES = {"accepted": "Accept", "declined": "Decline", "tentative": "Answer maybe to"}


async def plan_respond(client: GoogleClient, args: RespondToEvent, zone: ZoneInfo) -> Plan:
    event = await calendar.get_event(client, args.event_id)
    by = f" from {event.organizer}" if event.organizer else ""
    summary = f"{RESPONSES[args.response]} {_event_words(event, zone)}{by}"
    return Plan(summary, {"event_id": event.id, "response": args.response})


def _mail_request(to: list[str], cc: list[str], bcc: list[str], subject: str, body: str,
                  **reply: str) -> tuple[dict[str, Any], list[list[str]]]:  # fmt: skip
    request = {"to": to, "cc": cc, "bcc": bcc, "subject": subject, "body": body, **reply}
    details = [["To", ", ".join(to)]]
    details += [["Cc", ", ".join(cc)]] if cc else []
    details += [["Bcc", ", ".join(bcc)]] if bcc else []
    details += [["Subject", subject or "(no subject)"], ["Body", body]]
    return request, details


def _mail_words(verb: str, request: dict[str, Any]) -> str:
    words = f"{verb} to {', '.join(request['to'])}"
    words += f", cc {', '.join(request['cc'])}" if request["cc"] else ""
    words += f", bcc {', '.join(request['bcc'])}" if request["bcc"] else ""
    return f"{words}, subject {_quote(request['subject'])}: {_quote(_short(request['body']))}"


async def plan_send(client: GoogleClient, args: SendEmail, zone: ZoneInfo) -> Plan:
    request, details = _mail_request(args.to, args.cc, args.bcc, args.subject, args.body)
    return Plan(_mail_words("Send", request), request, details)


async def plan_draft(client: GoogleClient, args: SendEmail, zone: ZoneInfo) -> Plan:
    request, details = _mail_request(args.to, args.cc, args.bcc, args.subject, args.body)
    return Plan(_mail_words("Save a draft", request), request, details)


async def plan_reply(client: GoogleClient, args: ReplyEmail, zone: ZoneInfo) -> Plan:
    original = await gmail.reply_context(client, args.message_id)
    me = (await _me(client)).lower()
    to = [original.reply_to or original.sender]
    cc: list[str] = []
    if args.reply_all:
        others = [*original.to, *original.cc]
        seen = {parseaddr(to[0])[1].lower(), me}
        for address in others:
            if (plain := parseaddr(address)[1].lower()) and plain not in seen:
                seen.add(plain)
                cc.append(address)
    references = " ".join(filter(None, [original.references, original.rfc822_id]))
    request, details = _mail_request(
        to, cc, [], mail.reply_subject(original.subject), args.body,
        thread_id=original.thread_id, in_reply_to=original.rfc822_id, references=references,
    )  # fmt: skip
    return Plan(_mail_words("Reply", request), request, details)


async def plan_forward(client: GoogleClient, args: ForwardEmail, zone: ZoneInfo) -> Plan:
    original = await gmail.reply_context(client, args.message_id)
    when = local(original.date, zone) if original.date else ""
    quoted = "\n".join([
        "---------- Forwarded message ---------",
        f"From: {original.sender}", f"Date: {when}", f"Subject: {original.subject}",
        f"To: {', '.join(original.to)}", "", original.text,
    ])  # fmt: skip
    body = f"{args.note}\n\n{quoted}" if args.note else quoted
    request, details = _mail_request(args.to, [], [], mail.forward_subject(original.subject), body)
    plan = Plan(_mail_words("Forward", request), request, details)
    plan.details.append(["Note", "Attachments are not forwarded."])
    return plan


async def _me(client: GoogleClient) -> str:
    email = getattr(client.tokens, "email", "")
    return str(email or "")


CHANGES: dict[str, tuple[str, list[str], list[str]]] = {
    "archive": ("Archive", [], ["INBOX"]),
    "mark_read": ("Mark as read", [], ["UNREAD"]),
    "mark_unread": ("Mark as unread", ["UNREAD"], []),
    "star": ("Star", ["STARRED"], []),
    "unstar": ("Remove the star from", [], ["STARRED"]),
}


async def _message_words(client: GoogleClient, message_id: str) -> str:
    found = await gmail.reply_context(client, message_id)
    return f"{_quote(found.subject or '(no subject)')} from {found.sender}"


async def plan_change_email(client: GoogleClient, args: ChangeEmail, zone: ZoneInfo) -> Plan:
    words = await _message_words(client, args.message_id)
    if args.change in CHANGES:
        verb, add, remove = CHANGES[args.change]
        summary = f"{verb} {words}"
    else:
        if not args.label:
            raise PlanError("Name the label to add or remove.")
        label = await gmail.label_id(client, args.label)
        if label is None:
            raise PlanError(f"There is no Gmail label called {args.label!r}; see email_labels.")
        add, remove = ([label], []) if args.change == "add_label" else ([], [label])
        verb = "Add the label" if add else "Remove the label"
        summary = f"{verb} {_quote(args.label)} {'to' if add else 'from'} {words}"
    return Plan(summary, {"message_id": args.message_id, "add": add, "remove": remove})


async def plan_trash(client: GoogleClient, args: TrashEmail, zone: ZoneInfo) -> Plan:
    words = await _message_words(client, args.message_id)
    summary = f"Move {words} to the trash (Gmail keeps it there for 30 days)"
    return Plan(summary, {"message_id": args.message_id})


async def _task_list(client: GoogleClient, wanted: str) -> tasks.TaskList:
    lists = await tasks.list_tasklists(client)
    if not lists:
        raise PlanError("There is no task list yet; create one first.")
    if not wanted:
        return lists[0]
    for candidate in lists:
        if wanted.lower() in (candidate.id.lower(), candidate.title.lower()):
            return candidate
    raise PlanError(f"There is no task list called {wanted!r}; call task_lists to see them.")


async def _find_task(client: GoogleClient, task_id: str, wanted_list: str) -> tuple[tasks.TaskList, tasks.Task]:  # fmt: skip
    lists = (
        [await _task_list(client, wanted_list)]
        if wanted_list
        else await tasks.list_tasklists(client)
    )
    for task_list in lists:
        for task in await tasks.list_tasks(client, task_list.id, show_completed=True):
            if task.id == task_id:
                return task_list, task
    raise PlanError(f"There is no task with id {task_id!r}; call list_tasks to see them.")


def _due(text: str, zone: ZoneInfo) -> str | None:
    if not text:
        return None
    return f"{_moment(text, zone).date().isoformat()}T00:00:00.000Z"


async def plan_create_task(client: GoogleClient, args: CreateTask, zone: ZoneInfo) -> Plan:
    task_list = await _task_list(client, args.task_list)
    body: dict[str, Any] = {"title": args.title}
    if args.notes:
        body["notes"] = args.notes
    if due := _due(args.due, zone):
        body["due"] = due
    when = f", due {local(date.fromisoformat(due[:10]), zone)}" if due else ""
    summary = f"Create the task {_quote(args.title)} in {_quote(task_list.title)}{when}"
    return Plan(summary, {"list_id": task_list.id, "body": body})


async def plan_update_task(client: GoogleClient, args: UpdateTask, zone: ZoneInfo) -> Plan:
    task_list, task = await _find_task(client, args.task_id, args.task_list)
    body: dict[str, Any] = {}
    if args.title is not None:
        body["title"] = args.title
    if args.notes is not None:
        body["notes"] = args.notes
    if args.due is not None:
        body["due"] = _due(args.due, zone)
    if not body:
        raise PlanError("Nothing to change: give a new title, notes or due date.")
    fields = ", ".join(sorted(body))
    summary = f"Change the {fields} of the task {_quote(task.title)} ({task_list.title})"
    return Plan(summary, {"list_id": task_list.id, "task_id": task.id, "body": body})


async def plan_complete_task(client: GoogleClient, args: CompleteTask, zone: ZoneInfo) -> Plan:
    task_list, task = await _find_task(client, args.task_id, args.task_list)
    verb = "Mark as done" if args.done else "Reopen"
    body = {"status": "completed"} if args.done else {"status": "needsAction", "completed": None}
    summary = f"{verb} the task {_quote(task.title)} ({task_list.title})"
    return Plan(summary, {"list_id": task_list.id, "task_id": task.id, "body": body})


async def plan_delete_task(client: GoogleClient, args: DeleteTask, zone: ZoneInfo) -> Plan:
    task_list, task = await _find_task(client, args.task_id, args.task_list)
    summary = f"Delete the task {_quote(task.title)} ({task_list.title})"
    return Plan(summary, {"list_id": task_list.id, "task_id": task.id})


async def plan_create_task_list(client: GoogleClient, args: CreateTaskList, zone: ZoneInfo) -> Plan:  # fmt: skip
    return Plan(f"Create the task list {_quote(args.title)}", {"title": args.title})


# --- execution (each returns the outcome for the model and the UI) ----------------------

Outcome = tuple[str, str | None]  # what happened, a link to it


DRAFTS_URL = "https://mail.google.com/mail/u/0/#drafts"
CLOCK_SKEW = timedelta(minutes=2)  # Google's clock against ours, for "created since"


def rfc822_id_for(key: str) -> str:
    """The Message-ID a mail sent for ``key`` carries: how a retry finds it."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@agenticpal.local>"


def _event_outcome(verb: str, event: calendar.Event, zone: ZoneInfo) -> Outcome:
    return f"{verb} {_event_words(event, zone)} (id {event.id})", safe_link(event.html_link)


async def run_create_event(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:  # fmt: skip
    event = await calendar.insert_event(
        client, request["body"], event_id=calendar.event_id_for(key),
        send_updates="all" if request["notify"] else "none", conference=request["meet"],
    )  # fmt: skip
    return _event_outcome("Created", event, zone)


async def run_update_event(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:  # fmt: skip
    updates = "all" if request["notify"] else "none"
    event = await calendar.patch_event(client, request["event_id"], request["body"], send_updates=updates)  # fmt: skip
    return _event_outcome("Changed", event, zone)


async def run_delete_event(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:  # fmt: skip
    updates = "all" if request["notify"] else "none"
    now = await calendar.delete_event(client, request["event_id"], send_updates=updates)
    return ("Deleted the event." if now else "The event was already deleted."), None


async def run_respond(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:
    email = await _me(client)
    event = await calendar.respond_to_event(
        client, request["event_id"], request["response"], email=email
    )
    return _event_outcome(f"Answered {request['response']} to", event, zone)


def _message(request: dict, sender: str, key: str):
    return mail.build_message(
        sender=sender, to=request["to"], cc=request["cc"], bcc=request["bcc"],
        subject=request["subject"], body=request["body"], message_id=rfc822_id_for(key),
        in_reply_to=request.get("in_reply_to"), references=request.get("references"),
    )  # fmt: skip


def _sent_outcome(verb: str, sent: gmail.Sent) -> Outcome:
    return f"{verb} (message id {sent.id})", f"https://mail.google.com/mail/u/0/#all/{sent.thread_id}"  # fmt: skip


async def run_send(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:
    message = _message(request, await _me(client), key)
    sent = await gmail.send_message(client, message, thread_id=request.get("thread_id"))
    return _sent_outcome("Sent", sent)


async def run_draft(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:
    message = _message(request, await _me(client), key)
    sent = await gmail.create_draft(client, message, thread_id=request.get("thread_id"))
    return f"Saved the draft (message id {sent.id})", DRAFTS_URL


async def recover_sent(client: GoogleClient, request: dict, key: str, started: datetime) -> Outcome | None:  # fmt: skip
    found = await gmail.find_by_rfc822_id(client, rfc822_id_for(key))
    if found is None or "DRAFT" in found.label_ids:
        return None  # not sent (a draft with the same Message-ID is not a sent mail)
    return _sent_outcome("Sent", found)


async def recover_draft(client: GoogleClient, request: dict, key: str, started: datetime) -> Outcome | None:  # fmt: skip
    found = await gmail.find_by_rfc822_id(client, rfc822_id_for(key))
    return None if found is None else (f"Saved the draft (message id {found.id})", DRAFTS_URL)


async def run_change_email(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:  # fmt: skip
    await gmail.modify_message(
        client, request["message_id"], add=request["add"], remove=request["remove"]
    )
    return "Done.", None


async def run_trash(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:
    await gmail.trash_message(client, request["message_id"])
    return "Moved to the trash.", None


async def run_create_task(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:  # fmt: skip
    task = await tasks.insert_task(client, request["list_id"], request["body"])
    return f"Created the task {_quote(task.title)} (id {task.id})", safe_link(task.web_link)


async def recover_task(client: GoogleClient, request: dict, key: str, started: datetime) -> Outcome | None:  # fmt: skip
    title = request["body"]["title"]
    since = started - CLOCK_SKEW
    task = await tasks.find_task(client, request["list_id"], title=title, updated_min=since)
    return None if task is None else (f"Created the task {_quote(task.title)} (id {task.id})",
                                      safe_link(task.web_link))  # fmt: skip


async def run_patch_task(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:  # fmt: skip
    task = await tasks.patch_task(client, request["list_id"], request["task_id"], request["body"])
    state = "done" if task.completed else "open"
    return f"Updated the task {_quote(task.title)} ({state})", safe_link(task.web_link)


async def run_delete_task(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:  # fmt: skip
    now = await tasks.delete_task(client, request["list_id"], request["task_id"])
    return ("Deleted the task." if now else "The task was already deleted."), None


async def run_create_task_list(client: GoogleClient, request: dict, key: str, zone: ZoneInfo) -> Outcome:  # fmt: skip
    created = await tasks.insert_tasklist(client, request["title"])
    return f"Created the task list {_quote(created.title)} (id {created.id})", None


async def recover_task_list(client: GoogleClient, request: dict, key: str, started: datetime) -> Outcome | None:  # fmt: skip
    for found in await tasks.list_tasklists(client):
        if (
            found.title == request["title"]
            and found.updated
            and found.updated >= started - CLOCK_SKEW
        ):
            return f"Created the task list {_quote(found.title)} (id {found.id})", None
    return None


# --- the actions and the policy ---------------------------------------------------------

Planner = Callable[[GoogleClient, Any, ZoneInfo], Awaitable[Plan]]
Executor = Callable[[GoogleClient, dict, str, ZoneInfo], Awaitable[Outcome]]
Recovery = Callable[[GoogleClient, dict, str, datetime], Awaitable[Outcome | None]]


@dataclass(frozen=True)
class Spec:
    name: str
    title: str  # the card's heading
    doc: str  # the tool's description, for the model
    args: type[Args]
    plan: Planner
    execute: Executor
    recover: Recovery | None = None  # for a non-idempotent call: did it reach Google?


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in [
        Spec("create_event", "Create an event", "Create an event in the user's primary "
             "calendar (asks the user to approve it first).", CreateEvent, plan_create_event,
             run_create_event),
        Spec("update_event", "Change an event", "Change the given fields of an event, e.g. "
             "move it; other fields stay (asks the user first).", UpdateEvent,
             plan_update_event, run_update_event),
        Spec("delete_event", "Delete an event", "Delete (cancel) an event, optionally "
             "telling its guests (asks the user first).", DeleteEvent, plan_delete_event,
             run_delete_event),
        Spec("respond_to_event", "Answer an invitation", "Accept, decline or answer maybe "
             "to an invitation (asks the user first).", RespondToEvent, plan_respond,
             run_respond),
        Spec("send_email", "Send an email", "Send a new email from the user's Gmail (asks "
             "the user to approve it first).", SendEmail, plan_send, run_send, recover_sent),
        Spec("draft_email", "Save a draft", "Save an email as a Gmail draft, not sent.",
             SendEmail, plan_draft, run_draft, recover_draft),
        Spec("reply_email", "Reply to an email", "Reply in the thread of a message (to its "
             "sender, or everyone with reply_all; asks the user first).", ReplyEmail,
             plan_reply, run_send, recover_sent),
        Spec("forward_email", "Forward an email", "Forward a message's text to someone "
             "(asks the user first).", ForwardEmail, plan_forward, run_send, recover_sent),
        Spec("change_email", "Change an email", "Archive, mark read or unread, star or "
             "unstar a message, or add/remove a label (asks the user first).", ChangeEmail,
             plan_change_email, run_change_email),
        Spec("trash_email", "Move an email to the trash", "Move a message to the trash "
             "(never deleted for good; asks the user first).", TrashEmail, plan_trash,
             run_trash),
        Spec("create_task", "Create a task", "Create a task in Google Tasks (asks the user "
             "first).", CreateTask, plan_create_task, run_create_task, recover_task),
        Spec("update_task", "Change a task", "Change a task's title, notes or due date "
             "(asks the user first).", UpdateTask, plan_update_task, run_patch_task),
        Spec("complete_task", "Complete a task", "Mark a task done, or reopen it with "
             "done=false (asks the user first).", CompleteTask, plan_complete_task,
             run_patch_task),
        Spec("delete_task", "Delete a task", "Delete a task (asks the user first).",
             DeleteTask, plan_delete_task, run_delete_task),
        Spec("create_task_list", "Create a task list", "Create a new Google Tasks list "
             "(asks the user first).", CreateTaskList, plan_create_task_list,
             run_create_task_list, recover_task_list),
    ]
}  # fmt: skip
NO_APPROVAL = frozenset({"draft_email"})  # creating a draft changes nothing anyone sees


def needs_approval(name: str) -> bool:
    """The policy, in one place: every write needs the user's approval, but a draft
    (unless ``WORKSPACE_APPROVE_DRAFTS`` is on)."""
    if name in NO_APPROVAL:
        return bool(getattr(settings, "WORKSPACE_APPROVE_DRAFTS", False))
    return name in SPECS


# --- decisions --------------------------------------------------------------------------

DecisionType = Literal["approve", "edit", "reject"]


class Decision(BaseModel):
    """The user's answer to one approval card (the resume value of its interrupt)."""

    model_config = ConfigDict(extra="ignore")

    type: DecisionType
    args: dict[str, Any] = Field(default_factory=dict)  # edit: the changed arguments
    message: Annotated[str, Field(max_length=2_000)] = ""  # reject: why, for the model
    interrupt_id: str = ""  # set by the runner: the action's idempotency key
    plan: dict[str, Any] | None = None  # set by the runner on approve: the plan shown
    by: str = ""  # who decided (the thread's owner)
    at: str = ""  # when (ISO 8601)


def edited_args(name: str, current: dict[str, Any], changes: dict[str, Any]) -> Args:
    """The arguments after an edit, validated with the tool's own schema.

    Raises :class:`PlanError` with every problem in one sentence."""
    spec = SPECS[name]
    try:
        return spec.args.model_validate({**current, **changes})
    except ValidationError as exc:
        raise PlanError(validation_message(exc)) from None


def validation_message(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "value"
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


# --- the one path every write tool takes -------------------------------------------------


def card(spec: Spec, args: Args, plan: Plan, error: str = "") -> dict[str, Any]:
    """The interrupt's payload: what the approval card shows (JSON)."""
    return {
        "kind": "approval",
        "action": spec.name,
        "title": spec.title,
        "summary": plan.summary,
        "details": plan.details,
        "args": args.model_dump(mode="json"),
        "plan": plan.request,
        "error": error,
    }


def outcome_artifact(spec: Spec, summary: str, status: str, text: str, link: str | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    artifact = {"kind": "action", "action": spec.name, "title": spec.title, "summary": summary,
                "status": status, "text": text, **extra}  # fmt: skip
    if link:
        artifact["link"] = link
    return artifact


async def perform(spec: Spec, arguments: dict[str, Any], config: RunnableConfig) -> Result:
    """Plan the action, ask the user (per the policy), run it once; never raises."""
    try:
        args = spec.args.model_validate(arguments)
    except ValidationError as exc:
        return notice(f"Cannot {spec.title.lower()}: {validation_message(exc)}.", level="clarify")
    configurable = config.get("configurable") or {}
    thread_id = str(configurable.get("thread_id", ""))

    async def work(client: GoogleClient, zone: ZoneInfo) -> Result:
        try:
            plan = await spec.plan(client, args, zone)
        except PlanError as exc:
            return notice(f"Cannot {spec.title.lower()}: {exc}", level="clarify")
        if not needs_approval(spec.name):
            key = f"{thread_id}:{get_config()['configurable'].get('checkpoint_ns', '')}"
            return await execute_once(spec, plan, key, client, zone, Decision(type="approve"))
        return await ask_and_run(spec, args, plan, thread_id, client, zone)

    return await run_tool(config, work)


async def ask_and_run(
    spec: Spec, args: Args, plan: Plan, thread_id: str, client: GoogleClient, zone: ZoneInfo
) -> Result:
    """Pause for the user's decision (again after an edit that does not validate)."""
    error = ""
    while True:
        decision = Decision.model_validate(interrupt(card(spec, args, plan, error)))
        if decision.type == "reject":
            reason = decision.message or "no reason given"
            text = f"Not done: the user rejected it ({reason}). Do not try it again unasked."
            artifact = outcome_artifact(spec, plan.summary, "rejected", text, reason=reason,
                                        interrupt_id=decision.interrupt_id)  # fmt: skip
            return f"{plan.summary}: {text}", artifact
        if decision.type == "approve":
            # The plan shown on the card, not one planned again now.
            plan = Plan(plan.summary, decision.plan or plan.request, plan.details)
            key = f"{thread_id}:{decision.interrupt_id}"
            return await execute_once(spec, plan, key, client, zone, decision)
        try:
            # An edit changes the arguments the card showed (after a failed edit: those
            # that failed, so the person corrects them rather than starting over).
            args = edited_args(spec.name, args.model_dump(), decision.args)
            plan = await spec.plan(client, args, zone)
        except PlanError as exc:
            error = f"Not done: {exc}"
            continue
        key = f"{thread_id}:{decision.interrupt_id}"
        return await execute_once(spec, plan, key, client, zone, decision)


async def execute_once(
    spec: Spec, plan: Plan, key: str, client: GoogleClient, zone: ZoneInfo, decision: Decision
) -> Result:
    """Run ``plan`` unless the record of ``key`` says it ran; record it before and after."""
    redis = get_async_client()
    record_key = keys.action_key(key)
    _step("before_record")
    raw = await redis.get(record_key)
    record = json.loads(raw) if raw else None
    if record and record.get("state") == "done":
        return record["content"], record["artifact"]
    outcome: Outcome | None = None
    if record and spec.recover is not None:  # started before a crash: did Google get it?
        started = datetime.fromisoformat(record["started_at"])
        outcome = await spec.recover(client, plan.request, key, started)
    if outcome is None:
        if record is None:
            started = datetime.now(UTC).replace(microsecond=0)
            record = {"state": "started", "started_at": started.isoformat(), "action": spec.name,
                      "summary": plan.summary, "decision": decision.model_dump(exclude={"args", "plan"})}  # fmt: skip
            await redis.set(record_key, json.dumps(record), ex=keys.ACTION_TTL_SECONDS)
        _step("after_record")
        try:
            outcome = await spec.execute(client, plan.request, key, zone)
        except NotFound as exc:
            return _failed(spec, plan, exc.user_message)
        except PlanError as exc:
            return _failed(spec, plan, str(exc))
        _step("after_google")
    text, link = outcome
    edited = " (as edited)" if decision.type == "edit" else ""
    artifact = outcome_artifact(spec, plan.summary + edited, "done", text, link,
                                interrupt_id=decision.interrupt_id)  # fmt: skip
    content = f"{plan.summary}{edited}: {text}"
    done = {**record, "state": "done", "content": content, "artifact": artifact,
            "done_at": datetime.now(UTC).isoformat()}  # fmt: skip
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(record_key, json.dumps(done), ex=keys.ACTION_TTL_SECONDS)
        thread_id = key.split(":", 1)[0]
        pipe.lpush(keys.action_log_key(thread_id), json.dumps(_audit(done)))
        pipe.ltrim(keys.action_log_key(thread_id), 0, keys.ACTION_LOG_MAX - 1)
        pipe.expire(keys.action_log_key(thread_id), keys.ACTION_TTL_SECONDS)
        await pipe.execute()
    _step("after_done")
    return content, artifact


def _audit(record: dict[str, Any]) -> dict[str, Any]:
    decision = record.get("decision") or {}
    return {"action": record["action"], "summary": record["summary"],
            "result": record["artifact"]["text"], "link": record["artifact"].get("link"),
            "approved_by": decision.get("by", ""), "approved_at": decision.get("at", ""),
            "decision": decision.get("type", ""), "done_at": record["done_at"]}  # fmt: skip


def _failed(spec: Spec, plan: Plan, reason: str) -> Result:
    """Google refused the approved action: said plainly, not retried."""
    text = f"Not done: {reason}"
    return f"{plan.summary}: {text}", outcome_artifact(spec, plan.summary, "failed", text)


async def audit_trail(thread_id: str) -> list[dict[str, Any]]:
    """The thread's executed actions, newest first (the admin's audit trail)."""
    raw = await get_async_client().lrange(keys.action_log_key(thread_id), 0, -1)
    return [json.loads(item) for item in raw]


def _make_tool(spec: Spec) -> BaseTool:
    async def run(config: RunnableConfig, **arguments: Any) -> Result:
        return await perform(spec, arguments, config)

    return StructuredTool.from_function(
        coroutine=run,
        name=spec.name,
        description=spec.doc,
        args_schema=spec.args,
        response_format="content_and_artifact",
    )


TOOLS = [_make_tool(spec) for spec in SPECS.values()]


def plan_as_dict(plan: Plan) -> dict[str, Any]:
    return asdict(plan)
