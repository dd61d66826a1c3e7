"""Google Calendar: events in a time range, one event, free time between them, and writes.

``list_events`` expands recurring events (``singleEvents=true&orderBy=startTime``),
follows pages up to ``limit`` and asks only for the fields an :class:`Event` holds.
Timed events start and end at aware datetimes in the event's own time zone; all-day
events carry dates (``all_day=True``, the end date exclusive, as Google has it).
``free_slots`` finds gaps in working hours in the user's zone, skipping weekends;
declined, free ("transparent") and cancelled events do not block.

Writes: ``insert_event`` takes a client-chosen id (:func:`event_id_for`), so a retried
insert cannot create a duplicate (Google answers 409 and the existing event is
returned); ``delete_event`` tells a deletion from one already done (410).

Its guarantee: odd or missing fields never raise (an event without a readable start
is left out of a listing); days and hours are built with zoneinfo, so DST is respected.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workspace.google.client import (
    BadRequest,
    Conflict,
    GoogleClient,
    NotFound,
    dict_at,
    dicts_at,
    path_segment,
    rfc3339,
    str_at,
)

PAGE_SIZE = 250  # events.list allows up to 2500
EVENT_FIELDS = (
    "id,status,summary,description,location,start,end,htmlLink,hangoutLink,"
    "recurringEventId,transparency,organizer(email,displayName),"
    "attendees(email,displayName,responseStatus,self,organizer),"
    "conferenceData/entryPoints(entryPointType,uri)"
)

RESPONSES = ("accepted", "declined", "tentative")

When = datetime | date  # a datetime for timed events, a date for all-day ones


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str
    response: str  # "needsAction", "declined", "tentative" or "accepted"
    is_self: bool
    organizer: bool


@dataclass(frozen=True)
class Event:
    id: str
    title: str
    start: When | None
    end: When | None
    all_day: bool
    location: str
    description: str
    attendees: tuple[Attendee, ...]
    organizer: str  # email
    meet_link: str | None
    html_link: str | None
    status: str  # "confirmed", "tentative" or "cancelled"
    recurring: bool
    declined_by_me: bool
    busy: bool  # False for "transparent" (shown as free) and cancelled events


@dataclass(frozen=True)
class EventList:
    events: list[Event]
    time_zone: str | None  # the calendar's


async def list_events(
    client: GoogleClient,
    start: datetime,
    end: datetime,
    *,
    query: str | None = None,
    limit: int = 50,
    calendar_id: str = "primary",
) -> EventList:
    """Events overlapping ``[start, end)`` (aware datetimes), ordered by start."""
    params = {
        "timeMin": rfc3339(start),
        "timeMax": rfc3339(end),
        "singleEvents": "true",
        "orderBy": "startTime",
        **({"q": query} if query else {}),
    }
    listing = await client.get_all(
        f"{_calendar_path(calendar_id)}/events",
        limit=limit,
        page_size=PAGE_SIZE,
        params=params,
        fields=f"timeZone,items({EVENT_FIELDS})",
    )
    time_zone = str_at(listing.first_page, "timeZone") or None
    events = [event_from_json(item, time_zone) for item in listing.items]
    return EventList([event for event in events if event.start is not None], time_zone)


async def get_event(client: GoogleClient, event_id: str, calendar_id: str = "primary") -> Event:
    data = await client.get(
        f"{_calendar_path(calendar_id)}/events/{path_segment(event_id)}", fields=EVENT_FIELDS
    )
    return event_from_json(data)


def event_id_for(key: str) -> str:
    """A valid client-chosen event id (base32hex, lower case) for ``key``, always the same."""
    digest = hashlib.sha256(key.encode()).digest()
    return base64.b32hexencode(digest).decode().lower().rstrip("=")


async def insert_event(
    client: GoogleClient,
    body: Mapping[str, Any],
    *,
    event_id: str,
    send_updates: str = "all",
    conference: bool = False,
    calendar_id: str = "primary",
) -> Event:
    """Create the event ``body`` under ``event_id``; if that id exists (a retry), the
    existing event. ``conference``: with a new Google Meet link."""
    params = {"sendUpdates": send_updates}
    body = {**body, "id": event_id}
    if conference:
        params["conferenceDataVersion"] = 1
        body["conferenceData"] = _meet_request(body, event_id)
    try:
        data = await client.request(
            "POST",
            f"{_calendar_path(calendar_id)}/events",
            params=params,
            json=body,
            fields=EVENT_FIELDS,
        )
    except Conflict:  # inserted before: this is a retry
        return await get_event(client, event_id, calendar_id)
    return event_from_json(data)


async def patch_event(
    client: GoogleClient,
    event_id: str,
    body: Mapping[str, Any],
    *,
    send_updates: str = "all",
    conference: bool = False,
    calendar_id: str = "primary",
) -> Event:
    """Change only the fields in ``body`` (``None`` clears one); ``conference`` adds Meet."""
    params: dict[str, Any] = {"sendUpdates": send_updates}
    body = _switching_kinds(body)
    if conference:
        params["conferenceDataVersion"] = 1
        body["conferenceData"] = _meet_request(body, event_id_for(f"meet:{event_id}"))
    data = await client.request(
        "PATCH", _event_path(calendar_id, event_id), params=params, json=body, fields=EVENT_FIELDS
    )
    return event_from_json(data)


async def delete_event(
    client: GoogleClient, event_id: str, *, send_updates: str = "all", calendar_id: str = "primary"
) -> bool:
    """True if deleted now, False if it was deleted before (410); unknown ids raise NotFound."""
    try:
        await client.request(
            "DELETE", _event_path(calendar_id, event_id), params={"sendUpdates": send_updates}
        )
    except NotFound as error:
        if error.status == 410:
            return False
        raise
    return True


async def respond_to_event(
    client: GoogleClient,
    event_id: str,
    response: str,
    *,
    email: str,
    calendar_id: str = "primary",
    send_updates: str = "all",
) -> Event:
    """Accept, decline or tentatively accept an invitation (``response`` in RESPONSES).

    Google replaces the whole attendee list on a patch: it is read first, with only the
    user's ``responseStatus`` changed. Raises BadRequest if the user is not invited.
    """
    if response not in RESPONSES:
        raise ValueError(f"response must be one of {', '.join(RESPONSES)}, not {response!r}")
    path = _event_path(calendar_id, event_id)
    data = await client.get(path, fields="attendees")
    attendees = [dict(attendee) for attendee in dicts_at(data, "attendees")]
    mine = [a for a in attendees if a.get("self") is True] or [
        a for a in attendees if str_at(a, "email").lower() == email.lower()
    ]
    if not mine:
        raise BadRequest(
            f"PATCH {path}: {email} is not an attendee",
            message="You are not on the guest list of this event",
            service="Calendar",
        )
    mine[0]["responseStatus"] = response
    patched = await client.request(
        "PATCH",
        path,
        params={"sendUpdates": send_updates},
        json={"attendees": attendees},
        fields=EVENT_FIELDS,
    )
    return event_from_json(patched)


def event_from_json(data: Mapping[str, Any], time_zone: str | None = None) -> Event:
    """An event resource as an :class:`Event`; ``time_zone`` for times without their own."""
    start = _when(dict_at(data, "start"), time_zone)
    attendees = tuple(_attendee(item) for item in dicts_at(data, "attendees"))
    return Event(
        id=str_at(data, "id"),
        title=str_at(data, "summary"),
        start=start,
        end=_when(dict_at(data, "end"), time_zone),
        all_day=start is not None and not isinstance(start, datetime),
        location=str_at(data, "location"),
        description=str_at(data, "description"),
        attendees=attendees,
        organizer=str_at(dict_at(data, "organizer"), "email"),
        meet_link=_meet_link(data),
        html_link=str_at(data, "htmlLink") or None,
        status=str_at(data, "status"),
        recurring=bool(str_at(data, "recurringEventId")),
        declined_by_me=any(a.is_self and a.response == "declined" for a in attendees),
        busy=str_at(data, "transparency") != "transparent"
        and str_at(data, "status") != "cancelled",
    )


def free_slots(
    events: Iterable[Event],
    start: datetime,
    end: datetime,
    minutes: int,
    zone: ZoneInfo,
    *,
    day_start: time = time(9),
    day_end: time = time(18),
) -> list[tuple[datetime, datetime]]:
    """Gaps of at least ``minutes`` in ``[start, end)`` within working hours, weekdays only.

    Hours are the user's (``zone``); the slots come back in that zone.
    """
    length = timedelta(minutes=minutes)
    busy = sorted(_busy_intervals(events, zone))
    slots: list[tuple[datetime, datetime]] = []
    for window in _working_hours(start, end, zone, day_start, day_end):
        slots += [(a.astimezone(zone), b.astimezone(zone)) for a, b in _gaps(window, busy, length)]
    return slots


def _calendar_path(calendar_id: str) -> str:
    return f"calendar/v3/calendars/{path_segment(calendar_id)}"


def _event_path(calendar_id: str, event_id: str) -> str:
    return f"{_calendar_path(calendar_id)}/events/{path_segment(event_id)}"


def _meet_request(body: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """``conferenceData`` asking Google for a Meet link; the same ``request_id`` on a retry."""
    create = {"requestId": request_id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}
    return {**dict_at(body, "conferenceData"), "createRequest": create}


def _switching_kinds(body: Mapping[str, Any]) -> dict[str, Any]:
    """A patch's start/end with the other kind cleared (a patch merges objects, so a timed
    event made all-day would otherwise keep its ``dateTime``)."""
    body = dict(body)
    for key in ("start", "end"):
        value = body.get(key)
        if isinstance(value, Mapping):
            if value.get("date") is not None:
                body[key] = {"dateTime": None, "timeZone": None, **value}
            elif value.get("dateTime") is not None:
                body[key] = {"date": None, **value}
    return body


def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _when(value: Mapping[str, Any], time_zone: str | None) -> When | None:
    """An EventDateTime: ``dateTime`` (+ ``timeZone``) or an all-day ``date``."""
    try:
        if date_time := str_at(value, "dateTime"):
            moment = datetime.fromisoformat(date_time)
            zone = _zone(str_at(value, "timeZone") or time_zone)
            if moment.tzinfo is None:
                return moment.replace(tzinfo=zone or UTC)
            return moment.astimezone(zone) if zone else moment
        if day := str_at(value, "date"):
            return date.fromisoformat(day)
    except ValueError:
        pass
    return None


def _attendee(data: Mapping[str, Any]) -> Attendee:
    return Attendee(
        email=str_at(data, "email"),
        name=str_at(data, "displayName"),
        response=str_at(data, "responseStatus") or "needsAction",
        is_self=data.get("self") is True,
        organizer=data.get("organizer") is True,
    )


def _meet_link(data: Mapping[str, Any]) -> str | None:
    if link := str_at(data, "hangoutLink"):
        return link
    entry_points = dicts_at(dict_at(data, "conferenceData"), "entryPoints")
    videos = (str_at(e, "uri") for e in entry_points if str_at(e, "entryPointType") == "video")
    return next((uri for uri in videos if uri), None)


def _moment(value: When, zone: ZoneInfo) -> datetime:
    """A datetime in UTC; a date is its midnight in ``zone``."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(), tzinfo=zone)
    return value.astimezone(UTC)


