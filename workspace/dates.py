"""What a user or the model says about time, as datetimes in the user's time zone.

``parse_moment`` reads one instant: RFC 3339 / ISO 8601 first (an offset is kept, a
naive time is the user's local time), then English phrases with ``dateparser``
("next Tuesday 2pm", "in 2 hours", "tomorrow at 9"). ``parse_range`` reads a span
``[start, end)``: "today", "this week", "next 3 days", "Friday", "March",
"2026-12-03 to 2026-12-05"... "this week" / "this month" mean the rest of it (from
today's midnight), since an assistant is mostly asked about what is coming.

Its guarantee: "today" is the user's today (``zone``, never ``settings.TIME_ZONE``),
local times are built with zoneinfo (DST-correct), and text that cannot be read
unambiguously raises :class:`DateParseError` with a question the model can ask.
"""

from __future__ import annotations

import re
from calendar import month_name
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateparser.date import DateDataParser
from django.conf import settings
from langchain_core.runnables import RunnableConfig

MAX_DAYS = 3660  # "next N days" beyond ten years is a typo
WEEKDAY_NAMES = ("monday mon", "tuesday tue tues", "wednesday wed", "thursday thu thurs",
                 "friday fri", "saturday sat", "sunday sun")  # fmt: skip
WEEKDAYS = {name: day for day, names in enumerate(WEEKDAY_NAMES) for name in names.split()}
WEEKDAY = re.compile(rf"(?:on |this |(next) )?({'|'.join(WEEKDAYS)})", re.IGNORECASE)
NEXT_DAYS = re.compile(r"(?:the )?next (\d+) (day|week)s?", re.IGNORECASE)
RANGE = re.compile(
    r"(?:from |between )?(.+?) (?:to|until|till|through|and|-|\u2013|\u2014) (.+)", re.IGNORECASE
)
NUMERIC_DATE = re.compile(r"(\d{1,2})[/.](\d{1,2})(?:[/.]\d{2,4})?")
BARE_HOUR = re.compile(r"\bat (\d{1,2})\b(?![:.]?\d|\s*[ap]\.?m\b)", re.IGNORECASE)
MOMENT_PERIODS = ("time", "part_of_day")  # dateparser's periods that name an instant


def resolve_timezone(name: str | None) -> ZoneInfo | None:
    """The ``ZoneInfo`` for an IANA name, or None when the name is empty or unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def default_timezone(config: RunnableConfig | None = None) -> str:
    """The user's timezone from the run's config, else the server's ``TIME_ZONE``."""
    configured = ((config or {}).get("configurable") or {}).get("timezone")
    if resolve_timezone(configured):
        return configured
    return settings.TIME_ZONE


def format_now(zone: ZoneInfo, now: datetime | None = None) -> str:
    """``Wednesday 25 November 2026, 14:03 (Europe/Paris, UTC+01:00)``."""
    local = (now or datetime.now(zone)).astimezone(zone)
    offset = local.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} ({zone.key}, {offset})"


class DateParseError(ValueError):
    """Text that is not a date or range we can read; the message asks for a better one."""


@dataclass(frozen=True)
class _Span:
    start: datetime
    end: datetime
    exact: bool  # start is an instant the text named ("2pm"), not a day's midnight


def parse_moment(text: str, zone: ZoneInfo, *, now: datetime | None = None) -> datetime:
    """One instant, aware; ``now`` (default: the current time) anchors relative phrases."""
    try:
        moment, _period = _read(text, zone, _local_now(zone, now))
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, DateParseError):
            raise
        raise _out_of_range(text) from None
    return moment


def parse_range(
    text: str, zone: ZoneInfo, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """A span ``(start, end)``, end exclusive: days run from midnight to midnight in ``zone``.

    A single day, weekday or date is that whole day; "next week" is Monday to Monday;
    "this weekend" is Saturday (or today) to Monday; "next N days" starts today;
    "A to B" runs from A to the end of B (or to B itself when B names a time); a lone
    time ("3pm") runs to the end of its day.
    """
    local_now = _local_now(zone, now)
    try:
        span = _span(" ".join(text.split()), zone, local_now)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, DateParseError):
            raise
        raise _out_of_range(text) from None
    if span.end <= span.start:
        raise DateParseError(
            f"The range '{text}' ends before it starts. Give the start first, "
            "like '2026-12-03 to 2026-12-05'."
        )
    return span.start, span.end


def _out_of_range(text: str) -> DateParseError:
    return DateParseError(
        f"The date '{text}' is out of range. Give a date between the years 1 and 9998, "
        "like 2026-12-03."
    )


