"""Tools the assistant can call.

Tools are ordinary LangChain tools, so any chat model that supports tool calling
(the offline demo model included) can use them through LangGraph's ``ToolNode``.

The user's timezone reaches the tool through the run's config
(``configurable.timezone``, set by the runner from what the browser reported) so a
model does not have to guess it; an explicit ``timezone`` argument wins.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

from workspace.dates import default_timezone, format_now, resolve_timezone


@tool
def current_datetime(timezone: str = "", *, config: RunnableConfig) -> str:
    """Get the current date and time, here or anywhere.

    Args:
        timezone: Where: a city ("Tokyo", "New York"), a country ("India", "UK"), an
            abbreviation ("PST", "CET", "UTC") or an IANA name ("Europe/Paris"). Leave
            empty to use the user's own timezone.
    """
    name = timezone.strip() or default_timezone(config)
    zone = resolve_timezone(name)
    if zone is None:
        return (
            f"Unknown timezone {name!r}: give a city (Tokyo), a country (India), an "
            "abbreviation (PST) or an IANA name such as Europe/Paris or America/New_York."
        )
    return format_now(zone)  # "... 14:03 (Asia/Tokyo, UTC+09:00)": the zone it used


TOOLS = [current_datetime]
