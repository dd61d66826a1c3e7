"""A local Google Workspace over ASGI: Calendar v3, Gmail v1 and Tasks v1, reads and writes.

``create_app()`` answers Google's URL paths (relative to https://www.googleapis.com) with
Google's JSON shapes, query parameters, ``fields=`` partial responses, page tokens and
error bodies. A bearer token ``demo.<anything>`` is a user of its own, whose state is
seeded on first use (``seed.seed_user``) and then kept in memory as plain dicts, which
the write endpoints (``writes``) change; each user's requests are logged
(``UserState.requests``). Pure Starlette, no Django: ``python -m workspace.emulator``
serves it under uvicorn, and the main server can mount it under a prefix.
The guarantee: a response has the shape Google gives to the same request (the tests
hold every response against fixtures taken from Google's discovery documents).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import textwrap
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.message import EmailMessage
from html import escape, unescape
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .seed import UserState, etag, rfc3339, seed_user, stamp, when

DEFAULT_EMAIL = "you@example.com"
MAX_INSTANCES = 1000  # instances of one recurring event considered, as Calendar caps them
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
}  # a 410 (Calendar's "deleted") has no status
AUTH_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)

Json = dict[str, Any]
Selection = dict[str, "Selection | None"]  # fields= as a tree; None selects the whole value


def create_app(
    *, latency_ms: float = 0, now: datetime | None = None, timezone: str = "Europe/Paris"
) -> Starlette:
    """The emulator; ``now`` (aware) fixes the clock, ``latency_ms`` delays every request."""
    app = Starlette(
        routes=[Route(path, _endpoint(handler), methods=[verb]) for verb, path, handler in ROUTES],
        middleware=[Middleware(_Latency, seconds=latency_ms / 1000)] if latency_ms else [],
        exception_handlers={GoogleError: _google_error, 404: _no_route, 405: _no_route},
    )
    zone = ZoneInfo(timezone)
    app.state.emulator = Emulator(zone, now.astimezone(zone) if now else None)
    return app


@dataclass
class Emulator:
    """The users' states, by bearer token, and the clock."""

    zone: ZoneInfo
    fixed_now: datetime | None = None
    users: dict[str, UserState] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.fixed_now or datetime.now(self.zone)

    def user(self, token: str) -> UserState:
        """The state of the token's user; the email is the token's text after ``demo.``
        when it has an ``@``."""
        if token not in self.users:
            email = token.removeprefix("demo.") if "@" in token else DEFAULT_EMAIL
            self.users[token] = seed_user(email, self.now(), self.zone)
        return self.users[token]


# Errors


class GoogleError(Exception):
    """An error answered with Google's JSON error body."""

    def __init__(self, code: int, message: str, reason: str, detail: str = "", **where: str):
        super().__init__(message)
        self.code = code
        error = {"message": detail or message, "domain": "global", "reason": reason, **where}
        status = {"status": STATUSES[code]} if code in STATUSES else {}
        self.body = {"error": {"code": code, "message": message, "errors": [error], **status}}


def not_found() -> GoogleError:
    return GoogleError(404, "Requested entity was not found.", "notFound")


def bad_value(name: str, value: object) -> GoogleError:
    return GoogleError(
        400,
        f"Invalid value '{value}' for {name}.",
        "invalid",
        location=name,
        locationType="parameter",
    )


def unauthenticated() -> GoogleError:
    return GoogleError(
        401,
        AUTH_MESSAGE,
        "authError",
        "Invalid Credentials",
        location="Authorization",
        locationType="header",
    )


async def _google_error(request: Request, error: GoogleError) -> JSONResponse:
    return JSONResponse(error.body, status_code=error.code)


async def _no_route(request: Request, error: HTTPException) -> JSONResponse:
    return await _google_error(request, not_found())


# Requests


