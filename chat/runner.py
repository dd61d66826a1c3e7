"""Runs the graph for queued messages: one run per thread at a time, across processes.

:func:`submit` queues the message durably and tries the thread's run lock in one script
call (:mod:`chat.pending`); the process that gets the lock runs the queue head first in a
background task, publishing ``user``, ``token`` (joined per 100 ms window:
``CHAT_TOKEN_WINDOW_SECONDS``) and ``tool`` through the run's outbox, then ``done`` in
the script call that acknowledges the message, after its checkpoint is written
(:func:`chat.pending.afinish`). Each event of the
outbox extends the lock and reads the cancel flag in its own round trip (a run whose lock
is gone publishes nothing); a keeper does it a second after the last renewal.
Stopped: ``cancelled`` (the partial reply kept); model error: ``error`` (the turn
undone); Redis gone: the message stays queued and this process tries again with backoff.
A dead worker's message is taken over once its lock expires.
Hand-written because LangGraph has no cross-process queue or run lock without its
Platform; the README's "The chat engine" section has the whole protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from langgraph.graph.state import CompiledStateGraph

from agenticpal.redis_clients import UNAVAILABLE_ERRORS
from chat import events, pending, threads
from chat.graph import (
    end_turn,
    final_reply,
    get_graph,
    message_text,
    run_config,
    set_aside_approvals,
    settle_turn,
    stream_turn,
    waiting_approvals,
)
from chat.messages import tool_data
from chat.pending import PendingMessage
from chat.render import render_approval, render_tool
from chat.retention import atrim_after_turn
from workspace.actions import Decision

logger = logging.getLogger("chat.runner")

RENEW_INTERVAL_SECONDS = 1.0  # the lock lives keys.RUN_LOCK_TTL_MS; renewal is 20x as often
MAX_TOKEN_WINDOW_SECONDS = 1.0  # however many replies stream, each updates once a second
WATCH_MARGIN_SECONDS = 0.05  # retry this long after the holder's lock would have expired
STOP_WAIT_SECONDS = 10.0  # how long forget()/aclose() wait for a stopped run to finish
RETRY_FIRST_SECONDS = 0.5  # a run that Redis failed is tried again after this, doubling
RETRY_MAX_SECONDS = 5.0

GraphFactory = Callable[[], Awaitable[CompiledStateGraph]]


# What a model that is not set up raises: a missing provider package or key, a bad name
# (init_chat_model), or the provider refusing the key.
MODEL_SETUP_ERRORS: tuple[type[BaseException], ...] = (ImproperlyConfigured, ImportError)


class InvalidMessage(ValueError):
    """The message cannot be queued; the argument says why, for the user."""

    status = 400


class TooManyMessages(InvalidMessage):
    """A limit refused the message (the thread's queue is full, or the user's rate)."""

    status = 429


def _limits() -> dict[str, int]:
    return {
        "max_queued": settings.CHAT_MAX_QUEUED_MESSAGES,
        "per_minute": settings.CHAT_MESSAGES_PER_MINUTE,
    }


class DecisionGone(InvalidMessage):
    """The decision answers no waiting approval (already decided, or never asked)."""

    status = 409


class NotYourThread(InvalidMessage):
    """The thread was deleted and is someone else's now."""

    status = 403


MAX_DECISIONS = 20


def clean_decisions(raw: object) -> dict[str, dict]:
    """``{interrupt id: decision}`` checked for shape (an edit's arguments are checked
    against the tool's schema when the action is planned again)."""
    if not isinstance(raw, dict) or not raw or len(raw) > MAX_DECISIONS:
        raise InvalidMessage(
            'Decisions are an object {"<interrupt id>": {"type": "approve" | "edit" | '
            f'"reject", ...}}}} with 1-{MAX_DECISIONS} entries.'
        )
    cleaned: dict[str, dict] = {}
    for interrupt_id, value in raw.items():
        if not isinstance(interrupt_id, str) or not 1 <= len(interrupt_id) <= 64:
            raise InvalidMessage("An interrupt id is a string of 1-64 characters.")
        try:
            decision = Decision.model_validate(value)
        except ValueError as exc:
            raise InvalidMessage(f"Decision {interrupt_id}: {exc.errors()[0]['msg']}") from None  # type: ignore[attr-defined]
        cleaned[interrupt_id] = decision.model_dump(include={"type", "args", "message"})
    return cleaned


