"""Dates a user or the model gives, read in the user's zone: instants, ranges, DST, and
the questions asked back when text is unreadable or ambiguous."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from workspace.dates import DateParseError, parse_moment, parse_range

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
AUCKLAND = ZoneInfo("Pacific/Auckland")
# Thursday 22 October 2026, 15:30 in Paris; summer time ends on Sunday the 25th.
NOW = datetime(2026, 10, 22, 15, 30, tzinfo=PARIS)


def paris(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2026-12-03T10:00:00-05:00",
            datetime(2026, 12, 3, 10, tzinfo=timezone(timedelta(hours=-5))),
        ),
        ("2026-12-03T09:00:00Z", datetime(2026, 12, 3, 9, tzinfo=UTC)),
        ("2026-12-03T10:00", paris(2026, 12, 3, 10)),
        ("2026-12-03", paris(2026, 12, 3)),
        ("next Tuesday 2pm", paris(2026, 10, 27, 14)),
        ("in 2 hours", paris(2026, 10, 22, 17, 30)),
        ("tomorrow at 9", paris(2026, 10, 23, 9)),
        ("tomorrow 9am", paris(2026, 10, 23, 9)),
        ("Friday", paris(2026, 10, 23)),
        ("friday 3pm", paris(2026, 10, 23, 15)),
        ("3 Dec 10:00", paris(2026, 12, 3, 10)),
    ],
)
def test_parse_moment(text, expected):
    moment = parse_moment(text, PARIS, now=NOW)
    assert moment == expected
    assert moment.utcoffset() == expected.utcoffset()  # an offset given is kept


def test_local_times_use_the_zone_not_a_fixed_offset():
    tuesday = parse_moment("next Tuesday 2pm", PARIS, now=NOW)
    assert tuesday.tzinfo is PARIS and tuesday.utcoffset() == timedelta(hours=1)  # after the change
    assert parse_moment("tomorrow 9am", PARIS, now=NOW).utcoffset() == timedelta(hours=2)


def test_now_defaults_to_the_current_time_in_the_zone():
    moment = parse_moment("in 1 hour", NEW_YORK)
    assert abs(moment - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("today", paris(2026, 10, 22), paris(2026, 10, 23)),
        ("Tomorrow", paris(2026, 10, 23), paris(2026, 10, 24)),
        ("this week", paris(2026, 10, 22), paris(2026, 10, 26)),
        ("next week", paris(2026, 10, 26), paris(2026, 11, 2)),
        ("this weekend", paris(2026, 10, 24), paris(2026, 10, 26)),
        ("this month", paris(2026, 10, 22), paris(2026, 11, 1)),
        ("next month", paris(2026, 11, 1), paris(2026, 12, 1)),
        ("Friday", paris(2026, 10, 23), paris(2026, 10, 24)),
        ("thursday", paris(2026, 10, 22), paris(2026, 10, 23)),
        ("next Thursday", paris(2026, 10, 29), paris(2026, 10, 30)),
        ("next 3 days", paris(2026, 10, 22), paris(2026, 10, 25)),
        ("next 2 weeks", paris(2026, 10, 22), paris(2026, 11, 5)),
        ("2026-12-03", paris(2026, 12, 3), paris(2026, 12, 4)),
        ("December 3", paris(2026, 12, 3), paris(2026, 12, 4)),
        ("March", paris(2027, 3, 1), paris(2027, 4, 1)),
        ("2026-12-03 to 2026-12-05", paris(2026, 12, 3), paris(2026, 12, 6)),
        ("Monday - Wednesday", paris(2026, 10, 26), paris(2026, 10, 29)),
        ("from tomorrow 9am to 5pm", paris(2026, 10, 23, 9), paris(2026, 10, 23, 17)),
        ("between Friday and next week", paris(2026, 10, 23), paris(2026, 11, 2)),
        ("3pm", paris(2026, 10, 23, 15), paris(2026, 10, 24)),
        (
            "2026-12-03T09:00:00Z to 2026-12-03T17:00:00+01:00",
            paris(2026, 12, 3, 10),
            paris(2026, 12, 3, 17),
        ),
        ("NEXT   Week", paris(2026, 10, 26), paris(2026, 11, 2)),
    ],
)
def test_parse_range(text, start, end):
    assert parse_range(text, PARIS, now=NOW) == (start, end)


def test_a_week_across_the_dst_change_has_an_hour_more():
    start, end = parse_range("this week", PARIS, now=paris(2026, 10, 19, 8))
    assert (start.utcoffset(), end.utcoffset()) == (timedelta(hours=2), timedelta(hours=1))
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(days=7, hours=1)


def test_new_york_days_keep_their_midnights_across_the_change():
    start, end = parse_range(
        "this weekend", NEW_YORK, now=datetime(2026, 10, 30, 12, tzinfo=NEW_YORK)
    )
    assert (start, end) == (
        datetime(2026, 10, 31, tzinfo=NEW_YORK),
        datetime(2026, 11, 2, tzinfo=NEW_YORK),
    )
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=49)


def test_on_sunday_this_weekend_is_the_rest_of_it():
    assert parse_range("weekend", PARIS, now=paris(2026, 10, 25, 11)) == (
        paris(2026, 10, 25),
        paris(2026, 10, 26),
    )


def test_today_is_the_users_today_not_the_servers(settings):
    settings.TIME_ZONE = "UTC"
    now = datetime(2026, 3, 1, 20, tzinfo=UTC)  # Monday 2 March, 09:00 in Auckland
    assert parse_range("today", AUCKLAND, now=now) == (
        datetime(2026, 3, 2, tzinfo=AUCKLAND),
        datetime(2026, 3, 3, tzinfo=AUCKLAND),
    )
    assert parse_moment("tomorrow 9am", AUCKLAND, now=now) == datetime(
        2026, 3, 3, 9, tzinfo=AUCKLAND
    )
    assert parse_moment("2026-03-02T10:00", AUCKLAND, now=now).utcoffset() == timedelta(hours=13)


def test_a_naive_now_is_taken_as_local():
    assert parse_range("today", AUCKLAND, now=datetime(2026, 3, 2, 0, 30))[0] == datetime(
        2026, 3, 2, tzinfo=AUCKLAND
    )


@pytest.mark.parametrize("parse", [parse_moment, parse_range])
def test_unreadable_text_asks_for_a_usable_date(parse):
    with pytest.raises(DateParseError) as info:
        parse("blorp", PARIS, now=NOW)
    assert str(info.value) == (
        "I could not understand the date 'blorp'. Give a date like 2026-12-03 or a phrase "
        "like 'next Tuesday 2pm'."
    )
    assert isinstance(info.value, ValueError)


def test_ambiguous_numeric_dates_are_questioned():
    with pytest.raises(
        DateParseError, match=r"'03/04' is ambiguous: 4 March or 3 April\? Give it as YYYY-MM-DD"
    ):
        parse_moment("03/04", PARIS, now=NOW)
    assert parse_moment("13/04", PARIS, now=NOW) == paris(2027, 4, 13)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-12-05 to 2026-12-03", "ends before it starts"),
        ("next 0 days", "not a usable number of days"),
        ("", "could not understand the date ''"),
    ],
)
def test_other_unusable_ranges(text, message):
    with pytest.raises(DateParseError, match=message):
        parse_range(text, PARIS, now=paris(2026, 10, 19))