class _Latency:
    """Delays every HTTP request, like the network between a client and Google."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(self.seconds)
        await self.app(scope, receive, send)


@dataclass
class Call:
    """One authenticated request: the user, the clock, the path and the typed parameters."""

    user: UserState
    now: datetime
    path: dict[str, str]
    query: QueryParams
    body: Json

    def integer(self, name: str, default: int, maximum: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise bad_value(name, raw)
        return min(int(raw), maximum)

    def flag(self, name: str, default: bool) -> bool:
        raw = self.query.get(name)
        if raw is None:
            return default
        if raw.lower() not in ("true", "false"):
            raise bad_value(name, raw)
        return raw.lower() == "true"

    def choice(self, name: str, allowed: tuple[str, ...], default: str = "") -> str:
        value = self.query.get(name, default)
        if value not in (*allowed, default):
            raise bad_value(name, value)
        return value

    def time(self, name: str) -> datetime | None:
        raw = self.query.get(name)
        return None if raw is None else parse_time(name, raw)

    def zone(self) -> ZoneInfo:
        """The ``timeZone`` parameter, by default the calendar's."""
        return parse_zone("timeZone", self.query.get("timeZone", self.user.timezone))


def parse_time(name: str, raw: object) -> datetime:
    """An RFC 3339 timestamp with its mandatory offset."""
    if raw is None:
        where = {"location": name, "locationType": "parameter"}
        raise GoogleError(400, f"Missing {name} parameter.", "required", **where)
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        raise bad_value(name, raw) from None
    if moment.tzinfo is None:
        raise bad_value(name, raw)
    return moment


def parse_zone(name: str, raw: object) -> ZoneInfo:
    try:
        return ZoneInfo(str(raw))
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_value(name, raw) from None


Handler = Callable[[Call], Json | None]  # None: 204 No Content (a delete)


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def respond(request: Request) -> Response:
        emulator: Emulator = request.app.state.emulator
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.startswith("demo."):
            raise unauthenticated()
        user = emulator.user(token)
        user.requests.append((request.method, request.url.path, str(request.query_params)))
        fields = request.query_params.get("fields")
        selection = _FieldsParser(fields).parse() if fields is not None else None
        body = await _json_body(request) if request.method in ("POST", "PATCH") else {}
        call = Call(user, emulator.now(), request.path_params, request.query_params, body)
        answer = handler(call)
        if answer is None:
            return Response(status_code=204)
        return JSONResponse(select(answer, selection))

    return respond


async def _json_body(request: Request) -> Json:
    """The JSON object sent; an empty body is ``{}`` (e.g. messages.trash has none)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise GoogleError(400, "Parse Error", "parseError") from None
    if not isinstance(body, dict):
        raise GoogleError(400, "Parse Error", "parseError")
    return body


# fields= partial responses


class _FieldsParser:
    """Google's ``fields`` syntax: ``a,b/c,items(id,start/dateTime)``; ``*`` is any key."""

    NAME = re.compile(r"[\w@.*-]+")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = [token.strip() for token in re.findall(r"[^,/()]+|[,/()]", text)]
        self.position = 0

    def parse(self) -> Selection:
        selection = self.selection()
        if self.position != len(self.tokens):
            raise self.error()
        return selection

    def selection(self) -> Selection:
        selection: Selection = {}
        while True:
            name, sub = self.path()
            _merge(selection, name, sub)
            if not self.take(","):
                return selection

    def path(self) -> tuple[str, Selection | None]:
        name = self.tokens[self.position] if self.position < len(self.tokens) else ""
        if not self.NAME.fullmatch(name):
            raise self.error()
        self.position += 1
        if self.take("/"):
            child, sub = self.path()
            return name, {child: sub}
        if self.take("("):
            sub = self.selection()
            if not self.take(")"):
                raise self.error()
            return name, sub
        return name, None

    def take(self, token: str) -> bool:
        found = self.position < len(self.tokens) and self.tokens[self.position] == token
        if found:
            self.position += 1
        return found

    def error(self) -> GoogleError:
        message = f"Invalid field selection {self.text}"
        return GoogleError(
            400, message, "invalidParameter", location="fields", locationType="parameter"
        )