def _refusal(refused: pending.Refused) -> InvalidMessage:
    if refused.reason == "not_owner":
        return NotYourThread("This chat was deleted; start a new one.")
    if refused.reason == "queue_full":
        return TooManyMessages(
            f"This chat already has {refused.limit} messages waiting for an answer; "
            "send more once they are answered."
        )
    return TooManyMessages(
        f"You sent {refused.limit} messages in the last minute; wait a moment and send again."
    )


@dataclass
class _Run:
    """The run loop of one thread in this process (it holds the thread's run lock)."""

    token: str
    task: asyncio.Task | None = None
    message_id: str | None = None
    graph_task: asyncio.Task | None = None
    stop_reason: str | None = None  # "cancelled", "discarded" (thread deleted) or "lost"
    partial: list[str] = field(default_factory=list)  # text of the model step under way
    reply: str = ""  # text of the last finished model step
    text: str = ""  # the user's message (an error event gives it back to the composer)
    approvals: int = 0  # approval cards this message's run put up
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # the message's run ended
    renewed_at: float = 0.0  # loop time the lock was last extended (a publish or the keeper)

    def lock_state(self, ours: bool, flag: str | None) -> None:
        """What extending the lock found: lost, the thread being deleted (``*``) or a
        Stop of this message ends the run."""
        self.renewed_at = asyncio.get_running_loop().time()
        if not ours:
            self.stop("lost")
        elif flag == "*":
            self.stop("discarded")  # the thread is being deleted
        elif flag is not None and flag == self.message_id:
            self.stop("cancelled")

    def stop(self, reason: str) -> None:
        """Ask the message being run to stop (the first reason wins)."""
        task = self.graph_task
        if self.stop_reason is None and task is not None and not task.done():
            self.stop_reason = reason
            task.cancel()

    def insist(self) -> None:
        """Cancel again: redis-py can swallow a cancellation that lands inside a command."""
        task = self.graph_task
        if self.stop_reason is not None and task is not None and not task.done():
            task.cancel()


