"""Small helpers for LangChain messages, shared by the graph, the offline model, the
history API and the admin."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage


def message_text(content: Any) -> str:
    """The text of a message (or of its ``content``: a string, or a list of content blocks)."""
    if isinstance(content, BaseMessage):
        content = content.content
    if isinstance(content, str):
        return content
    parts = []
    for part in content or ():
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "".join(parts)


def tool_data(message: BaseMessage) -> dict[str, Any] | None:
    """The structured part of a tool result (its ``artifact``) that the UI renders, or None."""
    artifact = getattr(message, "artifact", None)
    return artifact if isinstance(artifact, dict) and "kind" in artifact else None