def _merge(selection: Selection, name: str, sub: Selection | None) -> None:
    if name not in selection:
        selection[name] = sub
    elif selection[name] is None or sub is None:
        selection[name] = None
    else:
        for key, value in sub.items():
            _merge(selection[name], key, value)


def select(value: Any, selection: Selection | None) -> Any:
    """``value`` cut down to ``selection`` (lists: each item)."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [select(item, selection) for item in value]
    if isinstance(value, dict):
        return {
            key: select(item, selection.get(key, selection.get("*")))
            for key, item in value.items()
            if key in selection or "*" in selection
        }
    return value


# Pages


def paginate(items: list, call: Call, default: int, maximum: int) -> tuple[list, Json]:
    """One page of ``items`` and, when more follow, ``{"nextPageToken": ...}``."""
    size = call.integer("maxResults", default, maximum)
    token = call.query.get("pageToken")
    start = 0 if token is None else _page_offset(token)
    following = start + size
    more = {"nextPageToken": _page_token(following)} if following < len(items) else {}
    return items[start:following], more


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _page_offset(token: str) -> int:
    try:
        kind, _, offset = base64.urlsafe_b64decode(token).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise bad_value("pageToken", token) from None
    if kind != "offset" or not offset.isdigit():
        raise bad_value("pageToken", token)
    return int(offset)


# Calendar


def events_list(call: Call) -> Json:
    _check_calendar(call)
    user, zone = call.user, ZoneInfo(call.user.timezone)
    single = call.flag("singleEvents", False)
    order = call.choice("orderBy", ("startTime", "updated"))
    if order == "startTime" and not single:
        raise GoogleError(
            400, "The requested ordering is not available for the particular query.", "badRequest"
        )
    time_min, time_max = call.time("timeMin"), call.time("timeMax")
    if time_min and time_max and time_max <= time_min:
        raise GoogleError(
            400,
            "The specified time range is empty.",
            "timeRangeEmpty",
            location="timeMax",
            locationType="parameter",
        )
    show_deleted, terms = call.flag("showDeleted", False), call.query.get("q", "").lower().split()
    output_zone = call.zone()
    overrides = user.overrides
    candidates = (
        [
            instance
            for event in user.events.values()
            for instance in _occurrences(event, zone, overrides)
        ]
        if single
        else [*user.events.values(), *overrides.values()]  # a series, then its exceptions
    )
    found = [
        event
        for event in candidates
        if (show_deleted or event["status"] != "cancelled")
        and _mentions(event, terms)
        and any(
            _overlaps(_span(one, zone), time_min, time_max)
            for one in _occurrences(event, zone, overrides)
        )
    ]
    found.sort(key=lambda event: event["updated"] if order == "updated" else _span(event, zone)[0])
    page, more = paginate(found, call, 250, 2500)
    return {
        "kind": "calendar#events",
        "etag": etag(user.email, *(event["etag"] for event in user.events.values())),
        "summary": user.email,
        "description": "",
        "updated": max(
            (event["updated"] for event in user.events.values()), default=stamp(call.now)
        ),
        "timeZone": user.timezone,
        "accessRole": "owner",
        "defaultReminders": [],
        **more,
        "items": [_localized(event, output_zone) for event in page],
    }


def events_get(call: Call) -> Json:
    _check_calendar(call)
    event = find_event(call.user, call.path["eventId"])
    if event is None:
        raise not_found()
    return _localized(event, call.zone())


def find_event(user: UserState, event_id: str) -> Json | None:
    """An event, or an instance of a recurring one (changed or not), by id."""
    if event_id in user.events:
        return user.events[event_id]
    series = user.events.get(event_id.partition("_")[0])  # an instance id is <series id>_<start>
    if series is None:
        return None
    instances = _occurrences(series, ZoneInfo(user.timezone), user.overrides)
    return next((one for one in instances if one["id"] == event_id), None)


def free_busy(call: Call) -> Json:
    body = call.body
    time_min = parse_time("timeMin", body.get("timeMin"))
    time_max = parse_time("timeMax", body.get("timeMax"))
    zone = parse_zone("timeZone", body.get("timeZone", "UTC"))
    items = body.get("items", [])
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and "id" in item for item in items
    ):
        raise bad_value("items", items)
    busy = [
        {"start": rfc3339(start.astimezone(zone)), "end": rfc3339(end.astimezone(zone))}
        for start, end in _busy(call.user, time_min, time_max)
    ]
    missing = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
    return {
        "kind": "calendar#freeBusy",
        "timeMin": stamp(time_min),
        "timeMax": stamp(time_max),
        "calendars": {
            item["id"]: {"busy": busy} if _is_own_calendar(call.user, item["id"]) else missing
            for item in items
        },
    }


def _is_own_calendar(user: UserState, calendar_id: str) -> bool:
    return calendar_id in ("primary", user.email)


def _check_calendar(call: Call) -> None:
    if not _is_own_calendar(call.user, call.path["calendarId"]):
        raise not_found()


def _moment(value: Json, zone: ZoneInfo) -> datetime:
    """An EventDateTime as an aware datetime in the event's time zone (a day at midnight)."""
    if "date" in value:
        return datetime.combine(date.fromisoformat(value["date"]), time(), zone)
    return datetime.fromisoformat(value["dateTime"]).astimezone(
        ZoneInfo(value.get("timeZone", zone.key))
    )


