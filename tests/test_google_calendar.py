"""Calendar reads: events.list pages and parameters, parsing events (DST, all-day, odd
fields), one event, and free slots in the user's working hours and timezone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx

from tests.google_bodies import (
    event,
    events_page,
)
from workspace.google.calendar import (
    EVENT_FIELDS,
    Event,
    event_from_json,
    free_slots,
    get_event,
    list_events,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
AUCKLAND = ZoneInfo("Pacific/Auckland")
EVENTS = "/calendar/v3/calendars/primary/events"


def events(*bodies: dict, time_zone: str = "Europe/Paris") -> list[Event]:
    return [event_from_json(body, time_zone) for body in bodies]


def at(zone: ZoneInfo, *fields: int) -> datetime:
    return datetime(*fields, tzinfo=zone)


async def test_list_events_follows_pages_with_a_tight_query(google_api, google_client):
    route = google_api.get(EVENTS).mock(
        side_effect=[
            httpx.Response(
                200,
                json=events_page(
                    [
                        event("e1", "2026-10-26T09:00:00+01:00", "2026-10-26T10:00:00+01:00"),
                        event("e2", "2026-10-27", "2026-10-28"),
                    ],
                    next_page="page-2",
                ),
            ),
            httpx.Response(
                200, json=events_page([event("e3", "2026-10-28T14:00:00Z", "2026-10-28T15:00:00Z")])
            ),
        ]
    )
    start = at(PARIS, 2026, 10, 26)
    listing = await list_events(google_client, start, start + timedelta(days=7), query="standup")
    assert [e.id for e in listing.events] == ["e1", "e2", "e3"]
    assert listing.time_zone == "Europe/Paris"
    first, second = (dict(call.request.url.params) for call in route.calls)
    assert first == {
        "timeMin": "2026-10-26T00:00:00+01:00",
        "timeMax": "2026-11-02T00:00:00+01:00",
        "singleEvents": "true",
        "orderBy": "startTime",
        "q": "standup",
        "maxResults": "50",
        "fields": f"nextPageToken,timeZone,items({EVENT_FIELDS})",
    }
    assert second["pageToken"] == "page-2" and second["maxResults"] == "48"
    # the calendar's zone places times that came without their own
    assert listing.events[2].start == at(PARIS, 2026, 10, 28, 15)
    assert listing.events[2].start.tzinfo.key == "Europe/Paris"


async def test_list_events_stops_at_the_limit(google_api, google_client):
    items = [event(f"e{n}", "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z") for n in range(3)]
    route = google_api.get(EVENTS).mock(
        return_value=httpx.Response(200, json=events_page(items, next_page="more"))
    )
    start = at(UTC, 2026, 3, 2)
    listing = await list_events(google_client, start, start + timedelta(days=1), limit=3)
    assert len(listing.events) == 3 and route.call_count == 1


async def test_the_users_zone_goes_to_google_as_an_offset(google_api, google_client, settings):
    settings.TIME_ZONE = "UTC"  # the server's zone must not matter
    route = google_api.get(EVENTS).mock(return_value=httpx.Response(200, json=events_page([])))
    monday = at(AUCKLAND, 2026, 3, 2)
    await list_events(google_client, monday, monday + timedelta(days=1))
    params = route.calls.last.request.url.params
    assert (params["timeMin"], params["timeMax"]) == (
        "2026-03-02T00:00:00+13:00",
        "2026-03-03T00:00:00+13:00",
    )


def test_an_event_with_people_a_meet_link_and_a_recurrence():
    (parsed,) = events(
        event(
            "standup_20260302",
            "2026-03-02T09:30:00+01:00",
            "2026-03-02T09:45:00+01:00",
            time_zone="Europe/Paris",
            summary="Standup",
            location="Room 4",
            description="Daily.",
            recurringEventId="standup",
            organizer={"email": "bob@example.com", "displayName": "Bob"},
            attendees=[
                {"email": "bob@example.com", "organizer": True, "responseStatus": "accepted"},
                {"email": "alice@example.com", "self": True, "responseStatus": "declined"},
                {"email": "carol@example.com", "displayName": "Carol"},
            ],
            conferenceData={
                "entryPoints": [
                    {"entryPointType": "phone", "uri": "tel:+33-1-23"},
                    {"entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij"},
                ]
            },
        )
    )
    assert (parsed.title, parsed.location, parsed.description) == ("Standup", "Room 4", "Daily.")
    assert parsed.start == at(PARIS, 2026, 3, 2, 9, 30) and not parsed.all_day
    assert parsed.organizer == "bob@example.com"
    assert parsed.meet_link == "https://meet.google.com/abc-defg-hij"
    assert parsed.recurring and parsed.declined_by_me and parsed.busy
    assert parsed.html_link.endswith("eid=standup_20260302")
    bob, alice, carol = parsed.attendees
    assert bob.organizer and bob.response == "accepted" and not bob.is_self
    assert alice.is_self and alice.response == "declined"
    assert (carol.name, carol.response) == ("Carol", "needsAction")


def test_hangout_link_comes_first_and_no_conference_is_none():
    with_hangout, plain = events(
        event(
            "a",
            "2026-03-02T09:00:00Z",
            "2026-03-02T10:00:00Z",
            hangoutLink="https://meet.google.com/x",
        ),
        event("b", "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"),
    )
    assert with_hangout.meet_link == "https://meet.google.com/x"
    assert plain.meet_link is None and not plain.recurring and not plain.declined_by_me


def test_all_day_and_timed_events_across_the_paris_dst_change():
    all_day, night, before, after = events(
        event("a", "2026-10-25", "2026-10-26"),
        event(
            "n", "2026-10-25T01:30:00+02:00", "2026-10-25T03:30:00+01:00", time_zone="Europe/Paris"
        ),
        event(
            "b", "2026-10-24T10:00:00+02:00", "2026-10-24T11:00:00+02:00", time_zone="Europe/Paris"
        ),
        event(
            "c", "2026-10-26T10:00:00+01:00", "2026-10-26T11:00:00+01:00", time_zone="Europe/Paris"
        ),
    )
    assert all_day.all_day and (all_day.start, all_day.end) == (
        date(2026, 10, 25),
        date(2026, 10, 26),
    )
    assert night.start.utcoffset() == timedelta(hours=2)
    assert night.end.utcoffset() == timedelta(hours=1)
    assert night.end.astimezone(UTC) - night.start.astimezone(UTC) == timedelta(hours=3)
    assert before.start.time() == after.start.time() == time(10)
    assert (before.start.utcoffset(), after.start.utcoffset()) == (
        timedelta(hours=2),
        timedelta(hours=1),
    )


def test_times_are_shown_in_the_events_own_zone_across_the_new_york_dst_change():
    saturday, monday = events(
        event("s", "2026-10-31T13:00:00Z", "2026-10-31T14:00:00Z", time_zone="America/New_York"),
        event("m", "2026-11-02T14:00:00Z", "2026-11-02T15:00:00Z", time_zone="America/New_York"),
    )
    assert saturday.start == at(NEW_YORK, 2026, 10, 31, 9) and saturday.start.hour == 9
    assert monday.start == at(NEW_YORK, 2026, 11, 2, 9) and monday.start.hour == 9
    assert saturday.start.tzinfo is NEW_YORK


def test_odd_events_never_raise():
    odd = [
        {"id": "no-start", "summary": "x"},
        {"id": "string-start", "start": "2026-03-02", "end": None},
        {"id": "bad-time", "start": {"dateTime": "soon"}, "end": {"date": "never"}},
        {
            "id": "bad-zone",
            "start": {"dateTime": "2026-03-02T09:00:00Z", "timeZone": "Mars/Olympus"},
        },
        {"id": 7, "summary": 42, "attendees": "everyone", "organizer": "bob", "conferenceData": []},
        event("naive", "2026-03-02T09:00:00", "2026-03-02T10:00:00", time_zone="Europe/Paris"),
    ]
    parsed = events(*odd, time_zone="")
    assert [e.start for e in parsed[:3]] == [None, None, None]
    assert parsed[3].start == at(UTC, 2026, 3, 2, 9) and parsed[3].end is None
    assert (parsed[4].id, parsed[4].title, parsed[4].attendees, parsed[4].organizer) == (
        "",
        "",
        (),
        "",
    )
    assert parsed[5].start == at(PARIS, 2026, 3, 2, 9)


async def test_events_without_a_readable_start_are_left_out(google_api, google_client):
    items = [{"id": "broken"}, event("ok", "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z")]
    google_api.get(EVENTS).mock(return_value=httpx.Response(200, json=events_page(items)))
    start = at(UTC, 2026, 3, 2)
    listing = await list_events(google_client, start, start + timedelta(days=1))
    assert [e.id for e in listing.events] == ["ok"]


async def test_get_event_quotes_ids_and_asks_for_the_event_fields(google_api, google_client):
    route = google_api.get(path__startswith="/calendar/v3/calendars/").mock(
        return_value=httpx.Response(
            200, json=event("evt/1", "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z")
        )
    )
    found = await get_event(google_client, "evt/1", calendar_id="team@example.com")
    request = route.calls.last.request
    assert request.url.raw_path.startswith(
        b"/calendar/v3/calendars/team@example.com/events/evt%2F1?"
    )
    assert request.url.params["fields"] == EVENT_FIELDS
    assert found.id == "evt/1" and found.start == at(UTC, 2026, 3, 2, 9)


def test_free_slots_skip_declined_and_free_events():
    day = events(
        event("busy", "2026-03-02T10:00:00+01:00", "2026-03-02T11:00:00+01:00"),
        event(
            "declined",
            "2026-03-02T13:00:00+01:00",
            "2026-03-02T14:30:00+01:00",
            attendees=[{"email": "me@example.com", "self": True, "responseStatus": "declined"}],
        ),
        event(
            "free",
            "2026-03-02T15:00:00+01:00",
            "2026-03-02T15:30:00+01:00",
            transparency="transparent",
        ),
        event(
            "cancelled",
            "2026-03-02T09:00:00+01:00",
            "2026-03-02T09:30:00+01:00",
            status="cancelled",
        ),
        event("late", "2026-03-02T16:00:00+01:00", "2026-03-02T17:00:00+01:00"),
    )
    monday = at(PARIS, 2026, 3, 2)
    assert free_slots(day, monday, monday + timedelta(days=1), 60, PARIS) == [
        (at(PARIS, 2026, 3, 2, 9), at(PARIS, 2026, 3, 2, 10)),
        (at(PARIS, 2026, 3, 2, 11), at(PARIS, 2026, 3, 2, 16)),
        (at(PARIS, 2026, 3, 2, 17), at(PARIS, 2026, 3, 2, 18)),
    ]


def test_free_slots_merge_overlaps_and_drop_short_gaps():
    day = events(
        event("a", "2026-03-02T10:00:00+01:00", "2026-03-02T12:00:00+01:00"),
        event("b", "2026-03-02T11:00:00+01:00", "2026-03-02T13:00:00+01:00"),
        event("c", "2026-03-02T13:20:00+01:00", "2026-03-02T17:30:00+01:00"),
    )
    start = at(PARIS, 2026, 3, 2, 9, 30)
    assert free_slots(day, start, start + timedelta(hours=12), 30, PARIS) == [
        (at(PARIS, 2026, 3, 2, 9, 30), at(PARIS, 2026, 3, 2, 10)),
        (at(PARIS, 2026, 3, 2, 17, 30), at(PARIS, 2026, 3, 2, 18)),
    ]


def test_free_slots_skip_weekends_and_opaque_all_day_events():
    days = events(
        event("holiday", "2026-03-06", "2026-03-07", transparency="opaque"),
        event("birthday", "2026-03-09", "2026-03-10", transparency="transparent"),
    )
    friday = at(PARIS, 2026, 3, 6)
    slots = free_slots(days, friday, at(PARIS, 2026, 3, 9, 12), 45, PARIS)
    assert slots == [(at(PARIS, 2026, 3, 9, 9), at(PARIS, 2026, 3, 9, 12))]


def test_free_slots_keep_working_hours_across_the_dst_change():
    week = events(event("x", "2026-10-26T09:00:00+01:00", "2026-10-26T12:00:00+01:00"))
    friday = at(PARIS, 2026, 10, 23)
    slots = free_slots(week, friday, at(PARIS, 2026, 10, 27), 60, PARIS, day_end=time(17))
    assert slots == [
        (at(PARIS, 2026, 10, 23, 9), at(PARIS, 2026, 10, 23, 17)),
        (at(PARIS, 2026, 10, 26, 12), at(PARIS, 2026, 10, 26, 17)),
    ]
    assert [start.utcoffset() for start, _ in slots] == [timedelta(hours=2), timedelta(hours=1)]


def test_free_slots_are_in_the_users_zone_not_the_servers(settings):
    settings.TIME_ZONE = "UTC"
    # 21:00 UTC on Sunday is 10:00 on Monday in Auckland (NZDT, +13)
    monday = events(event("a", "2026-03-01T21:00:00Z", "2026-03-01T22:00:00Z"), time_zone="UTC")
    start = at(AUCKLAND, 2026, 3, 2)
    assert free_slots(monday, start, start + timedelta(days=1), 60, AUCKLAND) == [
        (at(AUCKLAND, 2026, 3, 2, 9), at(AUCKLAND, 2026, 3, 2, 10)),
        (at(AUCKLAND, 2026, 3, 2, 11), at(AUCKLAND, 2026, 3, 2, 18)),
    ]
