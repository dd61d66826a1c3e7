"""The permanent fault suite ("Nothing lost, nobody in"): real processes, real faults.

One real server (:class:`~tests.e2e_support.LiveServer`: uvicorn in a subprocess) with its
own redis-server and its append-only file (``appendfsync everysec``, Redis's default),
shared by the module. Each test injects one fault while replies stream and clients keep
sending, on several threads at once:

1. ``restart``: Redis stopped gracefully (SIGTERM) and started again;
2. ``kill9``: Redis SIGKILLed and started again from its AOF;
3. ``empty``: Redis stopped, its data deleted, started empty;
4. ``pause``: Redis SIGSTOPped for longer than the server's socket timeout (5 s), then
   SIGCONT;
5. ``appkill``: the server process SIGKILLed while a reply streams, started again.

The clients behave like the product's own. An API client posts with its own
``message_id`` and posts again with the same id until it gets its 202 (a 503, a refused
connection, or a 401 after which it signs in again); it reads answers with
``GET /api/threads/<id>`` only. A websocket tab behaves like ``chat/static/chat/app.js``:
one message at a time, a message is acknowledged by its ``user`` event (or any other
event of its run), unacknowledged ones are sent again (same id) after every reconnect, a ping every 5 s, reconnect with
backoff (and a new sign-in after 4401).

Threads: two API threads and two tabs; when the fault comes, one of each is idle (its
message answered) and the other is running (a reply streams); the ``appkill`` scenario
adds an orphan API thread (one message in flight, nothing after, only read with GET).

Verdict, from every thread's history (``GET /api/threads/<id>``): no lost user message,
none twice, each answered exactly once (the reply quotes it), every answer shown on its
tab (a ``done`` or a ``history`` event); no HTTP response or websocket handshake >= 500
other than a JSON 503 to a request made while Redis was away, no 1011 with Redis up;
every message answered within 30 s of the end of the fault. Time to recover: from the
end of the fault to the first message answered (``recover_s``), and per thread, from the
end of the fault (or from when the server took its message, if later) to that thread's
first answer (``slowest_thread_s``): both <= 5 s for the Redis faults; after a server
SIGKILL the bound is the run lock's TTL (20 s, ``RUN_LOCK_TTL_MS``) plus 2 s. A message
the server acknowledged may only be missing if Redis itself lost the write (at most the
last ~2 s before a SIGKILL with everysec): the client then sends it again with the same
id and it must be answered once; those are counted as ``redis_lost``.

Each test prints one line, e.g. ``fault=kill9 sent=16 lost=0 duplicated=0
recover_s=1.0 slowest_thread_s=2.6 ...`` (``pytest -s`` shows them, and the module
prints them all at its end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from agenticpal.redis_keys import RUN_LOCK_TTL_MS
from tests.e2e_support import CSRF_COOKIE, SESSION_COOKIE, LiveServer, asign_in, ws_connect

RECOVER_TARGET_S = 5.0  # the fault is over -> the first message answered
ANSWER_BOUND_S = 30.0  # the fault is over -> every message answered
DOWN_S = 2.0  # how long Redis stays away in the restart scenarios
PAUSE_S = 7.0  # longer than the server's Redis socket timeout (REDIS_SOCKET_TIMEOUT, 5 s)
POLL_S = 0.1  # how often the history of every thread is read
PING_S = 5.0  # the page's ping interval
SEND_DEADLINE_S = 45.0  # a client gives up re-sending after this long
RUN_LOCK_TTL_S = RUN_LOCK_TTL_MS / 1000  # how long a dead process's run lock outlives it
# A message is acknowledged before Redis has fsynced it (everysec); Redis postpones the
# write itself at most 2 s when an fsync is slow. Only those can be lost by a SIGKILL.
EVERYSEC_WINDOW_S = 2.0

ACCESS_OK = re.compile(r'HTTP/1\.1" [1-4]\d\d|WebSocket /ws/|connection (open|closed)')
RESULTS: list[str] = []


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with LiveServer(redis_aof=True) as server:
        yield server
        if RESULTS:
            print("\n" + "\n".join(RESULTS))


# --- what is sent and what happened -------------------------------------------------


@dataclass
class Msg:
    thread: str
    text: str
    mid: str
    via: str  # "api" or "ws"
    phase: str  # "before", "during" or "after"
    accepted_at: float | None = None  # its 202 (api) or its "user" event (ws)
    answered_at: float | None = None  # first seen answered (history or "done")
    first_try: float | None = None
    last_try: float | None = None  # ws: its latest frame (a resend after a reconnect)
    sends: int = 0
    shown: bool = False  # ws: its answer reached the tab ("done", or a "history" event)


@dataclass
class Call:
    what: str
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    detail: str = ""


@dataclass
class Fault:
    """One scenario's clock and records."""

    name: str
    redis_fault: bool  # Redis is what fails: a 503 is right while it is away
    t_fault: float = 0.0
    t_back: float = 0.0
    calls: list[Call] = field(default_factory=list)
    closes: list[tuple[float, int | None, str]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # "error" events on a tab
    started: asyncio.Event = field(default_factory=asyncio.Event)
    back: asyncio.Event = field(default_factory=asyncio.Event)

    def begin(self) -> None:
        self.t_fault = time.monotonic()
        self.started.set()

    def end(self) -> None:
        self.t_back = time.monotonic()
        self.back.set()

    def overlaps(self, start: float, end: float) -> bool:
        """A call from ``start`` to ``end`` was in flight at some moment of the fault (one
        sent just before Redis went away can meet it on its way)."""
        return (
            self.started.is_set()
            and end >= self.t_fault
            and not (self.back.is_set() and start >= self.t_back)
        )

    def down(self, at: float) -> bool:
        """``at`` falls inside the fault (before it ended)."""
        return (
            self.started.is_set()
            and self.t_fault <= at
            and not (self.back.is_set() and at >= self.t_back)
        )


def cookie(client: httpx.AsyncClient, name: str) -> str | None:
    """The newest value of a cookie (a new sign-in may leave two in the jar)."""
    values = [c.value for c in client.cookies.jar if c.name == name]
    return values[-1] if values else None


class Account:
    """One signed-in user and its HTTP client; every call is recorded."""

    def __init__(self, live: LiveServer, email: str, fault: Fault) -> None:
        self.live, self.email, self.fault = live, email, fault
        self.client = httpx.AsyncClient(base_url=live.url, timeout=40)
        self.generation = 0  # sign-ins so far
        self._signing = asyncio.Lock()

    async def sign_in(self, seen_generation: int | None = None) -> None:
        """Sign in (again, unless another caller did since ``seen_generation``)."""
        async with self._signing:
            if seen_generation is not None and seen_generation != self.generation:
                return
            # Not ``manage.py local_login_url``: its Python start-up (seconds under load)
            # would count as the server's recovery time after Redis lost the sessions.
            url = await asyncio.to_thread(self.live.quick_login_url, self.email)
            await asign_in(self.client, url)  # the new cookies replace the old ones
            self.generation += 1

    @property
    def session(self) -> str | None:
        """The session cookie; None once the server deleted it (its session was gone):
        the socket is then closed with 4401 and the tab signs in again."""
        return cookie(self.client, SESSION_COOKIE)

    async def call(self, method: str, url: str, **kwargs) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            self.fault.calls.append(
                Call(f"{method} {url}", started, time.monotonic(), None, repr(exc))
            )
            return None
        detail = response.text[:300] if response.status_code >= 500 else ""
        self.fault.calls.append(
            Call(f"{method} {url}", started, time.monotonic(), response.status_code, detail)
        )
        return response

    async def post_until_accepted(self, msg: Msg) -> None:
        """POST ``msg`` with its id until a 202, as a client that keeps what it typed."""
        deadline = time.monotonic() + SEND_DEADLINE_S
        delay = 0.25
        while True:
            msg.sends += 1
            msg.first_try = msg.first_try or time.monotonic()
            generation = self.generation
            body = {"message": msg.text, "thread_id": msg.thread, "message_id": msg.mid}
            headers = {"X-CSRFToken": cookie(self.client, CSRF_COOKIE) or ""}
            response = await self.call("POST", "/api/chat", json=body, headers=headers)
            if response is not None and response.status_code == 202:
                assert response.json()["message_id"] == msg.mid
                msg.accepted_at = msg.accepted_at or time.monotonic()
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{msg.mid} never accepted; last answer {response!r}")
            if response is not None and response.status_code == 401:
                await self.sign_in(generation)  # the session went with Redis's data
                continue
            if response is not None and response.status_code != 503:
                raise AssertionError(
                    f"POST /api/chat answered {response.status_code}: {response.text[:300]}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


class Tab:
    """A browser tab on one thread, as chat/static/chat/app.js behaves."""

    def __init__(self, harness: Harness, thread: str) -> None:
        self.h, self.thread = harness, thread
        self.queue: list[Msg] = []  # typed, not sent yet
        self.unacked: dict[str, dict] = {}  # id -> frame, sent but no "user" event yet
        self.streaming = asyncio.Event()  # a token of the current reply arrived
        self.stopped: str | None = None  # why it stopped for good (a close code it cannot fix)
        self.journal: list[str] = []  # what the tab saw, for the failure report
        self.task: asyncio.Task | None = None

    def send(self, msg: Msg) -> None:
        self.queue.append(msg)

    async def run(self) -> None:
        try:
            await self._run()
        except Exception as exc:  # a fault of this test's client: report it, do not hide it
            self.stopped = f"the tab failed: {exc!r}"
            self.note(self.stopped)
            raise

    async def _run(self) -> None:
        attempt = 0
        fault = self.h.fault
        while True:
            code: int | None = None
            reason = ""
            generation = self.h.account.generation
            try:
                async with ws_connect(
                    self.h.live, self.thread, self.h.account.session, open_timeout=10
                ) as ws:
                    attempt = 0
                    self.note("open")
                    try:
                        await self._serve(ws)
                    finally:
                        code, reason = ws.close_code, ws.close_reason or ""
            except InvalidStatus as exc:
                status = exc.response.status_code
                now = time.monotonic()
                fault.calls.append(Call("WS handshake", now, now, status, str(exc)[:300]))
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
                reason = reason or repr(exc)
            fault.closes.append((time.monotonic(), code, reason))
            self.note(f"closed {code} {reason[:80]}")
            if code == 4401:
                await self.h.account.sign_in(generation)
            elif code in (4400, 4403, 4410):
                self.stopped = f"closed with {code} ({reason})"
                return
            delay = min(10.0, 0.5 * 2**attempt) * (0.75 + random.random() * 0.5)
            attempt += 1
            await asyncio.sleep(delay)

    async def _serve(self, ws) -> None:
        first = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if first.get("type") != "history":
            raise AssertionError(f"first event {first}")
        for text, answers in turns(first["messages"]):  # answers the page shows from here
            msg = next((m for m in self.h.msgs if m.thread == self.thread and m.text == text), None)
            if msg is not None and answers:
                msg.shown = True
        for frame in list(self.unacked.values()):  # never acknowledged: send again
            self._count(frame["id"])
            await ws.send(json.dumps(frame))
        helpers = [asyncio.create_task(self._pinger(ws)), asyncio.create_task(self._sender(ws))]
        try:
            async for raw in ws:
                self._on_event(json.loads(raw))
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    def note(self, what: str) -> None:
        self.journal.append(f"{time.monotonic() - self.h.t0:6.2f}s {what}")

    def _count(self, mid: str) -> None:
        self.note(f"send {self.h.by_id[mid].text}")
        msg = self.h.by_id[mid]
        msg.sends += 1
        msg.first_try = msg.first_try or time.monotonic()
        msg.last_try = time.monotonic()

    async def _pinger(self, ws) -> None:
        while True:
            await asyncio.sleep(PING_S)
            await ws.send(json.dumps({"type": "ping"}))

    async def _sender(self, ws) -> None:
        while True:
            if self.queue and not self.unacked:  # one at a time, as the page
                msg = self.queue.pop(0)
                frame = {"type": "message", "message": msg.text, "id": msg.mid}
                self.unacked[msg.mid] = frame  # before the send: a close mid-send resends it
                self._count(msg.mid)
                await ws.send(json.dumps(frame))
            await asyncio.sleep(0.02)

    def _on_event(self, event: dict) -> None:
        kind, mid = event.get("type"), event.get("message_id")
        now = time.monotonic()
        msg = self.h.by_id.get(mid or "")
        if kind not in ("token", "pong"):
            self.note(f"{kind} {msg.text if msg else mid or ''}")
        if mid and kind in ("user", "token", "tool", "approval", "done", "cancelled"):
            # As app.js: an event of the message's run acknowledges it too (its "user"
            # event can be missed live while the socket re-subscribes after a restart).
            self.unacked.pop(mid, None)
            if msg is not None and msg.accepted_at is None:
                msg.accepted_at = now
        if kind == "user" and mid:
            self.streaming.clear()
        elif kind == "token":
            self.streaming.set()
        elif kind == "done" and msg is not None:
            msg.shown = True
            msg.answered_at = min(msg.answered_at or now, now)
        elif kind == "error":
            self.h.fault.errors.append(event)


class Harness:
    """Threads, clients and the history poller of one scenario."""

    def __init__(self, live: LiveServer, fault: Fault, *, api: int = 2, ws: int = 2) -> None:
        self.live, self.fault = live, fault
        self.t0 = time.monotonic()
        self.account = Account(live, f"fault-{fault.name}-{uuid.uuid4().hex[:6]}@localhost", fault)
        self.api_threads = [uuid.uuid4().hex for _ in range(api)]
        self.tabs = [Tab(self, uuid.uuid4().hex) for _ in range(ws)]
        self.orphans: list[str] = []  # API threads that get nothing after the fault
        self.msgs: list[Msg] = []
        self.by_id: dict[str, Msg] = {}
        self.wiped: list[Msg] = []  # gone with Redis's dataset (the "empty" scenario)
        self.redis_lost: list[Msg] = []
        self.histories: dict[str, list[dict]] = {}
        self.statuses: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task] = []
        self._poller: asyncio.Task | None = None

    @property
    def threads(self) -> list[str]:
        return [*self.api_threads, *self.orphans, *(t.thread for t in self.tabs)]

    async def __aenter__(self) -> Harness:
        await self.account.sign_in()
        for tab in self.tabs:
            tab.task = asyncio.create_task(tab.run())
        self._poller = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [t.task for t in self.tabs if t.task] + self._tasks
        tasks += [self._poller] if self._poller else []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.account.client.aclose()

    # --- sending --------------------------------------------------------------------

    def new(self, thread: str, phase: str, via: str) -> Msg:
        n = sum(1 for m in self.msgs if m.thread == thread)
        # Words the offline model reacts to ("before", "date", "email"...) stay out.
        text = f"probe {self.fault.name} {thread[:6]} n{n} {phase[0]} {uuid.uuid4().hex[:6]}"
        msg = Msg(thread, text, uuid.uuid4().hex, via, phase)
        self.msgs.append(msg)
        self.by_id[msg.mid] = msg
        return msg

    def post(self, thread: str, phase: str) -> asyncio.Task:
        """Queue a POST on ``thread`` (in order after the thread's earlier ones)."""
        msg = self.new(thread, phase, "api")
        lock = self._locks.setdefault(thread, asyncio.Lock())

        async def send() -> None:
            async with lock:
                await self.account.post_until_accepted(msg)

        task = asyncio.create_task(send())
        self._tasks.append(task)
        return task

    def type_in(self, tab: Tab, phase: str) -> Msg:
        msg = self.new(tab.thread, phase, "ws")
        tab.send(msg)
        return msg

    async def send_round(
        self,
        phase: str,
        *,
        wait: bool = True,
        api: list[str] | None = None,
        tabs: list[Tab] | None = None,
        within: float = 30.0,
    ) -> None:
        """One message on every thread (orphans excepted), or on those of ``api`` and
        ``tabs``; ``wait``: until all acknowledged."""
        tasks = [self.post(t, phase) for t in (self.api_threads if api is None else api)]
        typed = [self.type_in(tab, phase) for tab in (self.tabs if tabs is None else tabs)]
        if wait:
            await asyncio.gather(*tasks)
            await self.until(lambda: all(m.accepted_at for m in typed), within)

    async def until(self, condition: Callable[[], bool], within: float) -> bool:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def wait_tasks(self) -> None:
        """Every POST so far has had its 202 (failures surface here)."""
        await asyncio.gather(*self._tasks)

    # --- reading answers --------------------------------------------------------------

    async def read(self, thread: str) -> httpx.Response | None:
        response = await self.account.call("GET", f"/api/threads/{thread}")
        if response is not None and response.status_code == 200:
            body = response.json()
            self.histories[thread] = body["messages"]
            self.statuses[thread] = body["status"]
            now = time.monotonic()
            for text, answers in turns(body["messages"]):
                msg = next((m for m in self.msgs if m.thread == thread and m.text == text), None)
                if msg is not None and answers and msg.answered_at is None:
                    msg.answered_at = now
        return response

    async def _poll(self) -> None:
        while True:
            for thread in self.threads:
                await self.read(thread)
            await asyncio.sleep(POLL_S)

    def expected(self) -> list[Msg]:
        return [m for m in self.msgs if m not in self.wiped]

    async def wait_answered(self, within: float) -> bool:
        return await self.until(lambda: all(m.answered_at for m in self.expected()), within)

    async def resend_lost(self) -> None:
        """Acknowledged, nowhere in the history, nothing queued on its thread: the client
        sends it again with the same id (what a client does that reconciles with the
        history; the page does it for what it never saw acknowledged)."""
        for msg in self.expected():
            if msg.answered_at or msg.accepted_at is None:
                continue
            await self.read(msg.thread)
            said = {text for text, _ in turns(self.histories.get(msg.thread, []))}
            if msg.text in said or self.statuses.get(msg.thread) == "running":
                continue
            self.redis_lost.append(msg)
            await self.account.post_until_accepted(msg)

    # --- the verdict ------------------------------------------------------------------

    async def verdict(self, *, recover_target: float | None = RECOVER_TARGET_S) -> dict:
        fault = self.fault
        unreadable = {}
        for thread in self.threads:
            self.histories.pop(thread, None)
            response = await self.read(thread)
            if response is None or response.status_code != 200:
                unreadable[thread] = response.text[:200] if response is not None else "no answer"
        lost, duplicated, unanswered, foreign, mismatched = [], [], [], [], []
        for thread in self.threads:
            said = turns(self.histories.get(thread, []))
            ours = {m.text: m for m in self.expected() if m.thread == thread}
            counts: dict[str, int] = {}
            for text, answers in said:
                counts[text] = counts.get(text, 0) + 1
                if text not in ours:
                    if not any(w.text == text for w in self.wiped):
                        foreign.append(text)
                    continue
                if len(answers) > 1:
                    duplicated.append(f"{text!r} answered {len(answers)} times")
                elif not answers:
                    unanswered.append(text)
                elif f"“{text}”" not in answers[0]:
                    mismatched.append((text, answers[0][:120]))
            for text, msg in ours.items():
                if counts.get(text, 0) == 0:
                    why = (
                        f"GET answered {unreadable[thread]}"
                        if thread in unreadable
                        else "never sent: the tab still waited for an acknowledgement"
                        if msg.sends == 0
                        else f"acknowledged: {msg.accepted_at is not None}, "
                        f"thread status {self.statuses.get(thread)}"
                    )
                    lost.append(f"{text!r} ({msg.via}; {why})")
                elif counts[text] > 1:
                    duplicated.append(f"{text!r} in the history {counts[text]} times")
        # No 5xx but a 503 to a request made while Redis was away (JSON, as promised).
        bad = []
        for call in fault.calls:
            if call.status is None or call.status < 500:
                continue
            allowed = (  # a websocket is accepted, then closed with 1011: never a 503
                call.status == 503
                and fault.redis_fault
                and fault.overlaps(call.started, call.ended)
                and call.what != "WS handshake"
                and "redis_unavailable" in call.detail
            )
            if not allowed:
                bad.append(call)
        closes_bad = [
            c for c in fault.closes if c[1] == 1011 and not (fault.redis_fault and fault.down(c[0]))
        ]
        back = fault.t_back
        answered_after = [
            m.answered_at - back for m in self.expected() if m.answered_at and m.answered_at >= back
        ]
        recover_s = min(answered_after) if answered_after else float("inf")
        all_answered_s = max(answered_after) if answered_after else float("inf")
        # Each thread on its own: how long it answered nothing while the server had one of
        # its messages (from the end of the fault, or from when the server took the
        # message: its 202, its latest frame); the client's own delays (signing in
        # again, reconnect backoff) left out.
        per_thread: dict[str, float] = {}
        for thread in self.threads:
            waiting = [
                m for m in self.expected()
                if m.thread == thread and not (m.answered_at and m.answered_at < back)
            ]  # fmt: skip
            since = [t for m in waiting if (t := m.accepted_at if m.via == "api" else m.last_try)]
            if not since:
                continue
            start = max(back, min(since))
            answers = [m.answered_at for m in waiting if m.answered_at and m.answered_at >= start]
            per_thread[thread] = (min(answers) if answers else float("inf")) - start
        slowest_thread = max(per_thread, key=per_thread.__getitem__, default="")
        slowest_thread_s = per_thread.get(slowest_thread, 0.0)
        refused = sum(1 for c in fault.calls if c.status == 503)
        unreachable = sum(1 for c in fault.calls if c.status is None)
        in_flight = sum(
            1 for m in self.msgs if m.accepted_at and m.accepted_at < fault.t_fault
            and not (m.answered_at and m.answered_at < fault.t_fault)
        )  # fmt: skip
        resent = sum(max(0, m.sends - 1) for m in self.msgs)  # sent again, same id
        not_shown = [m.text for m in self.expected() if m.via == "ws" and not m.shown]
        figures = {
            "fault": fault.name,
            "sent": len(self.msgs),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "recover_s": round(recover_s, 1),
            "slowest_thread_s": round(slowest_thread_s, 1),
            "all_answered_s": round(all_answered_s, 1),
            "in_flight": in_flight,
            "resent": resent,
            "redis_lost": len(self.redis_lost),
            "wiped": len(self.wiped),
            "http_503": refused,
            "unreachable": unreachable,
            "ws_1011": sum(1 for c in fault.closes if c[1] == 1011),
            "ws_not_shown": len(not_shown),
            "bad_5xx": len(bad),
            "slowest_post_s": round(
                max(
                    (c.ended - c.started for c in fault.calls if c.what.startswith("POST")),
                    default=0,
                ),
                1,
            ),
            "unreadable_threads": len(unreadable),
        }
        line = " ".join(f"{k}={v}" for k, v in figures.items())
        print(line)
        RESULTS.append(line)
        log = "\n".join(  # the access log's 1xx-4xx lines left out
            row for row in self.live.log_tail(200_000).splitlines() if not ACCESS_OK.search(row)
        )[-8000:]
        journals = "\n".join(
            f"--- tab on {tab.thread} ---\n" + "\n".join(tab.journal) for tab in self.tabs
        )
        context = f"{line}\n{journals}\n--- server log (tail) ---\n{log}"
        assert not bad, f"responses >= 500 outside a Redis outage: {bad}\n{context}"
        assert not closes_bad, f"1011 closes with Redis up: {closes_bad}\n{context}"
        assert not fault.errors, f"error events on a tab: {fault.errors}\n{context}"
        assert not lost, f"lost: {lost}\n{context}"
        assert not duplicated, f"duplicated: {duplicated}\n{context}"
        assert not unanswered, f"unanswered: {unanswered}\n{context}"
        assert not mismatched, f"replies that answer something else: {mismatched}\n{context}"
        assert not foreign, f"user messages nobody sent: {foreign}\n{context}"
        assert not [t.stopped for t in self.tabs if t.stopped], context
        assert not not_shown, (
            f"answers a tab never showed (no done, no history): {not_shown}\n{context}"
        )
        for msg in self.redis_lost:  # only what Redis may lose: the last writes before a SIGKILL
            assert fault.name == "kill9" and msg.accepted_at is not None, context
            assert 0 <= fault.t_fault - msg.accepted_at <= EVERYSEC_WINDOW_S, (
                f"{msg.text!r} was acknowledged {fault.t_fault - msg.accepted_at:.1f}s before the "
                f"crash and lost\n{context}"
            )
        if recover_target is not None:
            assert recover_s <= recover_target, f"recovery took {recover_s:.1f}s\n{context}"
            assert slowest_thread_s <= recover_target, (
                f"thread {slowest_thread} answered nothing for {slowest_thread_s:.1f}s after the "
                f"fault\n{context}"
            )
        return figures


def turns(messages: list[dict]) -> list[tuple[str, list[str]]]:
    """``[(user text, [assistant replies until the next user message])]``."""
    out: list[tuple[str, list[str]]] = []
    for item in messages:
        if item.get("role") == "user":
            out.append((item["content"], []))
        elif item.get("role") == "assistant" and out:
            out[-1][1].append(item["content"])
    return out


# --- the faults -------------------------------------------------------------------------


async def in_thread(fn: Callable[[], object]) -> None:
    await asyncio.to_thread(fn)


def redis_pid(live: LiveServer) -> int:
    assert live.redis is not None and live.redis.process is not None
    return live.redis.process.pid


async def scenario(
    live: LiveServer,
    name: str,
    inject: Callable[[], Awaitable[None]],
    restore: Callable[[], Awaitable[None]],
    *,
    redis_fault: bool = True,
    settle_before: bool = False,
    fault_seconds: float = DOWN_S,
    orphans: int = 0,
    bound: float = ANSWER_BOUND_S,
    recover_target: float | None = RECOVER_TARGET_S,
    after_fault: Callable[[Harness], Awaitable[None]] | None = None,
    check: Callable[[Harness], Awaitable[None]] | None = None,
) -> dict:
    """Before (replies streaming, or all answered with ``settle_before``), the fault,
    messages during it, the end of it, messages after; then the verdict.

    ``orphans``: API threads that get one message before the fault and nothing after:
    only ``GET /api/threads/<id>`` reads them."""
    fault = Fault(name, redis_fault)
    async with Harness(live, fault) as h:
        h.orphans = [uuid.uuid4().hex for _ in range(orphans)]
        # The first API thread and the first tab are idle when the fault comes (their
        # message answered), the others are running (a reply streams on the second tab);
        # ``settle_before``: all idle.
        await h.send_round("before", api=h.api_threads[:1], tabs=h.tabs[:1])
        assert await h.wait_answered(30), "the first messages were not answered"
        await h.send_round("before", api=h.api_threads[1:] + h.orphans, tabs=h.tabs[1:])
        if settle_before:
            assert await h.wait_answered(30), "the first round was not answered"
        else:
            streaming = await h.until(lambda: h.tabs[-1].streaming.is_set(), 15)
            assert streaming, "no reply was streaming"
        fault.begin()
        try:
            await inject()
            await h.send_round("during", wait=False)
            await asyncio.sleep(fault_seconds)
        finally:
            await restore()
        fault.end()
        if after_fault is not None:
            await after_fault(h)

        def left() -> float:  # every message is answered by t_back + bound
            return max(1.0, fault.t_back + bound - time.monotonic())

        await h.send_round("after", within=left())
        await h.send_round("after", within=left())
        await h.wait_tasks()
        await h.wait_answered(left())
        await h.resend_lost()
        await h.wait_answered(10)
        # An event a tab missed live (its socket's subscription is re-established a moment
        # after Redis is back) reaches it at a later ping's catch-up, which sends what is
        # older than a second: up to PING_S + 1 s after the event, as the page sees it.
        await h.until(
            lambda: all(m.shown for m in h.expected() if m.via == "ws" and m.answered_at),
            2 * PING_S,
        )
        figures = await h.verdict(recover_target=recover_target)
        if check is not None:
            await check(h)
        return figures


async def test_graceful_redis_restart(live: LiveServer) -> None:
    async def stop() -> None:
        await in_thread(live.redis.stop)  # SIGTERM: Redis writes its AOF out and exits

    await scenario(live, "restart", stop, lambda: in_thread(live.redis.start))


async def test_redis_kill9_and_restart_from_the_aof(live: LiveServer) -> None:
    async def kill() -> None:
        os.kill(redis_pid(live), signal.SIGKILL)
        await in_thread(live.redis.process.wait)
        await in_thread(live.redis.stop)  # forget the dead process

    await scenario(live, "kill9", kill, lambda: in_thread(live.redis.start))


async def test_redis_restarted_with_an_empty_dataset(live: LiveServer) -> None:
    """Everything from before is gone with the data (the first round, the sessions, an
    old thread that gets nothing new); new messages are answered, the old thread is
    refused cleanly (JSON, no 500)."""

    async def wipe() -> None:
        await in_thread(live.redis.stop)
        data = live.redis.data_dir
        shutil.rmtree(data / "appendonlydir", ignore_errors=True)
        for name in ("appendonly.aof", "dump.rdb"):
            with contextlib.suppress(FileNotFoundError):
                (data / name).unlink()

    gone: list[str] = []

    async def forget_old(h: Harness) -> None:
        h.wiped = [m for m in h.msgs if m.phase == "before"]
        gone.extend(h.orphans)
        h.orphans = []

    async def old_thread_refused(h: Harness) -> None:
        for thread in gone:
            response = await h.account.call("GET", f"/api/threads/{thread}")
            assert response is not None and response.status_code in (403, 404), response
            assert response.json()["error"], response.text
            print(f"fault=empty old_thread_status={response.status_code} {response.text}")

    await scenario(
        live,
        "empty",
        wipe,
        lambda: in_thread(live.redis.start),
        settle_before=True,
        orphans=1,
        after_fault=forget_old,
        check=old_thread_refused,
    )


async def test_redis_paused_longer_than_the_socket_timeout(live: LiveServer) -> None:
    async def pause() -> None:
        os.kill(redis_pid(live), signal.SIGSTOP)

    async def resume() -> None:
        os.kill(redis_pid(live), signal.SIGCONT)

    await scenario(live, "pause", pause, resume, fault_seconds=PAUSE_S)


async def test_server_killed_mid_reply(live: LiveServer) -> None:
    """The process dies holding the run locks of the replies it streams: the next process
    takes their queues over once those locks expire (RUN_LOCK_TTL_MS, renewed every
    second: at most 20 s after the kill). An orphan thread (one message in flight, no
    socket, nothing sent after) is only read with GET."""

    async def kill() -> None:
        assert live.process is not None
        os.killpg(live.process.pid, signal.SIGKILL)
        await in_thread(live.process.wait)

    async def start() -> None:
        await in_thread(lambda: live.restart_app(kill=True))  # already dead: starts it

    await scenario(
        live,
        "appkill",
        kill,
        start,
        redis_fault=False,
        fault_seconds=1.0,
        orphans=1,
        bound=RUN_LOCK_TTL_S + 15,
        recover_target=RUN_LOCK_TTL_S + 2,
    )