def _span(event: Json, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return _moment(event["start"], zone), _moment(event["end"], zone)


def _overlaps(span: tuple[datetime, datetime], low: datetime | None, high: datetime | None) -> bool:
    """Calendar's bounds: ``timeMin`` excludes what ends by it, ``timeMax`` what starts at it."""
    start, end = span
    return (low is None or end > low) and (high is None or start < high)


def _occurrences(
    event: Json, zone: ZoneInfo, overrides: Mapping[str, Json] | None = None
) -> Iterator[Json]:
    """The event itself, or the instances of a recurring one; ``overrides``: instances
    changed one by one (patched or deleted), by id."""
    if "recurrence" not in event:
        yield event
        return
    start, end = _span(event, zone)
    rules = rrulestr("\n".join(event["recurrence"]), dtstart=start, forceset=True)
    for begin in islice(rules, MAX_INSTANCES):
        instance = _instance(event, begin, begin + (end - start))
        yield overrides.get(instance["id"], instance) if overrides else instance


def _instance(series: Json, start: datetime, end: datetime) -> Json:
    all_day = "date" in series["start"]
    suffix = f"{start:%Y%m%d}" if all_day else f"{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    start_time = when(start.date() if all_day else start)
    return {key: value for key, value in series.items() if key != "recurrence"} | {
        "id": f"{series['id']}_{suffix}",
        "recurringEventId": series["id"],
        "originalStartTime": start_time,
        "start": start_time,
        "end": when(end.date() if all_day else end),
    }


def _localized(event: Json, zone: ZoneInfo) -> Json:
    """The event with its times written in ``zone`` (the ``timeZone`` parameter)."""
    moved = dict(event)
    for key in ("start", "end", "originalStartTime"):
        if "dateTime" in event.get(key, {}):
            moment = datetime.fromisoformat(event[key]["dateTime"]).astimezone(zone)
            moved[key] = event[key] | {"dateTime": rfc3339(moment)}
    return moved


def _mentions(event: Json, terms: list[str]) -> bool:
    """Calendar's ``q``: every term in the summary, description, location or people."""
    people = [*event.get("attendees", []), event["organizer"]]
    text = " ".join(
        [event.get(key, "") for key in ("summary", "description", "location")]
        + [f"{person['email']} {person.get('displayName', '')}" for person in people]
    ).lower()
    return all(term in text for term in terms)


def _busy(user: UserState, low: datetime, high: datetime) -> list[tuple[datetime, datetime]]:
    """The merged busy periods in [low, high): opaque events the user has not declined."""
    zone = ZoneInfo(user.timezone)
    spans = sorted(
        (max(start, low), min(end, high))
        for event in user.events.values()
        for instance in _occurrences(event, zone, user.overrides)
        if _blocks(instance, user.email)
        for start, end in [_span(instance, zone)]
        if _overlaps((start, end), low, high)
    )
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _blocks(event: Json, email: str) -> bool:
    declined = any(
        person["email"] == email and person["responseStatus"] == "declined"
        for person in event.get("attendees", [])
    )
    return (
        event["status"] != "cancelled"
        and event.get("transparency") != "transparent"
        and not declined
    )


# Gmail


def messages_list(call: Call) -> Json:
    user = call.user
    matches = _search(call.query.get("q", ""), user, call.now)
    wanted = set(call.query.getlist("labelIds"))
    hidden = set() if call.flag("includeSpamTrash", False) else {"SPAM", "TRASH"}
    hidden -= {name.upper() for name in _SHOWN.findall(call.query.get("q", ""))}
    found = [
        message
        for message in sorted(  # newest first; ids grow with time, as Gmail's
            user.messages.values(), key=lambda m: (-int(m["internalDate"]), -int(m["id"], 16))
        )
        if wanted <= set(message["labelIds"])
        and not hidden & set(message["labelIds"])
        and matches(message)
    ]
    page, more = paginate(found, call, 100, 500)
    listed = [{"id": message["id"], "threadId": message["threadId"]} for message in page]
    return ({"messages": listed} if listed else {}) | more | {"resultSizeEstimate": len(found)}


def messages_get(call: Call) -> Json:
    message = call.user.messages.get(call.path["id"])
    if message is None:
        raise not_found()
    return _message(message, *_message_format(call))


def threads_get(call: Call) -> Json:
    thread = sorted(
        (m for m in call.user.messages.values() if m["threadId"] == call.path["id"]),
        key=lambda m: int(m["internalDate"]),
    )
    if not thread:
        raise not_found()
    message_format = _message_format(call)
    return {
        "id": call.path["id"],
        "historyId": max((m["historyId"] for m in thread), key=int),
        "messages": [_message(message, *message_format) for message in thread],
    }


def labels_list(call: Call) -> Json:
    return {"labels": list(call.user.labels.values())}


def _message_format(call: Call) -> tuple[str, set[str]]:
    message_format = call.choice("format", ("full", "metadata", "minimal", "raw"), "full")
    return message_format, {name.lower() for name in call.query.getlist("metadataHeaders")}


def _message(record: Json, message_format: str, headers: set[str]) -> Json:
    """A Gmail Message resource in ``format``; ``headers``: metadataHeaders (all if empty)."""
    mime: EmailMessage = record["mime"]
    raw, snippet = _rendered(record)
    message = {key: record[key] for key in ("id", "threadId", "labelIds")}
    message["snippet"] = snippet
    if message_format == "full":
        message["payload"] = _part(mime, "", record["id"])
    elif message_format == "metadata":
        message["payload"] = {
            "mimeType": mime.get_content_type(),
            "headers": _headers(mime, headers),
        }
    elif message_format == "raw":
        message["raw"] = base64.urlsafe_b64encode(raw).decode()
    return message | {
        "sizeEstimate": len(raw),
        "historyId": record["historyId"],
        "internalDate": record["internalDate"],
    }


def _rendered(record: Json) -> tuple[bytes, str]:
    """The message's bytes and snippet, made once per record (messages never change)."""
    if "_rendered" not in record:
        mime: EmailMessage = record["mime"]
        snippet = escape(textwrap.shorten(_text(mime), 200, placeholder=""))
        record["_rendered"] = (mime.as_bytes(), snippet)
    return record["_rendered"]


def _part(part: EmailMessage, part_id: str, message_id: str) -> Json:
    """A Gmail MessagePart tree: ids ``""``, ``0``, ``0.1``...; attachments by id, not data."""
    filename = part.get_filename() or ""
    payload: Json = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": filename,
        "headers": _headers(part),
    }
    if part.is_multipart():
        children = part.iter_parts()
        return payload | {
            "body": {"size": 0},
            "parts": [
                _part(child, f"{part_id}.{n}".lstrip("."), message_id)
                for n, child in enumerate(children)
            ],
        }
    data = part.get_payload(decode=True)
    body = {"size": len(data)}
    if filename:
        attachment = f"{message_id}:{part_id}".encode()
        body["attachmentId"] = "ANGjdJ" + base64.urlsafe_b64encode(attachment).decode().rstrip("=")
    else:
        body["data"] = base64.urlsafe_b64encode(data).decode()
    return payload | {"body": body}


