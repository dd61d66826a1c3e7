"""Tools the assistant can call.

Tools are ordinary LangChain tools, so any chat model that supports tool calling
(the offline demo model included) can use them through LangGraph's ``ToolNode``.

The user's timezone reaches the tool through the run's config
(``configurable.timezone``, set by the runner from what the browser reported) so a
model does not have to guess it; an explicit ``timezone`` argument wins.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool


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


@tool
def current_datetime(timezone: str = "", *, config: RunnableConfig) -> str:
    """Get the current date and time.

    Args:
        timezone: An IANA timezone name such as "Europe/Paris". Leave empty to use
            the user's own timezone.
    """
    name = timezone.strip() or default_timezone(config)
    zone = resolve_timezone(name)
    if zone is None:
        return (
            f"Unknown timezone {name!r}: use an IANA name such as Europe/Paris or America/New_York."
        )
    return format_now(zone)


TOOLS = [current_datetime]
