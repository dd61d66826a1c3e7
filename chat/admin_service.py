"""What an operator can see and do with conversations (LangGraph checkpoints, Redis db 1).

Shared by the admin pages (:mod:`chat.admin_views`) and ``manage.py prune_checkpoints``:
:func:`list_conversations`, :func:`search_conversations`, :func:`conversation_detail`,
:func:`fork`, :func:`delete_conversation`, :func:`prune`. Everything goes through the
checkpointer's public API and :mod:`chat.threads`; nothing here knows the key layout.
Key guarantee: delete (unless ``force``) and prune refuse a thread whose reply is being
generated, and a fork leaves the original untouched. See the README's "Operating: the
admin and maintenance commands" section.

Approvals are shown, never decided: a thread's status (as :func:`chat.history.thread_status`
computes it), the actions waiting for the owner (the interrupts of its latest state, as
:func:`chat.history.get_approvals` reads them) and the audit trail of executed actions
(:func:`workspace.actions.audit_trail`) are read here with the sync clients; nothing in
this module queues a decision. Only the thread's owner approves, in their chat.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.graph.state import CompiledStateGraph

from agenticpal import redis_keys as keys
from agenticpal.redis_admin import parse_time
from agenticpal.redis_clients import get_client, mget
from chat import pending, retention, threads
from chat.checkpoint import RedisCheckpointer, checkpoint_ttl, sync_checkpointer
from chat.graph import build_graph, run_config
from chat.history import AWAITING_APPROVAL, ERROR, IDLE, RUNNING, status_from
from chat.messages import MESSAGES, message_text, needs_history, stored_messages
from chat.offline_model import OfflineChatModel
from sessions_redis import store
from workspace.actions import SPECS

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
TEXT_PREVIEW = 300


class ConversationNotFound(LookupError):
    """No thread (or no such checkpoint in it) in the checkpointer."""


class CannotFork(ValueError):
    """The checkpoint is not a point a conversation can continue from."""


def saver(client: redis.Redis | None = None) -> RedisCheckpointer:
    """The project's checkpointer on db 1 (sync: admin and commands)."""
    return RedisCheckpointer(client, ttl=checkpoint_ttl()) if client else sync_checkpointer()


def _config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def _messages(
    tup: CheckpointTuple | None, cp: RedisCheckpointer | None = None
) -> list[BaseMessage]:
    """The messages at ``tup``: stored, or replayed from the delta history (``cp``)."""
    history = None
    if needs_history(tup) and cp is not None:
        history = cp.get_delta_channel_history(config=tup.config, channels=[MESSAGES])
    return stored_messages(tup, history)


def _owners(thread_ids: Sequence[str], sessions: redis.Redis) -> list[str | None]:
    if not thread_ids:
        return []
    values = mget(sessions, [keys.thread_owner_key(t) for t in thread_ids])
    return [v.decode() if v is not None else None for v in values]


def format_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} B"


# --- the list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationRow:
    thread_id: str
    owner: str | None
    title: str
    turns: int  # user messages in the latest state
    checkpoints: int
    last_activity: datetime | None
    size_bytes: int
    status: str = IDLE  # chat.history's: idle, running, awaiting_approval, error

    @property
    def size_text(self) -> str:
        return format_bytes(self.size_bytes)

    @property
    def status_text(self) -> str:
        return STATUS_TEXT.get(self.status, self.status)


STATUS_TEXT = {
    IDLE: "idle",
    RUNNING: "running",
    AWAITING_APPROVAL: "awaiting approval",
    ERROR: "error",
}


# --- approvals: read only ---------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalView:
    """An action waiting for the owner's decision (the card they see, without buttons)."""

    interrupt_id: str
    action: str
    title: str
    summary: str
    details: list[tuple[str, str]]
    error: str = ""


@dataclass(frozen=True)
class AuditView:
    """An executed action: what was done, who approved it and when, what Google said."""

    action: str
    title: str
    summary: str
    result: str
    link: str | None
    decision: str  # "approve", "edit" (approved as edited)
    approved_by: str  # "" for an action the policy runs without asking (a draft)
    approved_at: datetime | None
    done_at: datetime | None

    @property
    def decision_text(self) -> str:
        if not self.approved_by:
            return "no approval needed"
        return "approved as edited" if self.decision == "edit" else "approved"


def reader_graph(cp: RedisCheckpointer) -> CompiledStateGraph:
    """A graph to read threads' states with (the offline model stands in, never called)."""
    return build_graph(OfflineChatModel(word_delay=0), checkpointer=cp)


