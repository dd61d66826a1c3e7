"""A thread's conversation as the UI and the API show it, read from its latest checkpoint.

Messages come out as plain dicts, oldest first: ``{"role": "user"|"assistant",
"content"}`` (``"stopped": true`` on a reply the user stopped; steps that only call
tools are left out) and ``{"role": "tool", "name", "content", "data"?, "html"?}``
(``data``: a Workspace tool's structured result, ``html``: it rendered by
:func:`chat.render.render_tool`). The checkpointer is read directly (one round trip),
without compiling the graph, so the history works whatever model is configured.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from chat import threads
from chat.graph import get_checkpointer
from chat.messages import message_text, tool_data
from chat.render import render_tool


def as_dict(message: BaseMessage) -> dict[str, Any] | None:
    """One message for the UI, or None for messages the UI does not show."""
    text = message_text(message)
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": text}
    if isinstance(message, AIMessage):
        if not text:
            return None  # a step that only called tools
        item: dict[str, Any] = {"role": "assistant", "content": text}
        if message.response_metadata.get("stopped"):
            item["stopped"] = True
        return item
    if isinstance(message, ToolMessage):
        item = {"role": "tool", "name": message.name or "tool", "content": text}
        if (data := tool_data(message)) is not None:
            item["data"] = data
            item["html"] = render_tool(data)
        return item
    return None


async def get_messages(thread_id: str) -> list[BaseMessage]:
    """The LangChain messages of the thread's latest checkpoint (``[]`` for a new thread)."""
    saver = await get_checkpointer()
    found = await saver.aget_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    if found is None:
        return []
    return list(found.checkpoint.get("channel_values", {}).get("messages", []))


async def get_history(thread_id: str) -> list[dict[str, Any]]:
    """The conversation so far, oldest first (see the module docstring for the shape)."""
    return [item for m in await get_messages(thread_id) if (item := as_dict(m)) is not None]


async def thread_title(thread_id: str) -> str:
    """The first user message, shortened: what the thread list shows ("" when empty)."""
    for message in await get_messages(thread_id):
        if isinstance(message, HumanMessage):
            return threads.shorten_title(message_text(message))
    return ""
