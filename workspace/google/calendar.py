"""Reading Google Calendar: events in a time range, one event, and free time between them.

``list_events`` expands recurring events (``singleEvents=true&orderBy=startTime``),
follows pages up to ``limit`` and asks only for the fields an :class:`Event` holds.
Timed events start and end at aware datetimes in the event's own time zone; all-day
events carry dates (``all_day=True``, the end date exclusive, as Google has it).
``free_slots`` finds gaps in working hours in the user's zone, skipping weekends;
declined, free ("transparent") and cancelled events do not block.

Its guarantee: odd or missing fields never raise (an event without a readable start
is left out of a listing); days and hours are built with zoneinfo, so DST is respected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workspace.google.client import (
    GoogleClient,
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