def waiting_approvals(graph: CompiledStateGraph, thread_id: str) -> list[ApprovalView]:
    """The thread's actions waiting for the owner (``chat.history.get_approvals``, sync)."""
    found = []
    for waiting in graph.get_state(run_config(thread_id)).interrupts:
        card = waiting.value if isinstance(waiting.value, dict) else {}
        action = str(card.get("action", ""))
        spec = SPECS.get(action)
        details = [
            (str(row[0]), str(row[1]))
            for row in card.get("details") or []
            if isinstance(row, (list, tuple)) and len(row) >= 2
        ]
        found.append(
            ApprovalView(
                interrupt_id=waiting.id,
                action=action,
                title=str(card.get("title") or (spec.title if spec else action)),
                summary=str(card.get("summary", "")),
                details=details,
                error=str(card.get("error") or ""),
            )
        )
    return found


def thread_status(sessions: redis.Redis, thread_id: str, approvals: Sequence[object]) -> str:
    """:func:`chat.history.thread_status` with the sync client (same rules, same answers)."""
    with sessions.pipeline(transaction=False) as pipe:
        pipe.llen(keys.pending_message_key(thread_id))
        pipe.xrevrange(keys.thread_events_key(thread_id), count=1)
        queued, last = pipe.execute()
    return status_from(queued, last, approvals)


def _web_link(value: object) -> str | None:
    text = str(value or "")
    return text if text.startswith(("https://", "http://")) else None


def audit_trail(sessions: redis.Redis, thread_id: str) -> list[AuditView]:
    """The thread's executed actions, newest first (``workspace.actions.audit_trail``)."""
    trail = []
    for raw in sessions.lrange(keys.action_log_key(thread_id), 0, -1):
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        action = str(item.get("action", ""))
        spec = SPECS.get(action)
        trail.append(
            AuditView(
                action=action,
                title=spec.title if spec else action,
                summary=str(item.get("summary", "")),
                result=str(item.get("result", "")),
                link=_web_link(item.get("link")),
                decision=str(item.get("decision", "")),
                approved_by=str(item.get("approved_by", "")),
                approved_at=parse_time(item.get("approved_at")),
                done_at=parse_time(item.get("done_at")),
            )
        )
    return trail


def _rows(
    cp: RedisCheckpointer, sessions: redis.Redis, ids: Sequence[str]
) -> list[ConversationRow]:
    rows = []
    graph = reader_graph(cp) if ids else None
    for thread_id, owner in zip(ids, _owners(ids, sessions), strict=True):
        stats = cp.thread_stats(thread_id)
        messages = _messages(cp.get_tuple(_config(thread_id)), cp)
        human = [m for m in messages if isinstance(m, HumanMessage)]
        title = " ".join(message_text(human[0]).split()) if human else ""
        rows.append(
            ConversationRow(
                thread_id=thread_id,
                owner=owner,
                title=threads.shorten_title(title),
                turns=len(human),
                checkpoints=stats.checkpoints,
                last_activity=stats.last_activity,
                size_bytes=stats.bytes,
                status=thread_status(sessions, thread_id, waiting_approvals(graph, thread_id)),
            )
        )
    return rows


@dataclass(frozen=True)
class ConversationPage:
    rows: list[ConversationRow]
    offset: int
    total: int
    page_size: int

    @property
    def next_offset(self) -> int | None:
        after = self.offset + self.page_size
        return after if after < self.total else None

    @property
    def prev_offset(self) -> int | None:
        return max(0, self.offset - self.page_size) if self.offset else None


def list_conversations(
    offset: int = 0,
    page_size: int = DEFAULT_PAGE_SIZE,
    *,
    checkpoints: redis.Redis | None = None,
    sessions: redis.Redis | None = None,
) -> ConversationPage:
    """One page of threads, most recently active first (from the thread index)."""
    cp = saver(checkpoints)
    page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
    offset = max(0, int(offset))
    infos = cp.list_threads(offset=offset, limit=page_size)
    rows = _rows(cp, sessions or get_client("sessions"), [i.thread_id for i in infos])
    return ConversationPage(rows, offset, cp.count_threads(), page_size)


def search_conversations(
    query: str,
    *,
    checkpoints: redis.Redis | None = None,
    sessions: redis.Redis | None = None,
) -> list[ConversationRow]:
    """A user's threads (a query with ``@``, through ``user_threads:``) or one thread id."""
    query = query.strip()
    if not query:
        return []
    sessions = sessions or get_client("sessions")
    cp = saver(checkpoints)
    if "@" in query:
        ids = list(
            dict.fromkeys(
                threads.threads_for(query, client=sessions)
                + threads.threads_for(query.lower(), client=sessions)
            )
        )
    else:
        ids = [query]
    known = [t for t in ids if cp.thread_stats(t).checkpoints]
    return _rows(cp, sessions, known)


