"""``CHECKPOINT_KEEP_LATEST``: how many checkpoints each conversation keeps.

Every step of every turn leaves a checkpoint (the time-travel history), so a long chat
grows without bound even though only the newest one is needed to go on. With the
setting, the web path trims a thread to its newest N checkpoints at the end of each
turn (:func:`atrim_after_turn`, under the run lock, just before ``done`` goes out), and
``manage.py prune_checkpoints`` trims every thread to N. Unset (the default), nothing is
trimmed and a turn costs no extra round trip. Trimming is safe with the conversation's
``DeltaChannel``: the oldest kept checkpoint gets the whole message list (see
``RedisCheckpointer.trim``), so every kept checkpoint reads back, forks and
time-travels as before; only the older ones are gone.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from langgraph.channels import DeltaChannel

from chat.checkpoint import AsyncRedisCheckpointer, RedisCheckpointer
from chat.messages import MESSAGES, messages_channel

logger = logging.getLogger("chat.retention")


def keep_latest() -> int | None:
    """The setting: a whole number >= 1, or None (keep every checkpoint)."""
    value = getattr(settings, "CHECKPOINT_KEEP_LATEST", None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"CHECKPOINT_KEEP_LATEST must be a whole number >= 1 (or unset), got {value!r}."
        )
    return value


def conversation_channels() -> dict[str, DeltaChannel]:
    """The delta channels of the product graph (what a trim must store whole)."""
    return {MESSAGES: messages_channel()}


def delta_channels(graph: Any) -> dict[str, DeltaChannel]:
    """The delta channels of a compiled graph (the product graph's when it has none
    to tell, e.g. a stand-in)."""
    channels = getattr(graph, "channels", None) or {}
    found = {k: v for k, v in channels.items() if isinstance(v, DeltaChannel)}
    return found or conversation_channels()


def trim(saver: RedisCheckpointer, thread_id: str, keep: int) -> int:
    """Trim one thread to its newest ``keep`` checkpoints; returns how many went."""
    return saver.trim(thread_id, keep, channels=conversation_channels())


async def atrim_after_turn(graph: Any, thread_id: str) -> None:
    """End of a turn: trim ``thread_id`` to the setting. Does nothing (no I/O) when the
    setting is unset or the graph's saver is not ours (``CHECKPOINTER=official``, the
    CLI's in-memory fallback); a failure is logged, never raised, so a turn never fails
    because of its clean-up (the runner trims just before it sends ``done``, under the
    run lock)."""
    try:
        keep = keep_latest()
        saver = getattr(graph, "checkpointer", None)
        if keep is None or not isinstance(saver, AsyncRedisCheckpointer):
            return
        removed = await saver.atrim(thread_id, keep, channels=delta_channels(graph))
        if removed:
            logger.debug("Trimmed thread %s: %d old checkpoint(s) removed", thread_id, removed)
    except Exception:
        logger.warning(
            "Could not trim thread %s to CHECKPOINT_KEEP_LATEST; it is tried again "
            "after its next turn",
            thread_id,
            exc_info=True,
        )