def _headers(part: EmailMessage, names: Iterable[str] = ()) -> list[Json]:
    wanted = set(names)
    return [
        {"name": name, "value": str(value)}
        for name, value in part.items()
        if not wanted or name.lower() in wanted
    ]


def _text(mime: EmailMessage) -> str:
    """The mail's text: its text/plain body, else its HTML body without tags."""
    body = mime.get_body(("plain", "html"))
    if body is None:
        return ""
    content = body.get_content()
    if body.get_content_subtype() == "html":
        content = unescape(re.sub(r"(?is)<(style|script)\b.*?</\1>|<[^>]+>", " ", content))
    return content


# Gmail search: a subset of the search box's syntax

_SHOWN = re.compile(r"(?i)\b(?:in|is|label):(spam|trash)\b")  # searched: not hidden
_TERM = re.compile(r'(-?)(?:(\w+):)?(?:"([^"]*)"|\(([^)]*)\)|([^\s()"]+))')
_PERIOD = {
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "m": timedelta(days=30),
    "y": timedelta(days=365),
}
Test = Callable[[Json], bool]


def _search(query: str, user: UserState, now: datetime) -> Test:
    """Gmail's ``q``: terms are ANDed, ``a OR b`` alternatives, ``-term`` negates."""
    clauses: list[list[Test]] = []
    alternative = False
    for match in _TERM.finditer(query):
        negated, operator, quoted, grouped, word = match.groups()
        if word == "OR" and not (negated or operator):
            alternative = bool(clauses)
            continue
        words = (
            [quoted] if quoted is not None else grouped.split() if grouped is not None else [word]
        )
        test = _term(operator.lower() if operator else "", words, user, now)
        if negated:
            test = _negation(test)
        if alternative:
            clauses[-1].append(test)
        else:
            clauses.append([test])
        alternative = False
    return lambda message: all(any(test(message) for test in clause) for clause in clauses)