# --- one thread: its history -------------------------------------------------------------


@dataclass(frozen=True)
class MessageView:
    role: str
    text: str
    detail: str = ""  # tool calls, tool name...

    @property
    def preview(self) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= TEXT_PREVIEW else flat[: TEXT_PREVIEW - 1] + "…"


def message_view(message: BaseMessage) -> MessageView:
    detail = ""
    if isinstance(message, AIMessage) and message.tool_calls:
        detail = "calls " + ", ".join(
            f"{c['name']}({c.get('args') or ''})" for c in message.tool_calls
        )
    elif isinstance(message, ToolMessage):
        detail = f"result of {message.name or message.tool_call_id}"
    role = {"human": "user", "ai": "assistant"}.get(message.type, message.type)
    return MessageView(role, message_text(message), detail)


@dataclass(frozen=True)
class WriteView:
    task: str
    channel: str
    summary: str


def _summary(value: Any) -> str:
    if isinstance(value, BaseMessage):
        view = message_view(value)
        return f"{view.role}: {view.preview or view.detail}"
    if isinstance(value, list):
        return "; ".join(_summary(v) for v in value) or "[]"
    text = repr(value)
    return text if len(text) <= 120 else text[:119] + "…"


@dataclass(frozen=True)
class CheckpointView:
    checkpoint_id: str
    parent_id: str | None
    step: int | None
    source: str
    created_at: datetime | None
    messages: list[MessageView]
    # What the step that made this checkpoint wrote (the parent's pending writes; for an
    # "input" checkpoint, the input itself). Filled in by conversation_detail().
    writes: list[WriteView] = field(default_factory=list)
    fork_problem: str = ""  # why one cannot fork here ("" = one can)
    own_writes: list[WriteView] = field(default_factory=list)  # of the tasks run from here

    @property
    def can_fork(self) -> bool:
        return not self.fork_problem

    @property
    def short_id(self) -> str:
        return self.checkpoint_id[-12:]


def _fork_problem(messages: list[BaseMessage]) -> str:
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and last.tool_calls:
        return "mid-turn: the assistant's tool call has no result yet"
    return ""


def _created(tup: CheckpointTuple) -> datetime | None:
    raw = tup.checkpoint.get("ts")
    try:
        return datetime.fromisoformat(raw).astimezone(UTC) if raw else None
    except ValueError:
        return None


def checkpoint_view(tup: CheckpointTuple, cp: RedisCheckpointer | None = None) -> CheckpointView:
    parent = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    messages = _messages(tup, cp)
    return CheckpointView(
        checkpoint_id=tup.config["configurable"]["checkpoint_id"],
        parent_id=parent,
        step=tup.metadata.get("step"),
        source=str(tup.metadata.get("source", "")),
        created_at=_created(tup),
        messages=[message_view(m) for m in messages],
        writes=_input_writes(tup),
        fork_problem=_fork_problem(messages),
        own_writes=[
            WriteView(task_id[-8:], channel, _summary(value))
            for task_id, channel, value in tup.pending_writes or []
            if not channel.startswith("branch:")
        ],
    )


def _input_writes(tup: CheckpointTuple) -> list[WriteView]:
    """The input an "input" checkpoint records (LangGraph keeps it in ``__start__``)."""
    if tup.metadata.get("source") != "input":
        return []
    start = tup.checkpoint.get("channel_values", {}).get("__start__")
    if isinstance(start, dict):
        return [WriteView("input", str(k), _summary(v)) for k, v in start.items()]
    return [WriteView("input", "__start__", _summary(start))] if start is not None else []


@dataclass(frozen=True)
class ConversationDetail:
    row: ConversationRow
    history: list[CheckpointView]  # newest first
    ttl_seconds: int | None
    runs: int
    busy: bool
    approvals: list[ApprovalView] = field(default_factory=list)  # waiting for the owner
    audit: list[AuditView] = field(default_factory=list)  # executed actions, newest first


