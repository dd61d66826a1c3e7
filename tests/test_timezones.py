"""Timezones by the names people use: cities, countries, abbreviations and IANA names,
resolved by ``workspace.dates.resolve_timezone`` for the clock tool, the Workspace tools
and the offline model ("What time is it in Tokyo?")."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from chat.offline_model import plan_reply
from chat.tools import current_datetime
from workspace.dates import default_timezone, resolve_timezone


@pytest.mark.parametrize(
    ("name", "zone"),
    [
        # IANA names, any case
        ("Europe/Paris", "Europe/Paris"),
        ("asia/tokyo", "Asia/Tokyo"),
        ("AMERICA/ARGENTINA/BUENOS_AIRES", "America/Argentina/Buenos_Aires"),
        # cities: the last part of an IANA name, spaces for underscores, accents optional
        ("Tokyo", "Asia/Tokyo"),
        ("tokyo", "Asia/Tokyo"),
        ("New York", "America/New_York"),
        ("new_york", "America/New_York"),
        ("  los angeles ", "America/Los_Angeles"),
        ("São Paulo", "America/Sao_Paulo"),
        ("Sao Paulo", "America/Sao_Paulo"),
        ("Buenos Aires", "America/Argentina/Buenos_Aires"),
        ("Port-au-Prince", "America/Port-au-Prince"),
        # big cities that are not a zone's name
        ("San Francisco", "America/Los_Angeles"),
        ("Mumbai", "Asia/Kolkata"),
        ("Beijing", "Asia/Shanghai"),
        ("Tokyo, Japan", "Asia/Tokyo"),
        # countries (several zones: the most populous)
        ("India", "Asia/Kolkata"),
        ("UK", "Europe/London"),
        ("the UK", "Europe/London"),
        ("United Kingdom", "Europe/London"),
        ("Germany", "Europe/Berlin"),
        ("japan", "Asia/Tokyo"),
        ("United States", "America/New_York"),
        ("USA", "America/New_York"),
        ("Australia", "Australia/Sydney"),
        ("Canada", "America/Toronto"),
        ("Brazil", "America/Sao_Paulo"),
        ("Russia", "Europe/Moscow"),
        ("China", "Asia/Shanghai"),
        ("South Korea", "Asia/Seoul"),
        ("Côte d'Ivoire", "Africa/Abidjan"),
        ("Bosnia and Herzegovina", "Europe/Sarajevo"),
        # abbreviations: the region's zone (DST-aware)
        ("UTC", "UTC"),
        ("utc", "UTC"),
        ("GMT", "Etc/GMT"),
        ("CET", "Europe/Berlin"),
        ("EST", "America/New_York"),
        ("edt", "America/New_York"),
        ("PST", "America/Los_Angeles"),
        ("JST", "Asia/Tokyo"),
        ("IST", "Asia/Kolkata"),
        ("AEST", "Australia/Sydney"),
        # fixed offsets, whole hours (POSIX signs in the Etc names)
        ("UTC+2", "Etc/GMT-2"),
        ("utc-5", "Etc/GMT+5"),
        ("GMT+0", "UTC"),
    ],
)
def test_resolve_timezone(name: str, zone: str) -> None:
    resolved = resolve_timezone(name)
    assert resolved is not None, name
    assert resolved.key == zone


@pytest.mark.parametrize(
    "name", [None, "", "   ", "Mars/Base", "Atlantis", "nowhere at all", "UTC+27", "x" * 500]
)
def test_unknown_names_are_none(name) -> None:
    assert resolve_timezone(name) is None


def test_a_place_in_the_runs_config_becomes_its_iana_name() -> None:
    assert default_timezone({"configurable": {"timezone": "Tokyo"}}) == "Asia/Tokyo"
    assert default_timezone({"configurable": {"timezone": "Europe/Paris"}}) == "Europe/Paris"


@pytest.mark.parametrize(
    ("name", "zone"),
    [("Tokyo", "Asia/Tokyo"), ("India", "Asia/Kolkata"), ("UK", "Europe/London"),
     ("pst", "America/Los_Angeles"), ("New York", "America/New_York")],
)  # fmt: skip
def test_current_datetime_says_which_zone_it_used(name: str, zone: str) -> None:
    answer = current_datetime.invoke({"timezone": name}, {"configurable": {}})
    assert f"({zone}, UTC" in answer


def test_current_datetime_names_what_it_accepts_when_it_cannot_resolve() -> None:
    answer = current_datetime.invoke({"timezone": "Atlantis"}, {"configurable": {}})
    assert "Unknown timezone 'Atlantis'" in answer
    assert "city" in answer and "country" in answer


@pytest.mark.parametrize(
    ("question", "timezone"),
    [
        ("What time is it in Tokyo?", "Tokyo"),
        ("what time is it in new york right now?", "new york"),
        ("What time is it in the UK?", "UK"),
        ("What's the date in India today?", "India"),
        ("What time is it in São Paulo?", "São Paulo"),
        ("what time is it in PST?", "PST"),
        ("what time is it in Asia/Tokyo?", "Asia/Tokyo"),
        ("what time is it UTC", "UTC"),
        ("what time is it?", ""),
        ("what time is it for me?", ""),
    ],
)
def test_the_offline_model_passes_the_place_from_the_question(question, timezone) -> None:
    [call] = plan_reply([HumanMessage(question)], ["current_datetime"]).tool_calls
    assert call["name"] == "current_datetime"
    assert call["args"] == {"timezone": timezone}


def test_the_latest_place_named_wins() -> None:
    said = [
        HumanMessage("What time is it in Tokyo?"),
        HumanMessage("And what time is it in Germany?"),
    ]
    [call] = plan_reply(said, ["current_datetime"]).tool_calls
    assert call["args"] == {"timezone": "Germany"}
