"""Chat websocket benchmark: many concurrent chats against one real server process.

    .venv/bin/python bench/chat_ws.py [--clients 200] [--messages 3] [--idle 1000]

Starts its own redis-server and one uvicorn process (the offline model, DEBUG on, a
temporary SQLite database; see tests/e2e_support.py), signs in ``--sessions`` browser
sessions through one-time local sign-in URLs, then:

1. ``--clients`` websocket clients connect at once, each to a thread of its own, and
   each sends ``--messages`` messages one after the other (the next after ``done``).
   Reported: connections that failed, ``done`` events seen, messages lost (read back
   from every thread's history afterwards: a sent message missing there, or without
   an answer after it, is lost), time to first token and to ``done`` (p50/p99, from
   sending the frame), and the server's RSS.
2. ``--idle`` websockets are opened (each on a new thread, after its ``history``
   event) and held open; the server's RSS is read while they are all open.

Targets (issue: offline model, one server process): 0 failed, 0 lost, p99 time to
first token <= 100 ms with 200 clients; 1,000 idle sockets with RSS <= 400 MB.
The exit status is 1 when a target is missed.

The offline model waits ``AGENTICPAL_OFFLINE_WORD_DELAY`` (0.02 s) between words, so
time to ``done`` is mostly that delay times the words of the reply; time to first
token is what measures the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from tests.e2e_support import LiveServer, aiter_sse, asign_in, ws_connect

TARGET_TTFT_P99_MS = 100.0
TARGET_IDLE_RSS_MB = 400.0
PROMPTS = [
    "Hello, my name is Ada.",
    "Can you help me plan my week?",
    "What did I tell you earlier?",
    "Thanks, that is all for now.",
]


@dataclass
class Results:
    connected: int = 0
    failed: list[str] = field(default_factory=list)
    sent: int = 0
    done: int = 0
    errors: list[str] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    ttd_ms: list[float] = field(default_factory=list)
    ttft_first_ms: list[float] = field(default_factory=list)  # each client's first message
    threads: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (cookie, sent)
    stored: int = 0  # answered user messages found in the threads' histories afterwards
    stalled: list[str] = field(default_factory=list)  # threads whose socket missed a done

    @property
    def lost(self) -> int:
        """Sent messages that are not in their thread's history with an answer."""
        return self.sent - self.stored


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (the smallest value with ``pct`` % at or below it)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def raise_fd_limit(needed: int) -> int:
    """Raise the soft open-files limit (inherited by the server) to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else max(soft, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    if soft < needed:
        print(
            f"warning: the open-files limit is {soft} (hard {hard}) but about {needed} are "
            "needed; raise it (ulimit -n) or lower --idle/--clients.",
            file=sys.stderr,
        )
    return soft


async def mint_sessions(server: LiveServer, count: int) -> list[str]:
    """``count`` signed-in session cookies: one Django start-up mints the sign-in URLs,
    then each is followed by its own cookie jar (a few at a time)."""
    urls = await asyncio.to_thread(server.login_urls, count)
    limit = asyncio.Semaphore(16)

    async def one(url: str) -> str:
        async with limit, httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asign_in(client, url, csrf=False)

    # The first sign-in creates the local user; racing it would create it twice.
    first = await one(urls[0])
    return [first, *await asyncio.gather(*(one(u) for u in urls[1:]))]


async def chat_client(
    server: LiveServer,
    cookie: str,
    messages: int,
    start: asyncio.Event,
    results: Results,
    wait_seconds: float,
) -> None:
    await start.wait()
    thread_id = uuid.uuid4().hex
    try:
        ws_cm = ws_connect(server, thread_id, cookie, open_timeout=30, max_size=2**22)
        ws = await ws_cm.__aenter__()
    except Exception as exc:
        results.failed.append(f"connect: {exc!r}")
        return
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if first.get("type") != "history":
            results.failed.append(f"first event was {first.get('type')!r}, not history")
            return
        results.connected += 1
        for i in range(messages):
            text = PROMPTS[i % len(PROMPTS)]
            sent_at = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "message": text}))
            results.sent += 1
            results.threads[thread_id] = (cookie, i + 1)
            first_token = None
            seen: list[str] = []
            try:
                async with asyncio.timeout(wait_seconds):
                    while True:
                        event = json.loads(await ws.recv())
                        kind = event.get("type")
                        seen.append(kind)
                        if kind == "token" and first_token is None:
                            first_token = time.perf_counter()
                            results.ttft_ms.append((first_token - sent_at) * 1000)
                            if i == 0:
                                results.ttft_first_ms.append((first_token - sent_at) * 1000)
                        elif kind == "done":
                            results.done += 1
                            results.ttd_ms.append((time.perf_counter() - sent_at) * 1000)
                            break
                        elif kind in {"error", "cancelled"}:
                            results.errors.append(f"{kind}: {event.get('reason', '')}")
                            break
            except TimeoutError:
                results.stalled.append(thread_id)
                tokens = seen.count("token")
                others = [k for k in seen if k != "token"]
                results.errors.append(
                    f"thread {thread_id} message {i + 1}: no done within {wait_seconds:.0f}s "
                    f"(saw {tokens} tokens and {others})"
                )
                return
    except Exception as exc:
        results.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await ws_cm.__aexit__(None, None, None)


async def count_stored(server: LiveServer, results: Results) -> None:
    """Read every thread back (``GET /api/threads/<id>``, from the checkpoints) and count
    the user messages that are there with an answer after them."""
    limit = asyncio.Semaphore(16)

    async def one(thread_id: str, cookie: str) -> int:
        async with limit, httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            client.cookies.set("sessionid", cookie)
            response = await client.get(f"/api/threads/{thread_id}")
            if response.status_code != 200:
                results.errors.append(f"history of {thread_id}: HTTP {response.status_code}")
                return 0
            roles = [m["role"] for m in response.json()["messages"] if m["role"] != "tool"]
            return sum(
                1
                for i, role in enumerate(roles)
                if role == "user" and i + 1 < len(roles) and roles[i + 1] == "assistant"
            )

    counts = await asyncio.gather(*(one(t, c) for t, (c, _n) in results.threads.items()))
    results.stored = sum(counts)


async def replay_stalled(server: LiveServer, results: Results) -> list[str]:
    """For each thread whose socket waited in vain for ``done``: the event types its
    Redis Stream holds (read over SSE from the start), to tell a run that never
    finished from events that were published but never reached the socket."""
    out = []
    for thread_id in results.stalled[:5]:
        cookie, _sent = results.threads[thread_id]
        kinds: list[str] = []
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            client.cookies.set("sessionid", cookie)
            url = f"/api/chat/stream?thread_id={thread_id}"
            with contextlib.suppress(httpx.TimeoutException, TimeoutError):
                async with (
                    asyncio.timeout(3),
                    client.stream("GET", url, headers={"Last-Event-ID": "0-0"}) as response,
                ):
                    async for message in aiter_sse(response.aiter_lines()):
                        kinds.append(json.loads(message.data).get("type", message.event))
        summary = ", ".join(f"{k} x{kinds.count(k)}" for k in dict.fromkeys(kinds))
        out.append(f"thread {thread_id} stream holds: {summary or 'nothing'}")
    if results.stalled:
        # Is the run still alive (its lock is renewed) and is its message still queued?
        code = (
            "from agenticpal.redis_clients import get_client\n"
            "from sessions_redis import keys\n"
            "r = get_client('sessions')\n"
            f"for t in {results.stalled[:5]!r}:\n"
            "    print(t, 'run lock ttl ms', r.pttl(keys.run_lock_key(t)),"
            " 'queued', r.llen(keys.pending_message_key(t)))\n"
        )
        found = await asyncio.to_thread(server.manage, "shell", "-c", code)
        out += (found.stdout + found.stderr).strip().splitlines()
    return out


async def open_idle(
    server: LiveServer, cookies: list[str], count: int, stack: contextlib.AsyncExitStack
) -> tuple[int, list[str]]:
    """Open ``count`` sockets (a few handshakes at a time) and keep them in ``stack``."""
    limit = asyncio.Semaphore(50)
    opened = 0
    failed: list[str] = []

    async def one(i: int) -> None:
        nonlocal opened
        async with limit:
            try:
                cookie = cookies[i % len(cookies)]
                socket = ws_connect(server, uuid.uuid4().hex, cookie, open_timeout=60)
                ws = await stack.enter_async_context(socket)
                first = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if first.get("type") != "history":
                    raise RuntimeError(f"first event {first.get('type')!r}")
                opened += 1
            except Exception as exc:
                failed.append(repr(exc))

    await asyncio.gather(*(one(i) for i in range(count)))
    return opened, failed


def mb(kb: int) -> float:
    return kb / 1024


async def run(args: argparse.Namespace) -> int:
    fd_limit = raise_fd_limit(2 * (args.clients + args.idle) + 256)
    with LiveServer(app=args.app) as server:
        print(f"server pid {server.pid} on {server.url}; open-files limit {fd_limit}", flush=True)
        t0 = time.perf_counter()
        cookies = await mint_sessions(server, args.sessions or args.clients)
        print(f"{len(cookies)} sessions signed in in {time.perf_counter() - t0:.1f}s", flush=True)
        rss_start = server.rss_kb()

        results = Results()
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(
                chat_client(
                    server, cookies[i % len(cookies)], args.messages, start, results, args.wait
                )
            )
            for i in range(args.clients)
        ]
        await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        cpu0 = server.cpu_seconds()
        start.set()
        await asyncio.gather(*tasks)
        chat_seconds = time.perf_counter() - t0
        chat_cpu = server.cpu_seconds() - cpu0
        rss_chat = server.rss_kb()
        print(f"chat phase: {chat_seconds:.1f}s", flush=True)
        await count_stored(server, results)
        stalled = await replay_stalled(server, results)
        if args.log:
            shutil.copyfile(server.log_path, args.log)

        server_warnings = [
            line
            for line in server.log_path.read_text(errors="replace").splitlines()
            if line.startswith(("WARNING", "ERROR", "CRITICAL"))
        ]
        idle_opened, idle_failed, rss_idle = 0, [], 0
        if args.idle:
            async with contextlib.AsyncExitStack() as stack:
                t0 = time.perf_counter()
                idle_opened, idle_failed = await open_idle(server, cookies, args.idle, stack)
                await asyncio.sleep(2)
                rss_idle = server.rss_kb()
                print(f"idle phase: opened in {time.perf_counter() - t0:.1f}s", flush=True)

    ttft_p99 = percentile(results.ttft_ms, 99)
    later = results.ttft_ms.copy()
    for value in results.ttft_first_ms:
        later.remove(value)
    ok_chat = not results.failed and results.lost == 0 and results.done == results.sent
    ok_ttft = ttft_p99 <= TARGET_TTFT_P99_MS
    ok_idle = not args.idle or (not idle_failed and mb(rss_idle) <= TARGET_IDLE_RSS_MB)

    def mark(ok: bool) -> str:
        return "yes" if ok else "**MISSED**"

    rows = [
        ("Concurrent chat clients", f"{args.clients} ({args.messages} messages each)", ""),
        ("Connections OK / failed", f"{results.connected} / {len(results.failed)}",
         f"0 failed: {mark(not results.failed)}"),
        ("Messages sent / done seen / stored / lost",
         f"{results.sent} / {results.done} / {results.stored} / {results.lost}",
         f"0 lost: {mark(results.lost == 0)}"),
        ("Time to first token p50 / p99",
         f"{percentile(results.ttft_ms, 50):.1f} / {ttft_p99:.1f} ms",
         f"p99 <= {TARGET_TTFT_P99_MS:.0f} ms: {mark(ok_ttft)}"),
        ("  first message of each client (after the connection burst)",
         f"{percentile(results.ttft_first_ms, 50):.1f} / "
         f"{percentile(results.ttft_first_ms, 99):.1f} ms", ""),
        ("  later messages",
         f"{percentile(later, 50):.1f} / {percentile(later, 99):.1f} ms", ""),
        ("Time to done p50 / p99",
         f"{percentile(results.ttd_ms, 50):.0f} / {percentile(results.ttd_ms, 99):.0f} ms", ""),
        ("Chat phase wall time / server CPU",
         f"{chat_seconds:.1f} s / {chat_cpu:.1f} s ({100 * chat_cpu / chat_seconds:.0f}% of a core)",
         ""),
        ("Server RSS: idle start / after chats", f"{mb(rss_start):.0f} / {mb(rss_chat):.0f} MB", ""),
    ]  # fmt: skip
    if args.idle:
        rows.append(
            (f"Idle websockets held (of {args.idle})", f"{idle_opened} ({len(idle_failed)} failed)",
             f"all open: {mark(not idle_failed)}")
        )  # fmt: skip
        rows.append(
            ("Server RSS with the idle sockets open", f"{mb(rss_idle):.0f} MB",
             f"<= {TARGET_IDLE_RSS_MB:.0f} MB: {mark(mb(rss_idle) <= TARGET_IDLE_RSS_MB)}")
        )  # fmt: skip

    print("\n| Measure | Result | Target |\n|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    for label, problems in (
        ("failed connections", results.failed),
        ("errors", results.errors),
        ("failed idle sockets", idle_failed),
        ("server log warnings (chat phase)", server_warnings),
        ("stalled threads replayed", stalled),
    ):
        if problems:
            print(f"\n{len(problems)} {label}, first: {problems[:12]}", file=sys.stderr)
    return 0 if ok_chat and ok_ttft and ok_idle else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent chat clients")
    parser.add_argument("--messages", type=int, default=3, help="messages per chat client")
    parser.add_argument("--idle", type=int, default=1000, help="idle sockets to hold (0: skip)")
    parser.add_argument(
        "--wait", type=float, default=120, help="seconds to wait for a message's done event"
    )
    parser.add_argument("--log", help="copy the server's log (after the chat phase) to this file")
    parser.add_argument(
        "--app",
        default="agenticpal.asgi:application",
        help="the ASGI application uvicorn serves (to measure a variant)",
    )
    parser.add_argument(
        "--sessions", type=int, default=0, help="signed-in sessions to share (default: one each)"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop  # the client side should not be what limits the measurement

        return uvloop.run(run(args))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
