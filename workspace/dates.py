"""What a user or the model says about time, as datetimes in the user's time zone.

``parse_moment`` reads one instant: RFC 3339 / ISO 8601 first (an offset is kept, a
naive time is the user's local time), then English phrases with ``dateparser``
("next Tuesday 2pm", "in 2 hours", "tomorrow at 9"). ``parse_range`` reads a span
``[start, end)``: "today", "this week", "next 3 days", "Friday", "March",
"2026-12-03 to 2026-12-05"... "this week" / "this month" mean the rest of it (from
today's midnight), since an assistant is mostly asked about what is coming.

``resolve_timezone`` reads what people call a zone: "Tokyo", "India", "PST", "asia/tokyo".

Its guarantee: "today" is the user's today (``zone``, never ``settings.TIME_ZONE``),
local times are built with zoneinfo (DST-correct), and text that cannot be read
unambiguously raises :class:`DateParseError` with a question the model can ask.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from calendar import month_name
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytz
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
    """The ``ZoneInfo`` a person or a model means by ``name``, or None when it is unknown.

    Accepted, case-insensitively: an IANA name ("Europe/Paris", "asia/tokyo"), an
    abbreviation ("UTC", "GMT", "CET", "EST", "PST", "JST", "IST", "UTC+2"), a city ("Tokyo",
    "New York", "São Paulo": the last part of an IANA name, plus a few big cities that
    are not one, like "San Francisco" or "Mumbai") or a country ("India", "UK",
    "Germany", "United States"; one with several zones gets its most populous one, see
    ``_COUNTRY_ZONE``). Abbreviations name a region's zone, so "EST" follows New York's
    daylight saving time; "UTC+2" is ``Etc/GMT-2``.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_TIMEZONE_NAME:
        return None
    key = _timezone_key(name.strip())
    try:
        return ZoneInfo(key) if key else None
    except (ZoneInfoNotFoundError, ValueError):  # an Etc/GMT offset this tzdata lacks
        return None


def _timezone_key(text: str) -> str | None:
    names = _timezone_names()
    if "/" in text and (key := names.iana.get(text.lower())):
        return key
    wanted = _place_key(text)
    if key := names.places.get(wanted):
        return key
    if match := _UTC_OFFSET.fullmatch(text.lower().replace(" ", "")):  # POSIX signs
        hours = int(match[2] or 0)
        if hours == 0:
            return "UTC"
        sign = "-" if match[1] == "+" else "+"
        return f"Etc/GMT{sign}{hours}" if hours <= (14 if sign == "-" else 12) else None
    if "," in text:  # "Tokyo, Japan": the place, else the country
        for part in text.split(","):
            if part.strip() and (key := _timezone_key(part.strip())):
                return key
    return names.iana.get(text.lower())  # the tz database's old names: "Egypt", "EST5EDT"


MAX_TIMEZONE_NAME = 64
_UTC_OFFSET = re.compile(r"(?:utc|gmt)(?:([+-])(\d{1,2})(?::?00)?)?")
_CONTINENTS = {"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia",
               "Europe", "Indian", "Pacific"}  # fmt: skip