def _local_now(zone: ZoneInfo, now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(zone)
    return now.astimezone(zone) if now.utcoffset() is not None else now.replace(tzinfo=zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def _days(first: date, after_last: date, zone: ZoneInfo) -> _Span:
    return _Span(_midnight(first, zone), _midnight(after_last, zone), exact=False)


def _span(phrase: str, zone: ZoneInfo, now: datetime) -> _Span:
    today = now.date()
    for reader in (_named, _next_days, _weekday):
        if days := reader(phrase, today):
            return _days(*days, zone)
    if match := RANGE.fullmatch(phrase):
        first = _span(match[1], zone, now)
        last = _span(match[2], zone, first.start)
        return _Span(first.start, last.start if last.exact else last.end, first.exact)
    moment, period = _read(phrase, zone, now)
    return _period_span(moment, period, zone)


def _next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _named(phrase: str, today: date) -> tuple[date, date] | None:
    monday = today - timedelta(days=today.weekday())
    next_month = _next_month(today)
    weekend = (max(today, monday + timedelta(days=5)), monday + timedelta(days=7))
    names: dict[str, tuple[date, date]] = {
        "today": (today, today + timedelta(days=1)),
        "tomorrow": (today + timedelta(days=1), today + timedelta(days=2)),
        "yesterday": (today - timedelta(days=1), today),
        "this week": (today, monday + timedelta(days=7)),
        "next week": (monday + timedelta(days=7), monday + timedelta(days=14)),
        "last week": (monday - timedelta(days=7), monday),
        "this weekend": weekend,
        "weekend": weekend,
        "this month": (today, next_month),
        "next month": (next_month, _next_month(next_month)),
    }
    return names.get(phrase.lower())


def _next_days(phrase: str, today: date) -> tuple[date, date] | None:
    if not (match := NEXT_DAYS.fullmatch(phrase)):
        return None
    days = int(match[1]) * (7 if match[2].lower() == "week" else 1)
    if not 0 < days <= MAX_DAYS:
        raise DateParseError(f"'{phrase}' is not a usable number of days. Give 1 to {MAX_DAYS}.")
    return today, today + timedelta(days=days)


def _weekday(phrase: str, today: date) -> tuple[date, date] | None:
    """That weekday, today included; with "next", the first one after today."""
    if not (match := WEEKDAY.fullmatch(phrase)):
        return None
    ahead = (WEEKDAYS[match[2].lower()] - today.weekday()) % 7 or (7 if match[1] else 0)
    day = today + timedelta(days=ahead)
    return day, day + timedelta(days=1)


def _period_span(moment: datetime, period: str, zone: ZoneInfo) -> _Span:
    """The span dateparser's period names: the instant to midnight, or its week/month/year."""
    day = moment.date()
    if period in MOMENT_PERIODS:
        return _Span(moment, _midnight(day + timedelta(days=1), zone), exact=True)
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return _days(monday, monday + timedelta(days=7), zone)
    if period == "month":
        return _days(day.replace(day=1), _next_month(day), zone)
    if period == "year":
        return _days(date(day.year, 1, 1), date(day.year + 1, 1, 1), zone)
    return _days(day, day + timedelta(days=1), zone)


def _read(text: str, zone: ZoneInfo, now: datetime) -> tuple[datetime, str]:
    """An instant and dateparser's period for it ("time", "day", "week", "month"...)."""
    text = text.strip()
    if iso := _iso(text, zone):
        return iso
    _refuse_ambiguous(text)
    parser = DateDataParser(
        languages=["en"],
        settings={
            "TIMEZONE": zone.key,
            "RETURN_AS_TIMEZONE_AWARE": True,
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": now.replace(tzinfo=None),
            "RETURN_TIME_AS_PERIOD": True,
        },
    )
    found = parser.get_date_data(BARE_HOUR.sub(r"at \1:00", text))
    if found.date_obj is None:
        raise DateParseError(
            f"I could not understand the date '{text}'. Give a date like 2026-12-03 "
            "or a phrase like 'next Tuesday 2pm'."
        )
    return found.date_obj.astimezone(zone), found.period or "day"


def _iso(text: str, zone: ZoneInfo) -> tuple[datetime, str] | None:
    """RFC 3339 / ISO 8601: a date is a day; a time keeps its offset or is local."""
    try:
        return _midnight(date.fromisoformat(text), zone), "day"
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.utcoffset() is not None else moment.replace(tzinfo=zone)), "time"


def _refuse_ambiguous(text: str) -> None:
    """ "03/04" is 4 March to some and 3 April to others: ask instead of guessing."""
    match = NUMERIC_DATE.fullmatch(text)
    if not match:
        return
    first, second = int(match[1]), int(match[2])
    if first != second and first <= 12 and second <= 12:
        raise DateParseError(
            f"The date '{text}' is ambiguous: {second} {month_name[first]} or "
            f"{first} {month_name[second]}? "
            "Give it as YYYY-MM-DD."
        )