def _term(operator: str, words: list[str], user: UserState, now: datetime) -> Test:
    value = " ".join(words).lower()
    match operator:
        case "from" | "to" | "cc" | "subject":
            names = {"to": ("To", "Cc", "Bcc")}.get(operator, (operator.capitalize(),))
            return lambda m: _contains(" ".join(str(m["mime"].get(n, "")) for n in names), words)
        case "is" if value == "read":
            return lambda m: "UNREAD" not in m["labelIds"]
        case "in" if value == "anywhere":
            return lambda m: True
        case "is" | "in" | "label":
            ids = {label["id"] for label in user.labels.values() if value in _label_keys(label)}
            return lambda m: bool(ids & set(m["labelIds"]))
        case "rfc822msgid":
            wanted = value.strip("<> ")
            return lambda m: str(m["mime"].get("Message-ID", "")).strip("<> ").lower() == wanted
        case "has" if value == "attachment":
            return lambda m: any(part.get_filename() for part in m["mime"].walk())
        case "newer_than" | "older_than":
            amount, unit = value[:-1], value[-1:]
            if not amount.isdigit() or unit not in _PERIOD:
                raise bad_value("q", f"{operator}:{value}")
            cutoff = _millis(now - int(amount) * _PERIOD[unit])
            newer = operator == "newer_than"
            return lambda m: (int(m["internalDate"]) > cutoff) == newer
        case "after" | "before":
            cutoff = _millis(_day(value, now.tzinfo, operator))
            after = operator == "after"
            return lambda m: (int(m["internalDate"]) >= cutoff) == after
        case "":
            return lambda m: _contains(
                f"{m['mime']['Subject']} {m['mime']['From']} {_text(m['mime'])}", words
            )
        case _:  # not an operator: Gmail searches the text
            return _term("", [f"{operator}:{word}" for word in words], user, now)