class _Outbox:
    """The events of one message's run, published in order by one sender task.

    Neither the run nor the model waits for Redis: events are queued here. The first
    token event goes out at once; after it, at most one token event per ``window``
    seconds (``window()``, read per event), carrying every word that arrived meanwhile —
    a reply still streams (about ten updates a second by default) but costs a fraction
    of the publishes and socket frames of one event per word, which is what bounds a
    busy server. Each publish extends ``run``'s lock (see events.publish_renewing).
    Other events (``user``, ``tool``) go out as soon as the tokens before them have;
    closing flushes at once.
    """

    def __init__(self, window: Callable[[], float], run: _Run) -> None:
        self._run = run
        self._items: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._window = window
        self._pause: asyncio.Future | None = None

    def put(self, event: dict[str, Any]) -> None:
        self._items.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()
        if self._pause is not None and not self._pause.done():
            self._pause.set_result(None)  # no more words to wait for: flush now

    async def send(self, thread_id: str) -> None:
        loop = asyncio.get_running_loop()
        last_tokens = -math.inf  # loop time the last token event was out (published)
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._items:
                event = self._items[0]
                if event["type"] == "token":
                    delay = last_tokens + self._window() - loop.time()  # the window now
                    if delay > 0 and not self._closed:
                        await self._sleep(loop, delay)
                    event = self._join_tokens()
                else:
                    self._items.popleft()
                _, lock = await events.publish_renewing(thread_id, event, self._run.token)
                if event["type"] == "token":
                    # Counted from the publish's end, not its start: a slow publish must
                    # not let the next event follow it within the window.
                    last_tokens = loop.time()
                if lock is not None:
                    self._run.lock_state(*lock)
            if self._closed:
                return

    def _join_tokens(self) -> dict[str, Any]:
        """The token events at the head of the queue, as one."""
        first = self._items.popleft()
        texts = [first["text"]]
        while self._items and self._items[0]["type"] == "token":
            texts.append(self._items.popleft()["text"])
        return first if len(texts) == 1 else {**first, "text": "".join(texts)}

    async def _sleep(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        """Wait ``delay`` seconds, or less if the outbox is closed meanwhile."""
        self._pause = pause = loop.create_future()
        timer = loop.call_later(delay, _resolve, pause)
        try:
            await pause
        finally:
            timer.cancel()
            self._pause = None

    async def drain(self, sender: asyncio.Task) -> None:
        """Close, wait until every queued event is out (even if the caller is cancelled
        meanwhile: the sender is shielded) and raise the sender's error if it failed."""
        self.close()
        while not sender.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(sender)
        if not sender.cancelled() and sender.exception() is not None:
            raise sender.exception()


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class Runner:
    """The runs of one process (and one event loop). Tests make two to act as two processes."""

    def __init__(
        self,
        graph_factory: GraphFactory | None = None,
        token_window: float | None = None,
        renew_interval: float = RENEW_INTERVAL_SECONDS,
    ) -> None:
        self._graph_factory = graph_factory or get_graph
        # After a run's first token event, at most one per this long.
        self._token_window = (
            settings.CHAT_TOKEN_WINDOW_SECONDS if token_window is None else token_window
        )
        self._token_rate = settings.CHAT_TOKEN_EVENTS_PER_SECOND
        self._renew_interval = renew_interval
        self._runs: dict[str, _Run] = {}
        self._watchers: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()  # strong references to background tasks
        self._closing = False

    def _window(self) -> float:
        """The token window of this process's replies now: ``CHAT_TOKEN_WINDOW_SECONDS``,
        widened when more replies stream at once than ``CHAT_TOKEN_EVENTS_PER_SECOND``
        allows at that window (runs under way in this process count), up to a second.
        Under a burst the streams then share a fixed number of publishes a second, and
        the CPU goes to the messages still waiting for their first words (which always
        go out at once) instead of to more frames of replies already under way."""
        if not self._token_window:
            return 0.0  # every model chunk an event, as asked
        widened = max(self._token_window, len(self._runs) / self._token_rate)
        return min(widened, MAX_TOKEN_WINDOW_SECONDS)

    # --- entry points -----------------------------------------------------------------

    async def submit(
        self,
        thread_id: str,
        text: str,
        email: str,
        timezone: object = "",
        message_id: object = None,
    ) -> str:
        """Queue ``text`` (durably) and make sure a run will pick it up; returns its id.

        ``message_id``: the client's id for the message, so that sending it again (a
        reconnect before the acknowledgement) cannot make a second turn.
        """
        reason = threads.check_message(text)
        if reason is not None:
            raise InvalidMessage(reason)
        if message_id is not None and not threads.validate_thread_id(message_id):
            raise InvalidMessage("A message id is 1-64 letters, digits, '_' or '-'.")
        mid = message_id or uuid.uuid4().hex
        return await self._queue(
            thread_id, PendingMessage(mid, text, email, threads.clean_timezone(timezone))
        )

    async def decide(
        self,
        thread_id: str,
        decisions: object,
        email: str,
        message_id: object = None,
        timezone: object = "",
    ) -> str:
        """Queue the user's decisions on waiting approvals (``{interrupt id: {"type":
        "approve"|"edit"|"reject", "args"?, "message"?}}``), durably, like a message: the
        thread's run resumes with them under its lock. Raises :class:`DecisionGone`
        when none of them answers a waiting approval (nothing is queued then)."""
        cleaned = clean_decisions(decisions)
        if message_id is not None and not threads.validate_thread_id(message_id):
            raise InvalidMessage("A message id is 1-64 letters, digits, '_' or '-'.")
        graph = await self._graph_factory()
        waiting = {i.id for i in await waiting_approvals(graph, run_config(thread_id))}
        if not waiting.intersection(cleaned):
            raise DecisionGone("That action was already decided, or is no longer waiting.")
        mid = message_id or uuid.uuid4().hex
        zone = threads.clean_timezone(timezone)
        return await self._queue(thread_id, PendingMessage(mid, "", email, zone, decisions=cleaned))

    async def _queue(self, thread_id: str, message: PendingMessage) -> str:
        """Queue ``message`` durably (within the limits) and make sure a run will take it."""
        token = pending.new_token()
        try:
            head = await pending.asubmit(thread_id, message, token, **_limits())
        except pending.Refused as refused:
            raise _refusal(refused) from None
        if head is not None:
            self._start(thread_id, token, head)
        elif thread_id not in self._runs:
            self._watch(thread_id)  # the holder is another process, alive or not
        return message.message_id

    async def cancel(self, thread_id: str) -> bool:
        """Stop the running message of ``thread_id`` (in whichever process runs it)."""
        flagged = await pending.acancel(thread_id)
        run = self._runs.get(thread_id)
        if run is not None:
            run.stop("cancelled")  # ours: no need to wait for the next renewal
        return flagged

    async def recover(self, thread_id: str) -> bool:
        """Run messages left by a worker that died; True when this call started a run."""
        if thread_id in self._runs:
            return False
        token = pending.new_token()
        result = await pending.atry_lock_pending(thread_id, token)
        if result == 1:
            self._start(thread_id, token)
            return True
        if result < 0:
            self._watch(thread_id)
        return False

    async def forget(self, thread_id: str) -> None:
        """Stop this process's run of a thread being deleted and wait for it to end."""
        watcher = self._watchers.pop(thread_id, None)
        if watcher is not None:
            watcher.cancel()
        run = self._runs.get(thread_id)
        if run is not None and run.task is not None:
            run.stop("discarded")
            with contextlib.suppress(Exception, asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.task), STOP_WAIT_SECONDS)

    async def drain(self, wait_seconds: float = STOP_WAIT_SECONDS) -> None:
        """Wait for the runs in progress to finish and stop watching (tests, shutdown)."""
        for watcher in list(self._watchers.values()):
            watcher.cancel()
        runs = [run.task for run in self._runs.values() if run.task is not None]
        if runs:
            await asyncio.wait(runs, timeout=wait_seconds)
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel every background task of this runner (their messages stay queued)."""
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT_SECONDS)
        self._closing = False  # usable again (tests drain and reuse a runner)

    # --- background tasks -------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start(self, thread_id: str, token: str, head: bytes | None = None) -> None:
        """Run the thread's queue under the lock ``token`` holds (``head``: the queue's
        head as the lock was taken, when known)."""
        run = _Run(token)
        self._runs[thread_id] = run
        run.task = self._spawn(self._run_queue(thread_id, run, head), f"chat-run:{thread_id}")

    def _watch(self, thread_id: str) -> None:
        if thread_id not in self._watchers:
            task = self._spawn(self._watch_lock(thread_id), f"chat-watch:{thread_id}")
            self._watchers[thread_id] = task

    async def _watch_lock(self, thread_id: str) -> None:
        """Take over the queue once the holder's lock expires (it died or finished)."""
        try:
            while thread_id not in self._runs and not self._closing:
                token = pending.new_token()
                result = await pending.atry_lock_pending(thread_id, token)
                if result == 1:
                    self._start(thread_id, token)
                if result >= 0:
                    return
                await asyncio.sleep(-result / 1000 + WATCH_MARGIN_SECONDS)
        except UNAVAILABLE_ERRORS as exc:
            logger.warning("Stopped watching thread %s: Redis unavailable (%s)", thread_id, exc)
        finally:
            if self._watchers.get(thread_id) is asyncio.current_task():
                del self._watchers[thread_id]

    async def _run_queue(self, thread_id: str, run: _Run, head: bytes | None) -> None:
        """Run the queue head first until it is empty (the lock is ours throughout).

        Redis failing mid-run leaves the message queued; this process tries again with
        backoff (the same lock while it lasts, then as any process would) until Redis is
        back, so the message is answered without waiting for another socket or message.
        """
        delay = RETRY_FIRST_SECONDS
        watch = False
        try:
            while not self._closing:
                try:
                    watch = not await self._drain(thread_id, run, head)
                    return
                except UNAVAILABLE_ERRORS as exc:
                    head = None  # the next try peeks: this head may be answered by then
                    logger.warning(
                        "Run of thread %s stopped: Redis unavailable (%s); its message stays "
                        "queued, trying again in %.1f s",
                        thread_id,
                        exc,
                        delay,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
        except Exception:
            logger.exception("Run of thread %s failed; its message stays queued", thread_id)
        finally:
            if self._runs.get(thread_id) is run:
                del self._runs[thread_id]
            if watch and not self._closing:
                self._watch(thread_id)  # our lock expired meanwhile: take the queue over

    async def _drain(self, thread_id: str, run: _Run, head: bytes | None = None) -> bool:
        """Run every queued message (``head`` first, when given: the lock was taken a
        moment ago, no peek needed); False when the lock stopped being ours."""
        if head is not None:
            status, raw = "next", head
        else:
            status, raw = await pending.aack_and_next(thread_id, run.token)
        while status == "next" and raw is not None and not self._closing:
            finished = await self._run_one(thread_id, run, PendingMessage.decode(raw), raw)
            if finished is None:
                return False  # the lock is gone: the message stays queued for its next run
            status, raw = finished
        if status == "lost":
            logger.warning("Run lock of thread %s expired between two messages", thread_id)
            return False
        return True

    async def _run_one(
        self, thread_id: str, run: _Run, message: PendingMessage, raw: bytes
    ) -> pending.AckResult | None:
        """Run one message to its end and acknowledge it (``raw``: its queue entry);
        returns what comes next in the queue, or None when the lock was lost (the
        message stays queued)."""
        failed: Exception | None = None
        mid = message.message_id
        run.message_id, run.stop_reason, run.partial, run.reply = mid, None, [], ""
        run.text = message.text
        run.finished = asyncio.Event()
        config = run_config(thread_id, message.timezone, message.user_email)
        # The user's message goes out through the run's outbox, ahead of its tokens:
        # the graph starts without waiting for that publish.
        outbox = _Outbox(self._window, run)
        sender = self._spawn(outbox.send(thread_id), f"chat-send:{thread_id}")
        if message.decisions is None:
            outbox.put({"type": "user", "message_id": mid, "text": message.text})
        graph: CompiledStateGraph | None = None
        run.graph_task = asyncio.create_task(
            self._stream(thread_id, run, message, config, outbox, sender)
        )
        keeper = asyncio.create_task(self._keep_lock(thread_id, run))
        try:
            graph = await run.graph_task
            if run.stop_reason == "cancelled":
                run.stop_reason = None  # the stop came too late: the answer is complete
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling() or run.stop_reason is None:
                raise  # this task itself is being cancelled (shutdown)
        except UNAVAILABLE_ERRORS:
            raise
        except Exception as exc:
            logger.warning("Model run of thread %s failed: %s", thread_id, exc, exc_info=True)
            failed = exc
        finally:
            # Not keeper.cancel(): a cancel can be lost inside a Redis call (see insist).
            run.finished.set()
            await keeper
            run.graph_task = None
            # Every event of the run is out before its end is published. (The stream
            # drains the outbox itself; this covers a stop before the stream started.)
            await outbox.drain(sender)

        if failed is not None:
            await self._fail(thread_id, run, config, failed)
            return await pending.aack_and_next(thread_id, run.token, message, raw)
        if run.stop_reason is None:
            graph = graph or await self._graph_factory()
            content = run.reply
            if not content and message.decisions is None:  # an answered message run again
                state = await graph.aget_state(config)
                content = final_reply(state.values.get("messages", []), mid)
            state_now = "awaiting_approval" if run.approvals else "idle"
            done = {"type": "done", "message_id": mid, "content": content, "status": state_now}
            await atrim_after_turn(graph, thread_id)  # CHECKPOINT_KEEP_LATEST; never raises
            # One more look at the lock and the flag (the graph may have finished between
            # two renewals: a thread deleted meanwhile must not come back with a "done"),
            # "done" and the acknowledgement: one round trip.
            status, nxt = await pending.afinish(thread_id, run.token, message, raw, done)
            if status not in ("lost", "discarded"):
                return status, nxt
            run.stop_reason = status
        if run.stop_reason == "lost":
            logger.warning(
                "Run lock of thread %s was lost mid-run; message %s stays", thread_id, mid
            )
            return None
        graph = graph or await self._graph_factory()
        if run.stop_reason == "discarded":
            # The thread was deleted while this run could still write: delete what the
            # run wrote since then (checkpoints, events); write nothing else.
            if graph.checkpointer is not None:
                await graph.checkpointer.adelete_thread(thread_id)
            await events.adelete(thread_id)
        elif run.stop_reason == "cancelled":
            partial = "".join(run.partial)
            await settle_turn(graph, config, mid, stopped_text=partial)
            await events.publish(
                thread_id, {"type": "cancelled", "message_id": mid, "content": partial}
            )
        return await pending.aack_and_next(thread_id, run.token, message, raw)

    async def _fail(self, thread_id: str, run: _Run, config: dict, exc: BaseException) -> None:
        """Model (or tool, or configuration) error: undo the turn, tell the user."""
        mid = run.message_id or ""
        with contextlib.suppress(Exception):
            await settle_turn(await self._graph_factory(), config, mid, stopped_text=None)
        # The person reads what they can act on; the technical detail is in the log (the
        # warning above, with its traceback) for the administrator.
        if isinstance(exc, MODEL_SETUP_ERRORS):
            reason = (
                "The assistant is not available: the administrator must configure the model. "
                "Your message was not kept; send it again later."
            )
        else:
            reason = "The assistant could not answer. Your message was not kept; send it again."
        event = {"type": "error", "message_id": mid, "reason": reason, "text": run.text}
        await events.publish(thread_id, event)

    async def _stream(
        self,
        thread_id: str,
        run: _Run,
        message: PendingMessage,
        config: dict,
        outbox: _Outbox,
        sender: asyncio.Task,
    ) -> CompiledStateGraph:
        """Stream the graph for ``message``; tokens and tool results go out via ``outbox``."""
        mid = message.message_id
        graph = None
        try:
            graph = await self._graph_factory()
            resume = await self._before_turn(graph, config, message, outbox)
            if message.decisions is not None and not resume:
                return graph  # nothing waits for these decisions any more: nothing runs
            stream = stream_turn(graph, config, mid, message.text, resume=resume)
            async with contextlib.aclosing(stream) as turn:
                async for kind, value in turn:
                    if run.stop_reason is not None:
                        raise asyncio.CancelledError  # asked to stop: do not wait for a cancel
                    if sender.done():
                        sender.result()  # publishing failed (Redis gone): stop the run
                    if kind == "token":
                        run.partial.append(value)
                        outbox.put({"type": "token", "message_id": mid, "text": value})
                    elif kind == "tool":
                        outbox.put(
                            {
                                "type": "tool",
                                "message_id": mid,
                                "name": value.name,
                                "output": message_text(value),
                                "data": (data := tool_data(value)),
                                "html": render_tool(data),
                            }
                        )
                    elif kind == "approval":
                        run.approvals += 1
                        outbox.put(approval_event(thread_id, mid, value.id, value.value))
                    else:
                        run.partial = []  # that step's text is in the checkpoint now
                        if value is not None and message_text(value):
                            run.reply = message_text(value)
        finally:
            if graph is not None:
                end_turn(graph, thread_id)
            # Every token is out before "done", "cancelled" or "error", even if this task
            # is cancelled again meanwhile.
            await outbox.drain(sender)
        return graph

    async def _before_turn(
        self, graph: CompiledStateGraph, config: dict, message: PendingMessage, outbox: _Outbox
    ) -> dict[str, dict] | None:
        """The resume value of a decision (``{interrupt id: decision}``, only for actions
        still waiting); for a new message, the waiting actions are set aside first: the
        user moved on, the model sees their message (see the README's "Approvals")."""
        mid = message.message_id
        if message.decisions is None:
            reason = "the user moved on without approving it"
            for waiting in await set_aside_approvals(graph, config, reason):
                outbox.put(decided_event(mid, waiting.id, "reject", reason))
            return None
        waiting = {i.id: i for i in await waiting_approvals(graph, config, turn=True)}
        resume: dict[str, dict] = {}
        for interrupt_id, decision in message.decisions.items():
            if (found := waiting.get(interrupt_id)) is None:
                outbox.put(decided_event(mid, interrupt_id, "gone", ""))
                continue
            # Deterministic, so a run of this decision after a crash resumes identically:
            # who and when come from the queued decision, the plan from the card shown.
            value = {**decision, "interrupt_id": interrupt_id, "by": message.user_email,
                     "at": message.created_at}  # fmt: skip
            if decision["type"] == "approve" and isinstance(found.value, dict):
                value["plan"] = found.value.get("plan")
            resume[interrupt_id] = value
            outbox.put(
                decided_event(mid, interrupt_id, decision["type"], decision.get("message", ""))
            )
        return resume

    async def _keep_lock(self, thread_id: str, run: _Run) -> None:
        """Renew the lock every ``renew_interval`` (a second) until the message's run
        ends; stop the run when the lock is lost or the message is flagged to stop.

        While the run publishes, each event extends the lock and reads the flag in its
        own round trip (:func:`chat.events.publish_renewing`): the keeper then only
        renews when nothing was published for an interval (a model or tool call that
        takes a while), and a Stop takes effect at the next token event."""
        loop = asyncio.get_running_loop()
        interval = self._renew_interval
        while True:
            since = loop.time() - run.renewed_at
            wait = interval - since if since < interval else interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.finished.wait(), wait)
                return
            run.insist()
            if loop.time() - run.renewed_at < interval:
                continue  # a publish renewed it meanwhile: wait out its interval
            try:
                run.lock_state(*await pending.arenew(thread_id, run.token))
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("Could not renew the run lock of %s: %s", thread_id, exc)
                continue  # the lock may still be ours; the run finds out when it writes