def conversation_detail(
    thread_id: str,
    *,
    limit: int | None = 200,
    checkpoints: redis.Redis | None = None,
    sessions: redis.Redis | None = None,
) -> ConversationDetail:
    """A thread's checkpoint history, newest first; raises ConversationNotFound."""
    sessions = sessions or get_client("sessions")
    cp = saver(checkpoints)
    views = [
        checkpoint_view(t, cp)
        for t in cp.list(_config(thread_id), limit=limit)
        if not t.config["configurable"].get("checkpoint_ns")
    ]
    own = {v.checkpoint_id: v.own_writes for v in views}
    history = [
        v if v.writes or v.parent_id not in own else replace(v, writes=own[v.parent_id])
        for v in views
    ]
    if not history:
        raise ConversationNotFound(f"Thread {thread_id!r} has no checkpoints (or was deleted).")
    row = _rows(cp, sessions, [thread_id])[0]
    stats = cp.thread_stats(thread_id)
    return ConversationDetail(
        row,
        history,
        stats.ttl_seconds,
        stats.runs,
        pending.is_busy(thread_id, client=sessions),
        approvals=waiting_approvals(reader_graph(cp), thread_id),
        audit=audit_trail(sessions, thread_id),
    )


# --- fork and delete -------------------------------------------------------------------------


def lineage(cp: BaseCheckpointSaver, thread_id: str, checkpoint_id: str) -> list[CheckpointTuple]:
    """The checkpoint and its ancestors, oldest first; raises ConversationNotFound."""
    chain: list[CheckpointTuple] = []
    wanted: str | None = checkpoint_id
    while wanted:
        tup = cp.get_tuple(_config(thread_id, wanted))
        if tup is None:
            if not chain:
                raise ConversationNotFound(
                    f"Thread {thread_id!r} has no checkpoint {checkpoint_id!r}."
                )
            break  # older history was pruned: the fork starts at the oldest one left
        chain.append(tup)
        wanted = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    chain.reverse()
    return chain


def copy_lineage(
    chain: Iterable[CheckpointTuple], target: BaseCheckpointSaver, target_thread_id: str
) -> str:
    """Write ``chain`` (oldest first) as the history of ``target_thread_id``; returns the
    id of its last checkpoint. Pending writes are copied for every checkpoint but the last."""
    items = list(chain)
    parent: str | None = None
    for index, tup in enumerate(items):
        checkpoint = tup.checkpoint
        config = target.put(
            _config(target_thread_id, parent),
            checkpoint,
            tup.metadata,
            dict(checkpoint["channel_versions"]),
        )
        parent = config["configurable"]["checkpoint_id"]
        if index < len(items) - 1 and tup.pending_writes:
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in tup.pending_writes:
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                target.put_writes(_config(target_thread_id, parent), writes, task_id)
    if parent is None:
        raise ConversationNotFound("Nothing to copy.")
    return parent


def fork(
    thread_id: str,
    checkpoint_id: str,
    *,
    owner: str | None = None,
    checkpoints: redis.Redis | None = None,
    sessions: redis.Redis | None = None,
) -> str:
    """A new thread, for the owner of ``thread_id``, whose history ends at ``checkpoint_id``.

    Returns the new thread id. Raises ConversationNotFound, CannotFork (also when the
    owner has ``CHAT_MAX_THREADS_PER_USER`` chats already).
    """
    sessions = sessions or get_client("sessions")
    cp = saver(checkpoints)
    chain = lineage(cp, thread_id, checkpoint_id)
    problem = _fork_problem(_messages(chain[-1], cp))
    if problem:
        raise CannotFork(f"Cannot fork at checkpoint {checkpoint_id}: {problem}. Pick another one.")
    owner = owner or threads.owner_of(thread_id, client=sessions)
    new_id = threads.new_thread_id()
    try:
        if owner and not threads.claim(owner, new_id, client=sessions):
            raise CannotFork(f"Thread id {new_id} is taken; try again.")  # uuid4: never
    except threads.TooManyThreads as exc:
        raise CannotFork(f"{owner} has {exc.limit} chats, the most one person may keep.") from None
    copy_lineage(chain, cp, new_id)
    if owner:
        for record in store.sessions_for(owner, client=sessions):
            store.add_thread_id(record.session_id, new_id, client=sessions)
    return new_id


def delete_conversation(thread_id: str, *, force: bool = False) -> str | None:
    """Delete a thread (:func:`chat.threads.delete`); returns the owner (or None).

    Raises ThreadBusy while a reply is being generated, unless ``force``.
    """
    return threads.delete(thread_id, if_busy="stop" if force else "refuse")


# --- pruning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneItem:
    thread_id: str
    owner: str | None
    last_activity: datetime | None
    checkpoints_before: int
    bytes_before: int
    checkpoints_after: int = 0
    bytes_after: int = 0
    skipped: str = ""  # why it was left alone ("" = pruned, or would be with --dry-run)


