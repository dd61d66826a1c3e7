"""Small helpers for LangChain messages, shared by the graph, the offline model, the
history API and the admin, and the conversation's ``messages`` channel (a LangGraph
``DeltaChannel``: each checkpoint stores what changed, not the whole list again)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, RemoveMessage, ToolMessage
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.graph.message import add_messages


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


# --- the conversation's channel: only what changed is stored per checkpoint ---------------

MESSAGES = "messages"
_ID_NAMESPACE = uuid.UUID("5b0f9a3e-4c1d-4a8e-9f57-0d6a2b1c7e10")


def _with_id(message: Any) -> Any:
    """``message`` with an id that a replay of the stored writes derives again
    (``add_messages`` would draw a random one): a tool result's comes from its call,
    anything else's from its content."""
    if not isinstance(message, BaseMessage) or message.id:
        return message
    if isinstance(message, ToolMessage) and message.tool_call_id:
        return message.model_copy(update={"id": f"tool-{message.tool_call_id}"})
    seed = f"{message.type}\0{message.content!r}"
    return message.model_copy(update={"id": str(uuid.uuid5(_ID_NAMESPACE, seed))})


def fold_messages(state: list, writes: Sequence[Any]) -> list:
    """``add_messages`` over a batch of writes, with ids a replay derives again: the
    deterministic, batching-invariant reducer LangGraph's ``DeltaChannel`` requires
    (``fold(fold(s, xs), ys) == fold(s, xs + ys)``). Writes without removals merge in
    one ``add_messages`` call (so replaying a long conversation is linear); a write that
    removes messages is applied on its own, in order."""
    value = list(state or [])
    run: list[Any] = []
    for write in writes:
        batch = [_with_id(m) for m in (write if isinstance(write, list) else [write])]
        if any(isinstance(m, RemoveMessage) for m in batch):
            if run:
                value, run = add_messages(value, run), []
            value = add_messages(value, batch)
        else:
            run += batch
    return add_messages(value, run) if run else value


SNAPSHOT_EVERY = 1_000  # updates (about 2-4 a turn): the whole list is stored that often


def messages_channel() -> DeltaChannel:
    """The conversation's ``messages`` channel: a checkpoint stores the messages a step
    added (its writes) and, every ``SNAPSHOT_EVERY`` updates, the whole list; a read
    replays the writes since the last snapshot, fetched in one script call by our saver
    and folded in one pass, so snapshots can be rare and storage stays linear."""
    return DeltaChannel(fold_messages, list, snapshot_frequency=SNAPSHOT_EVERY)


def stored_messages(found: CheckpointTuple | None, history: Any = None) -> list[BaseMessage]:
    """The messages of a checkpoint tuple: its stored list (a conversation written before
    the delta channel, or a snapshot) or, with ``history`` (the saver's
    ``get_delta_channel_history`` answer for ``messages``), its seed plus the writes."""
    if found is None:
        return []
    stored = found.checkpoint.get("channel_values", {}).get(MESSAGES)
    if stored is not None:
        channel = messages_channel().from_checkpoint(stored)
    else:
        entry = (history or {}).get(MESSAGES) or {}
        channel = messages_channel().from_checkpoint(entry.get("seed"))
        channel.replay_writes(entry.get("writes", []))
    value = channel.value if isinstance(channel.value, list) else []
    return [m for m in value if isinstance(m, BaseMessage)]


def needs_history(found: CheckpointTuple | None) -> bool:
    """Whether the tuple's messages must be rebuilt from the delta history."""
    if found is None:
        return False
    return found.checkpoint.get("channel_values", {}).get(MESSAGES) is None