def approval_event(thread_id: str, message_id: str, interrupt_id: str, card: Any) -> dict[str, Any]:  # fmt: skip
    """An approval card for every open tab (``html``: the same card the page renders)."""
    return {"type": "approval", "message_id": message_id, "interrupt_id": interrupt_id,
            "card": card, "html": render_approval(thread_id, interrupt_id, card)}  # fmt: skip


def decided_event(message_id: str, interrupt_id: str, decision: str, reason: str) -> dict[str, Any]:  # fmt: skip
    """A card was answered (``gone``: it was not waiting any more; nothing ran)."""
    return {"type": "decided", "message_id": message_id, "interrupt_id": interrupt_id,
            "decision": decision, "reason": reason}  # fmt: skip


# --- the process's runner (one per event loop) -------------------------------------

_runners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runner] = weakref.WeakKeyDictionary()


def get_runner() -> Runner:
    """The runner of the running event loop."""
    loop = asyncio.get_running_loop()
    runner = _runners.get(loop)
    if runner is None:
        runner = _runners[loop] = Runner()
    return runner


async def submit(
    thread_id: str, text: str, email: str, timezone: object = "", message_id: object = None
) -> str:
    return await get_runner().submit(thread_id, text, email, timezone, message_id)


async def decide(
    thread_id: str, decisions: object, email: str, message_id: object = None, timezone: object = ""
) -> str:
    return await get_runner().decide(thread_id, decisions, email, message_id, timezone)


async def cancel(thread_id: str) -> bool:
    return await get_runner().cancel(thread_id)


async def recover(thread_id: str) -> bool:
    return await get_runner().recover(thread_id)


async def forget(thread_id: str) -> None:
    await get_runner().forget(thread_id)


async def drain(wait_seconds: float = STOP_WAIT_SECONDS) -> None:
    """Let this loop's runs finish and stop its background tasks."""
    loop = asyncio.get_running_loop()
    runner = _runners.get(loop)
    if runner is not None:
        await runner.drain(wait_seconds)