# Abbreviations people use for a region's time: the region's zone (DST-aware), so "EST"
# in July is New York's summer time, which is what its user means. Ambiguous ones take
# their most common English meaning: IST is India's (not Ireland's or Israel's), CST
# the US Central (not China's), BST British Summer Time.
_ABBREVIATIONS = {
    "utc": "UTC", "z": "UTC", "zulu": "UTC", "gmt": "Etc/GMT", "greenwich": "Etc/GMT",
    "et": "America/New_York", "est": "America/New_York", "edt": "America/New_York",
    "eastern": "America/New_York", "eastern time": "America/New_York",
    "ct": "America/Chicago", "cst": "America/Chicago", "cdt": "America/Chicago",
    "central": "America/Chicago", "central time": "America/Chicago",
    "mt": "America/Denver", "mst": "America/Denver", "mdt": "America/Denver",
    "mountain": "America/Denver", "mountain time": "America/Denver",
    "pt": "America/Los_Angeles", "pst": "America/Los_Angeles", "pdt": "America/Los_Angeles",
    "pacific": "America/Los_Angeles", "pacific time": "America/Los_Angeles",
    "akst": "America/Anchorage", "akdt": "America/Anchorage", "hst": "Pacific/Honolulu",
    "ast": "America/Halifax", "adt": "America/Halifax", "nst": "America/St_Johns",
    "ndt": "America/St_Johns", "bst": "Europe/London", "wet": "Europe/Lisbon",
    "west": "Europe/Lisbon", "cet": "Europe/Berlin", "cest": "Europe/Berlin",
    "met": "Europe/Berlin", "eet": "Europe/Athens", "eest": "Europe/Athens",
    "msk": "Europe/Moscow", "ist": "Asia/Kolkata", "pkt": "Asia/Karachi",
    "ict": "Asia/Bangkok", "wib": "Asia/Jakarta", "sgt": "Asia/Singapore",
    "hkt": "Asia/Hong_Kong", "jst": "Asia/Tokyo", "kst": "Asia/Seoul",
    "awst": "Australia/Perth", "acst": "Australia/Adelaide", "acdt": "Australia/Adelaide",
    "aest": "Australia/Sydney", "aedt": "Australia/Sydney", "nzst": "Pacific/Auckland",
    "nzdt": "Pacific/Auckland", "sast": "Africa/Johannesburg", "cat": "Africa/Maputo",
    "eat": "Africa/Nairobi", "wat": "Africa/Lagos", "brt": "America/Sao_Paulo",
    "art": "America/Argentina/Buenos_Aires",
}  # fmt: skip
# Big cities that are not the last part of an IANA name.
_CITIES = {
    "san francisco": "America/Los_Angeles", "sf": "America/Los_Angeles",
    "seattle": "America/Los_Angeles", "san diego": "America/Los_Angeles",
    "las vegas": "America/Los_Angeles", "portland": "America/Los_Angeles",
    "washington": "America/New_York", "washington dc": "America/New_York",
    "dc": "America/New_York", "boston": "America/New_York", "miami": "America/New_York",
    "atlanta": "America/New_York", "philadelphia": "America/New_York", "nyc": "America/New_York",
    "houston": "America/Chicago", "dallas": "America/Chicago", "austin": "America/Chicago",
    "montreal": "America/Toronto", "ottawa": "America/Toronto", "la": "America/Los_Angeles",
    "beijing": "Asia/Shanghai", "shenzhen": "Asia/Shanghai", "guangzhou": "Asia/Shanghai",
    "mumbai": "Asia/Kolkata", "bombay": "Asia/Kolkata", "delhi": "Asia/Kolkata",
    "new delhi": "Asia/Kolkata", "bangalore": "Asia/Kolkata", "bengaluru": "Asia/Kolkata",
    "chennai": "Asia/Kolkata", "hyderabad": "Asia/Kolkata", "calcutta": "Asia/Kolkata",
    "osaka": "Asia/Tokyo", "kyoto": "Asia/Tokyo", "saigon": "Asia/Ho_Chi_Minh",
    "ho chi minh city": "Asia/Ho_Chi_Minh", "hanoi": "Asia/Ho_Chi_Minh", "kiev": "Europe/Kyiv",
    "munich": "Europe/Berlin", "frankfurt": "Europe/Berlin", "hamburg": "Europe/Berlin",
    "milan": "Europe/Rome", "barcelona": "Europe/Madrid", "geneva": "Europe/Zurich",
    "edinburgh": "Europe/London", "manchester": "Europe/London", "st petersburg": "Europe/Moscow",
    "rio": "America/Sao_Paulo", "rio de janeiro": "America/Sao_Paulo",
    "tel aviv": "Asia/Jerusalem", "abu dhabi": "Asia/Dubai", "canberra": "Australia/Sydney",
    "wellington": "Pacific/Auckland",
}  # fmt: skip
# A country with several zones gets its first in the tz database's zone.tab (which puts
# the most populous first where geography allows), except where that is not where most
# people live: these.
_COUNTRY_ZONE = {"AU": "Australia/Sydney", "BR": "America/Sao_Paulo", "CA": "America/Toronto",
                 "RU": "Europe/Moscow", "UA": "Europe/Kyiv", "UZ": "Asia/Tashkent",
                 "ES": "Europe/Madrid", "US": "America/New_York"}  # fmt: skip
