"""A thread's conversation as the UI and the API show it, read from its latest checkpoint.

Messages come out as plain dicts, oldest first: ``{"role": "user"|"assistant",
"content"}`` (``"stopped": true`` on a reply the user stopped; steps that only call
tools are left out) and ``{"role": "tool", "name", "content", "data"?, "html"?}``
(``data``: a Workspace tool's structured result, ``html``: it rendered by
:func:`chat.render.render_tool`). The checkpointer is read directly (one round trip),
without compiling the graph, so the history works whatever model is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_async_client
from chat import events, pending, threads
from chat.graph import get_checkpointer, get_reader_graph, run_config, waiting_approvals
from chat.messages import MESSAGES, message_text, needs_history, stored_messages, tool_data
from chat.render import render_approval, render_tool

# What a thread is doing, for the thread list, the API and the admin.
IDLE, RUNNING, AWAITING_APPROVAL, ERROR = "idle", "running", "awaiting_approval", "error"


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
    """The LangChain messages of the thread's latest checkpoint (``[]`` for a new thread):
    one round trip, and a second (one script call) to replay the steps since the last
    snapshot of a conversation stored as deltas."""
    saver = await get_checkpointer()
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    found = await saver.aget_tuple(config)
    history = None
    if needs_history(found):
        config = found.config
        history = await saver.aget_delta_channel_history(config=config, channels=[MESSAGES])
    return stored_messages(found, history)


async def get_history(thread_id: str) -> list[dict[str, Any]]:
    """The conversation so far, oldest first (see the module docstring for the shape)."""
    return [item for m in await get_messages(thread_id) if (item := as_dict(m)) is not None]


async def thread_title(thread_id: str) -> str:
    """The first user message, shortened: what the thread list shows ("" when empty)."""
    for message in await get_messages(thread_id):
        if isinstance(message, HumanMessage):
            return threads.shorten_title(message_text(message))
    return ""


async def get_approvals(thread_id: str) -> list[dict[str, Any]]:
    """The thread's actions waiting for the user: ``{"interrupt_id", "card", "html",
    "decided"}`` each (the card is the interrupt's payload, see :mod:`workspace.actions`;
    ``decided``: the user's decision is queued and about to run)."""
    waiting = await waiting_approvals(await get_reader_graph(), run_config(thread_id))
    if not waiting:
        return []
    queued = await pending.aqueued_decisions(thread_id)
    return [
        {
            "interrupt_id": i.id,
            "card": i.value,
            "decided": queued.get(i.id),
            "html": render_approval(thread_id, i.id, i.value),
        }
        for i in waiting
    ]


async def thread_status(thread_id: str, approvals: list[dict[str, Any]] | None = None) -> str:
    """``running`` (a message or decision is queued or running), ``awaiting_approval``,
    ``error`` (the last run failed) or ``idle``; one round trip besides the checkpoint."""
    async with get_async_client().pipeline(transaction=False) as pipe:
        pipe.llen(keys.pending_message_key(thread_id))
        pipe.xrevrange(keys.thread_events_key(thread_id), count=1)
        queued, last = await pipe.execute()
    if not queued and approvals is None:
        approvals = await get_approvals(thread_id)
    return status_from(queued, last, approvals or [])


def status_from(queued: int, last: list, approvals: Sequence[object]) -> str:
    """The status from the queue's length, the stream's last entry (``XREVRANGE COUNT
    1``) and the waiting approvals: the rule the admin's sync reader shares."""
    if queued:
        return RUNNING
    if approvals:
        return AWAITING_APPROVAL
    if last and events.entry_type(last[0][1]) == "error":
        return ERROR
    return IDLE


async def thread_summary(thread_id: str) -> dict[str, Any]:
    """``{"id", "title", "status"}``: one line of the thread list."""
    title = await thread_title(thread_id)
    return {"id": thread_id, "title": title, "status": await thread_status(thread_id)}