def _negation(test: Test) -> Test:
    return lambda message: not test(message)


def _contains(text: str, words: list[str]) -> bool:
    folded = text.lower()
    return all(word.lower() in folded for word in words)


def _label_keys(label: Json) -> set[str]:
    """How a search names a label: its id or its name, any case, ``-`` for spaces and ``/``."""
    return {
        label["id"].lower(),
        re.sub(r"[\s/]", "-", label["name"].lower()),
        label["name"].lower(),
    }


def _day(value: str, zone: tzinfo | None, operator: str) -> datetime:
    """``after:``/``before:`` take ``YYYY/MM/DD`` (a day in the user's zone) or epoch seconds."""
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    try:
        return datetime.strptime(value.replace("-", "/"), "%Y/%m/%d").replace(tzinfo=zone)
    except ValueError:
        raise bad_value("q", f"{operator}:{value}") from None


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# Tasks


def tasklists_list(call: Call) -> Json:
    page, more = paginate(list(call.user.tasklists.values()), call, 1000, 1000)
    return _task_page("tasks#taskLists", call, page, more)


def tasks_list(call: Call) -> Json:
    tasks = call.user.tasks
    list_id = call.path["tasklist"]
    if list_id == "@default":
        list_id = next(iter(tasks))
    if list_id not in tasks:
        raise not_found()
    show_completed, show_hidden = call.flag("showCompleted", True), call.flag("showHidden", False)
    due_min, due_max = call.time("dueMin"), call.time("dueMax")
    updated_min = call.time("updatedMin")
    found = [
        task
        for task in tasks[list_id].values()
        if (show_completed or task["status"] != "completed")
        and (show_hidden or not task.get("hidden"))
        and (not (due_min or due_max) or _due_within(task, due_min, due_max))
        and (updated_min is None or datetime.fromisoformat(task["updated"]) >= updated_min)
    ]
    page, more = paginate(found, call, 20, 100)
    return _task_page("tasks#tasks", call, page, more)


def _due_within(task: Json, low: datetime | None, high: datetime | None) -> bool:
    """``dueMin`` is inclusive and ``dueMax`` exclusive; a task without a due date is out."""
    if "due" not in task:
        return False
    due = datetime.fromisoformat(task["due"])
    return (low is None or due >= low) and (high is None or due < high)


def _task_page(kind: str, call: Call, page: list[Json], more: Json) -> Json:
    """A Tasks collection; Google leaves out ``items`` when there are none."""
    tag = etag(kind, call.user.email, *(item["etag"] for item in page))
    return {"kind": kind, "etag": tag, **more, **({"items": page} if page else {})}


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/calendar/v3/calendars/{calendarId}/events", events_list),
    ("GET", "/calendar/v3/calendars/{calendarId}/events/{eventId}", events_get),
    ("POST", "/calendar/v3/freeBusy", free_busy),
    ("GET", "/gmail/v1/users/me/messages", messages_list),
    ("GET", "/gmail/v1/users/me/messages/{id}", messages_get),
    ("GET", "/gmail/v1/users/me/threads/{id}", threads_get),
    ("GET", "/gmail/v1/users/me/labels", labels_list),
    ("GET", "/tasks/v1/users/@me/lists", tasklists_list),
    ("GET", "/tasks/v1/lists/{tasklist}/tasks", tasks_list),
]

from . import writes  # noqa: E402  (its handlers use this module's helpers)

ROUTES += writes.ROUTES