_COUNTRY_ALIASES = {
    "uk": "GB", "u.k.": "GB", "united kingdom": "GB", "great britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB", "us": "US", "u.s.": "US",
    "usa": "US", "u.s.a.": "US", "america": "US", "united states of america": "US",
    "uae": "AE", "emirates": "AE", "korea": "KR", "south korea": "KR", "north korea": "KP",
    "holland": "NL", "the netherlands": "NL", "czech republic": "CZ", "burma": "MM",
    "ivory coast": "CI", "russian federation": "RU", "dr congo": "CD", "drc": "CD",
    "swaziland": "SZ", "vatican": "VA", "turkiye": "TR",
}  # fmt: skip


@dataclass(frozen=True)
class _TimezoneNames:
    iana: dict[str, str]  # lowercased IANA name -> IANA name
    places: dict[str, str]  # normalised abbreviation, city or country -> IANA name


def _place_key(text: str) -> str:
    """ "São_Paulo " -> "sao paulo": no accents, underscores or case; single spaces."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    text = text.encode("ascii", "ignore").decode()
    text = " ".join(text.replace("_", " ").replace("-", " ").lower().split())
    return text.removeprefix("the ")


@functools.cache
def _timezone_names() -> _TimezoneNames:
    available = zoneinfo.available_timezones()
    iana = {name.lower(): name for name in available}
    places: dict[str, str] = {}
    # Lowest priority first: later tables overwrite earlier ones.
    for name in sorted(pytz.common_timezones, key=lambda n: (n.count("/"), n)):
        if name in available and name.split("/", 1)[0] in _CONTINENTS:
            places.setdefault(_place_key(name.rsplit("/", 1)[1]), name)
    for code, country in pytz.country_names.items():
        zones = [z for z in pytz.country_timezones.get(code, ()) if z in available]
        zone = _COUNTRY_ZONE.get(code.upper()) or (zones[0] if zones else None)
        if zone is None:
            continue
        places[_place_key(country)] = zone  # "Britain (UK)"
        plain = re.sub(r"\s*\(.*?\)", "", country)
        places.setdefault(_place_key(plain), zone)  # "Britain"
        if match := re.search(r"\((.*?)\)", country):  # "Korea (South)" -> "South Korea"
            places.setdefault(_place_key(f"{match[1]} {plain}"), zone)
        places.setdefault(_place_key(country.replace("&", "and")), zone)
        places.setdefault(_place_key(country.replace("St ", "Saint ")), zone)
    for alias, code in _COUNTRY_ALIASES.items():
        zones = pytz.country_timezones.get(code, ())
        if zone := _COUNTRY_ZONE.get(code) or (zones[0] if zones else None):
            places[_place_key(alias)] = zone
    places.update({_place_key(k): v for k, v in (_CITIES | _ABBREVIATIONS).items()})
    return _TimezoneNames(iana, {k: v for k, v in places.items() if v in available})


def default_timezone(config: RunnableConfig | None = None) -> str:
    """The user's timezone (an IANA name) from the run's config, else ``TIME_ZONE``."""
    configured = ((config or {}).get("configurable") or {}).get("timezone")
    if zone := resolve_timezone(configured):
        return zone.key  # "Tokyo" -> "Asia/Tokyo": what the model and dateparser are given
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