def _busy_intervals(events: Iterable[Event], zone: ZoneInfo) -> Iterator[tuple[datetime, datetime]]:
    for event in events:
        if event.start is None or not event.busy or event.declined_by_me:
            continue  # declined, shown as free, or unreadable
        start = _moment(event.start, zone)
        end = _moment(event.end, zone) if event.end is not None else start
        yield start, max(start, end)


def _working_hours(
    start: datetime, end: datetime, zone: ZoneInfo, day_start: time, day_end: time
) -> Iterator[tuple[datetime, datetime]]:
    """Each weekday's ``[day_start, day_end)`` in ``zone``, clipped to ``[start, end)``, in UTC."""
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    while day <= last:
        if day.weekday() < 5:
            opens = datetime.combine(day, day_start, tzinfo=zone).astimezone(UTC)
            closes = datetime.combine(day, day_end, tzinfo=zone).astimezone(UTC)
            window = max(opens, start.astimezone(UTC)), min(closes, end.astimezone(UTC))
            if window[0] < window[1]:
                yield window
        day += timedelta(days=1)


def _gaps(
    window: tuple[datetime, datetime], busy: list[tuple[datetime, datetime]], length: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    """The free stretches of ``window`` (UTC) between sorted ``busy`` intervals."""
    cursor, closes = window
    for busy_start, busy_end in busy:
        if busy_start >= closes:
            break
        if busy_end <= cursor:
            continue
        if busy_start - cursor >= length:
            yield cursor, busy_start
        cursor = max(cursor, busy_end)
    if closes - cursor >= length:
        yield cursor, closes
