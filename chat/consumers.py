"""The chat websocket: ``/ws/chat/<thread_id>/``, one consumer per open tab.

It owns no conversation state: a message frame goes to :func:`chat.runner.submit`
and a decision frame (approve / edit / reject an action) to :func:`chat.runner.decide`
(durable before anything runs) and every event of the thread, from any process, arrives
through the thread's channel-layer group and is forwarded as is, so every tab sees the
same stream and a reconnecting tab catches up from the ``history`` event. Frames are
parsed with a size and depth bound (:mod:`chat.frames`). Close codes a client can act
on: 4401 not signed in, 4403 someone else's thread, 4400 an invalid id, 4404 an unknown
path, 4410 the thread was deleted, 4429 too many chats, 1011 Redis is down. The socket is
accepted before it is closed, so a browser sees the code (a close before the handshake
is a bare 403).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, get_async_client
from chat import events, frames, history, runner, threads

logger = logging.getLogger("chat.consumers")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_THREAD = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_DELETED = 4410
CLOSE_TOO_MANY = 4429
CLOSE_REDIS_DOWN = 1011
MAX_ECHO = 40  # characters of an unknown frame type quoted back
# What the ASGI server raises for a send on a socket that is already closed: an OSError
# (the ASGI spec; uvicorn's ClientDisconnected), or uvicorn's RuntimeError once it sent a
# close itself (1007 invalid UTF-8, 1009 too big) while websocket.disconnect is queued.
SOCKET_GONE = (OSError, RuntimeError)


def redis_down_reason() -> str:
    # A close reason must fit in a control frame (123 bytes of UTF-8).
    return "Redis is unavailable; reconnect in a few seconds."


class ChatConsumer(AsyncWebsocketConsumer):
    thread_id: str = ""
    group: str | None = None
    socket_gone: bool = False  # a send failed: the socket closed under us
    catch_up_all: bool = False  # a catch-up after a resubscribe failed: the next one sends all

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if "redis_error" in self.scope:  # reading the session failed (sessions_redis.websocket)
            self.thread_id = self.scope["url_route"]["kwargs"]["thread_id"]  # for the log
            await self.close_redis_down(self.scope["redis_error"])
            return
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED, reason="Sign in first.")
            return
        thread_id = self.scope["url_route"]["kwargs"]["thread_id"]
        if not threads.validate_thread_id(thread_id):
            await self.close(code=CLOSE_BAD_THREAD, reason="Not a valid thread id.")
            return
        self.thread_id = thread_id
        self.user_email = threads.user_email(user)
        session = self.scope.get("session")
        try:
            try:
                claimed = await threads.aopen(
                    self.user_email,
                    thread_id,
                    session and session.session_key,
                    session_value=session and session.loaded_value,
                )
            except threads.TooManyThreads as exc:
                await self.send_error(str(exc))
                await self.close(code=CLOSE_TOO_MANY, reason="Too many chats; delete some.")
                return
            if not claimed:
                await self.close(code=CLOSE_FORBIDDEN, reason="Forbidden.")
                return
            self.checked_id = await events.last_id(thread_id)  # before the history
            self.forwarded: set[str] = set()
            self.group = events.group_name(thread_id)
            await self.channel_layer.group_add(self.group, self.channel_name)
            messages: list = []
            approvals: list = []
            # A chat its claim just found without checkpoints has nothing to read back
            # (unless an event came since: then it is read as always).
            if claimed != threads.Opened.NEW_AND_EMPTY or self.checked_id != "0-0":
                messages = await history.get_history(thread_id)
                approvals = await history.get_approvals(thread_id)
            await self.send_event(
                {
                    "type": "history",
                    "thread_id": thread_id,
                    "messages": messages,
                    "approvals": approvals,
                }
            )
            await runner.recover(thread_id)
        except UNAVAILABLE_ERRORS as exc:
            await self.close_redis_down(exc)

    async def dispatch(self, message: dict) -> None:
        """Channels' dispatch without its ``aclose_old_connections()`` per message.

        Channels 4.3 closes stale database connections before every handler, through
        the single sync thread, so each token event of each socket queued behind all
        the others there. The close is for handlers that use the ORM; these do not:
        the user was loaded by :mod:`sessions_redis.websocket` before ``connect`` (in
        ``database_sync_to_async``, which closes stale connections itself), sessions
        and threads live in Redis, and every event is forwarded as is. A handler that
        starts using the ORM must go through ``database_sync_to_async``.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            # When Redis is gone the subscription dies with its connection anyway.
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.group:
            return  # a frame raced a close
        if text_data is None:
            await self.send_error("Send text frames with JSON, not binary frames.")
            return
        try:
            frame = frames.parse(text_data, "The frame")
        except frames.FrameError as exc:
            await self.send_error(str(exc))
            return
        if not isinstance(frame, dict):
            await self.send_error('The frame must be a JSON object with a "type".')
            return
        kind = frame.get("type")
        try:
            if kind == "message":
                await self.on_message(frame.get("message"), frame.get("timezone"), frame.get("id"))
            elif kind == "decision":
                await self.on_decision(
                    frame.get("decisions"), frame.get("id"), frame.get("timezone")
                )
            elif kind == "cancel":
                await runner.cancel(self.thread_id)
            elif kind == "delete":
                await self.on_delete()
            elif kind == "ping":
                # Clients ping every few seconds; answering only when Redis does makes
                # the ping a health probe, so a tab notices an outage and reconnects.
                await get_async_client("sessions").ping()
                await self.catch_up()
                await self.send_event({"type": "pong"})
            else:
                shown = repr(kind)
                shown = shown if len(shown) <= MAX_ECHO else shown[: MAX_ECHO - 1] + "…"
                await self.send_error(
                    f"Unknown frame type {shown}; expected 'message', 'decision', 'cancel', 'delete' or 'ping'."
                )
        except UNAVAILABLE_ERRORS as exc:
            await self.close_redis_down(exc)

    async def on_message(self, text: Any, timezone: Any = None, message_id: Any = None) -> None:
        """Queue a message; ``message_id`` (optional, the page's) makes a resend harmless."""
        try:
            await runner.submit(self.thread_id, text, self.user_email, timezone, message_id)
        except runner.NotYourThread as exc:
            await self.send_error(str(exc))
            await self.close(code=CLOSE_DELETED, reason="This chat was deleted.")
        except runner.InvalidMessage as exc:
            await self.send_error(str(exc.args[0] if exc.args else exc))

    async def on_decision(
        self, decisions: Any, message_id: Any = None, timezone: Any = None
    ) -> None:
        """Queue the user's decisions on approval cards (``{interrupt id: {"type": ...}}``);
        a decision for a card that is not waiting any more is refused, nothing runs."""
        try:
            await runner.decide(self.thread_id, decisions, self.user_email, message_id, timezone)
        except runner.NotYourThread as exc:
            await self.send_error(str(exc))
            await self.close(code=CLOSE_DELETED, reason="This chat was deleted.")
        except runner.InvalidMessage as exc:
            ids = list(decisions) if isinstance(decisions, dict) else []
            await self.send_event(
                {
                    "type": "error",
                    "reason": str(exc),
                    "code": type(exc).__name__,
                    "id": message_id,
                    "interrupt_ids": ids[: runner.MAX_DECISIONS],
                }
            )

    async def on_delete(self) -> None:
        """Delete the thread; every open tab, this one included, gets ``deleted`` and 4410."""
        await threads.adelete(self.thread_id)

    async def layer_resubscribed(self, message: dict) -> None:
        """The channel layer's subscription to the thread's group is back after Redis
        went away: send at once what was published while it was gone (every event the
        stream holds; those also on their way live are dropped as sent). If Redis does
        not answer the read yet (still loading its data), the next ping does it."""
        if self.group is None:
            return  # closing
        try:
            await self.catch_up(margin_ms=None)
        except UNAVAILABLE_ERRORS as exc:
            self.catch_up_all = True
            logger.info("Catch-up of thread %s after a resubscribe failed: %s", self.thread_id, exc)

    async def catch_up(self, margin_ms: int | None = 1000) -> None:
        """Send the thread's events the channel layer did not deliver (its subscription
        is re-established a moment after Redis comes back): those of the stream older
        than ``margin_ms`` (younger ones may still be on their way through the channel
        layer; ``None``: every one) that this socket has not sent."""
        if self.catch_up_all:
            margin_ms, self.catch_up_all = None, False
        cutoff = None if margin_ms is None else int(time.time() * 1000) - margin_ms
        while True:
            batch = await events.read_since(self.thread_id, self.checked_id)
            for event in batch:
                eid = event["id"]
                if cutoff is not None and int(eid.split("-")[0]) > cutoff:
                    return  # may still be on its way through the channel layer
                if eid not in self.forwarded:
                    await self.chat_event({"event": event})
                self.forwarded.discard(eid)
                self.checked_id = eid
            if len(batch) < events.READ_BATCH:
                return

    async def chat_event(self, message: dict) -> None:
        """An event of the thread from the channel layer (see chat.events)."""
        event = message["event"]
        eid = event.get("id")
        if eid:
            if eid in self.forwarded or _stream_id(eid) <= _stream_id(self.checked_id):
                return  # sent already (by catch_up)
            self.forwarded.add(eid)
        await self.send_event(event)
        if event.get("type") == "deleted":
            await self.disconnect(CLOSE_DELETED)
            await self.close(code=CLOSE_DELETED, reason="This chat was deleted.")

    async def send_event(self, event: dict) -> None:
        """Send ``event``; on a socket already closed, drop it (the thread's event stream
        keeps it for the next connection) instead of failing the consumer."""
        if self.socket_gone:
            return
        try:
            await self.send(text_data=json.dumps(event, ensure_ascii=False))
        except SOCKET_GONE as exc:
            self.socket_gone = True
            logger.info("Chat socket of thread %s already closed (%s)", self.thread_id, exc)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if self.socket_gone:
            return
        try:
            await super().close(code=code, reason=reason)
        except SOCKET_GONE as exc:
            self.socket_gone = True
            logger.info("Chat socket of thread %s already closed (%s)", self.thread_id, exc)

    async def send_error(self, reason: str) -> None:
        await self.send_event({"type": "error", "reason": reason})

    async def close_redis_down(self, exc: BaseException) -> None:
        logger.warning(
            "Closing chat socket of thread %s: Redis unavailable (%s)", self.thread_id, exc
        )
        if self.group is not None:
            await self.disconnect(CLOSE_REDIS_DOWN)
        await self.close(code=CLOSE_REDIS_DOWN, reason=redis_down_reason())


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other websocket path: accepted, then closed with 4404 (not an HTTP 500)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(
            code=CLOSE_NOT_FOUND, reason="No websocket here; chats are /ws/chat/<id>/."
        )