def idle_threads(cp: RedisCheckpointer, cutoff: datetime, page: int = 500) -> list[str]:
    """Threads last active before ``cutoff``, oldest first (a snapshot of the thread index)."""
    found: list[str] = []
    offset = 0
    while True:
        infos = cp.list_threads(offset=offset, limit=page)
        found += [i.thread_id for i in infos if i.last_activity < cutoff]
        if len(infos) < page:
            return found[::-1]
        offset += page


def _live_reason(thread_id: str, sessions: redis.Redis) -> str:
    if pending.is_busy(thread_id, client=sessions):
        return "a reply is being generated"
    if pending.has_pending(thread_id, client=sessions):
        return "a message is waiting to be answered"
    return ""


def prune(
    older_than: timedelta,
    *,
    keep_latest: int = 0,
    dry_run: bool = False,
    checkpoints: redis.Redis | None = None,
    sessions: redis.Redis | None = None,
) -> Iterable[PruneItem]:
    """Prune threads idle for longer than ``older_than``, yielding what happened to each.

    Default (``keep_latest`` 0): delete the thread (checkpoints, ownership, session
    entries). ``keep_latest`` N (``True`` is 1): keep each thread's newest N checkpoints
    (the conversation stays and can continue; its older time-travel history goes). Each
    thread is re-checked just before it is touched: one that became active again, is
    generating a reply or has a message queued is skipped, so pruning is safe while
    people chat.
    """
    keep = int(keep_latest)
    sessions = sessions or get_client("sessions")
    cp = saver(checkpoints)
    cutoff = datetime.now(UTC) - older_than
    for thread_id in idle_threads(cp, cutoff):
        stats = cp.thread_stats(thread_id)
        item = PruneItem(
            thread_id=thread_id,
            owner=threads.owner_of(thread_id, client=sessions),
            last_activity=stats.last_activity,
            checkpoints_before=stats.checkpoints,
            bytes_before=stats.bytes,
        )
        skipped = _live_reason(thread_id, sessions)
        if not skipped and stats.last_activity is not None and stats.last_activity >= cutoff:
            skipped = "active again"
        if not skipped and keep and stats.checkpoints <= keep:
            continue  # already trimmed: nothing to do, nothing to report
        if skipped:
            yield replace(
                item, skipped=skipped, checkpoints_after=stats.checkpoints, bytes_after=stats.bytes
            )
            continue
        if dry_run:
            yield replace(item, checkpoints_after=keep)
            continue
        if keep:
            yield _trimmed(cp, item, keep)
        else:
            threads.delete(thread_id, client=sessions, checkpointer=cp)
            yield item


def _trimmed(cp: RedisCheckpointer, item: PruneItem, keep: int) -> PruneItem:
    retention.trim(cp, item.thread_id, keep)
    after = cp.thread_stats(item.thread_id)
    return replace(item, checkpoints_after=after.checkpoints, bytes_after=after.bytes)


def trim_threads(
    keep: int,
    *,
    dry_run: bool = False,
    checkpoints: redis.Redis | None = None,
    sessions: redis.Redis | None = None,
) -> Iterable[PruneItem]:
    """Trim every thread with more than ``keep`` checkpoints to its newest ``keep``
    (``CHECKPOINT_KEEP_LATEST`` applied to threads no turn has trimmed yet: written
    before the setting, or by a process without it), least recently active first,
    yielding each one trimmed. A thread generating a reply is skipped: the end of its
    turn trims it."""
    sessions = sessions or get_client("sessions")
    cp = saver(checkpoints)
    for thread_id in idle_threads(cp, datetime.max.replace(tzinfo=UTC)):  # all of them
        stats = cp.thread_stats(thread_id)
        if stats.checkpoints <= keep:
            continue
        item = PruneItem(
            thread_id=thread_id,
            owner=threads.owner_of(thread_id, client=sessions),
            last_activity=stats.last_activity,
            checkpoints_before=stats.checkpoints,
            bytes_before=stats.bytes,
        )
        if pending.is_busy(thread_id, client=sessions):
            yield replace(
                item,
                skipped="a reply is being generated",
                checkpoints_after=stats.checkpoints,
                bytes_after=stats.bytes,
            )
        elif dry_run:
            yield replace(item, checkpoints_after=keep)
        else:
            yield _trimmed(cp, item, keep)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` -> timedelta; ValueError says what is wrong."""
    value = text.strip().lower()
    if len(value) >= 2 and value[-1] in _UNITS and value[:-1].isdigit():
        return timedelta(seconds=int(value[:-1]) * _UNITS[value[-1]])
    raise ValueError(
        f"{text!r} is not an age: give a whole number and a unit, e.g. 30d, 12h, 90m, 45s or 2w."
    )
