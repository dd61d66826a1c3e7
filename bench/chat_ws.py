"""Chat websocket benchmark: many concurrent chats against one real server.

    .venv/bin/python bench/chat_ws.py [--clients 200] [--messages 3] [--idle 1000]
                                      [--paced | --burst | --people] [--think 3] [--seed 1]
                                      [--profile stacks.txt] [--workers 1,2] [--repeat 3]

Starts its own redis-server and a uvicorn server (the offline model; see
tests/e2e_support.py; ``--workers``: that many worker processes, or each count of a list
in turn, compared at the end), runs the chat scenarios (all by default), then holds ``--idle``
sockets open. Reports failed connections, lost messages, time to first token and to
``done``, server CPU (per message, against the graph alone) and RSS, the Redis commands
per message, with ``--profile`` the server's CPU by area (py-spy), and which targets
each scenario meets; the exit status is 1 when one is missed. Scenarios, targets and
results: the README's "Chat websocket benchmark" section.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from tests.e2e_support import LiveServer, aiter_sse, process_cpu_seconds, ws_connect

SCENARIOS = ("people", "paced", "burst")
SERVED_APP = "agenticpal.serve:asgi_application"  # a factory: what make run's workers serve
TARGET_TTFT_P99_MS = 100.0
TARGET_IDLE_RSS_MB = 400.0
IDLE_HOLD_S = 10.0  # idle sockets held this long before their RSS is read
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
    done_at: list[float] = field(default_factory=list)  # perf_counter() of each done

    @property
    def lost(self) -> int:
        """Sent messages that are not in their thread's history with an answer."""
        return self.sent - self.stored

    def steady_per_s(self) -> float:
        """Messages done per second between the 10th and the 90th percent of them: the
        rate under sustained load, without the ramp (sockets opening) and the tail (the
        last clients' replies streaming word by word while the CPUs wait)."""
        at = sorted(self.done_at)
        if len(at) < 10:
            return float("nan")
        first, last = len(at) // 10, len(at) * 9 // 10
        span = at[last] - at[first]
        return (last - first) / span if span > 0 else float("nan")


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


READ_WORDS_PER_SECOND = 250 / 60  # an adult reading a screen: about 250 words a minute
TYPE_CHARS_PER_SECOND = 200 / 60  # typing at 40 words (200 characters) a minute


@dataclass
class Pacing:
    """When a client sends: ``None`` for the burst scenario (at once, back to back).

    ``people``: the next message comes after the time a person needs to read the reply
    and type the next message (both x0.5-1.5 at random); otherwise 1-3 s after ``done``.
    """

    spread: float  # the first message comes within this many seconds of all sockets open
    rng: random.Random
    people: bool = False
    all_open: asyncio.Event = field(default_factory=asyncio.Event)

    def first_delay(self) -> float:
        return self.rng.uniform(0, self.spread)

    def next_delay(self, reply: str, text: str) -> float:
        if not self.people:
            return self.rng.uniform(1.0, 3.0)
        read = len(reply.split()) / READ_WORDS_PER_SECOND
        return (read + len(text) / TYPE_CHARS_PER_SECOND) * self.rng.uniform(0.5, 1.5)


class OpenCount:
    """Sets ``event`` once ``total`` clients have connected or failed."""

    def __init__(self, total: int, event: asyncio.Event | None) -> None:
        self.left, self.event = total, event

    def one(self) -> None:
        self.left -= 1
        if self.left <= 0 and self.event is not None:
            self.event.set()


async def chat_client(
    server: LiveServer,
    cookie: str,
    messages: int,
    start: asyncio.Event,
    results: Results,
    wait_seconds: float,
    pacing: Pacing | None = None,
    opened: OpenCount | None = None,
) -> None:
    await start.wait()
    counted = False

    def count_open() -> None:
        nonlocal counted
        if opened is not None and not counted:
            counted = True
            opened.one()

    try:
        await _chat(server, cookie, messages, results, wait_seconds, pacing, count_open)
    finally:
        count_open()


async def _chat(server, cookie, messages, results, wait_seconds, pacing, count_open) -> None:
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
        count_open()
        if pacing is not None:
            await pacing.all_open.wait()
        reply = ""
        for i in range(messages):
            text = PROMPTS[i % len(PROMPTS)]
            if pacing is not None:
                delay = pacing.first_delay() if i == 0 else pacing.next_delay(reply, text)
                await asyncio.sleep(delay)
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
                            reply = event.get("content") or ""
                            results.done += 1
                            results.done_at.append(time.perf_counter())
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
            "from agenticpal import redis_keys as keys\n"
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


GRAPH_ALONE = """
import asyncio, time, uuid
from langgraph.checkpoint.memory import InMemorySaver
from chat.graph import build_graph, run_config, stream_turn
from chat.offline_model import OfflineChatModel
from agenticpal.serve import freeze_heap

async def main():
    graph = build_graph(OfflineChatModel(word_delay=0), InMemorySaver())
    async def turn(i):
        config = run_config(f"t{i // 3}")  # three messages a thread, as the clients send
        started, first = time.process_time(), None
        async for kind, _ in stream_turn(graph, config, uuid.uuid4().hex, PROMPTS[i % 3]):
            if kind == "token" and first is None:
                first = time.process_time() - started
        return first
    for i in range(60):  # warm up
        await turn(i)
    freeze_heap()  # as a worker does after its warm-up (and its garbage collector's threshold)
    started = time.process_time()
    firsts = [await turn(i) for i in range(60, 660)]
    whole = (time.process_time() - started) / 600 * 1000
    # The same messages as the burst runs them: CLIENTS threads at once, MESSAGES each.
    async def together_turn(client, round_):
        config = run_config(f"together-{client}")
        async for _ in stream_turn(graph, config, uuid.uuid4().hex, PROMPTS[round_ % 3]):
            pass
    started = time.process_time()
    for round_ in range(MESSAGES):
        await asyncio.gather(*(together_turn(c, round_) for c in range(CLIENTS)))
    together = (time.process_time() - started) / (CLIENTS * MESSAGES) * 1000
    print(whole, sum(firsts) / len(firsts) * 1000, together)

asyncio.run(main())
"""


def graph_alone_ms(server: LiveServer, clients: int, messages: int) -> tuple[float, float, float]:
    """CPU ms per message of the graph alone, in one process with the project's settings:
    the offline model without its word delay, streamed as the runner streams it, on an
    ``InMemorySaver`` — no Redis, no sockets, no events. The floor under one message:
    (the whole message, until its first token, the whole message when ``clients``
    threads stream at once, ``messages`` rounds, as in the burst)."""
    code = f"PROMPTS = {PROMPTS!r}\nCLIENTS = {clients}\nMESSAGES = {messages}\n{GRAPH_ALONE}"
    found = server.manage("shell", "-c", code)
    try:
        whole, first, together = found.stdout.strip().splitlines()[-1].split()
        return float(whole), float(first), float(together)
    except (ValueError, IndexError):
        print(f"graph-alone measurement failed: {found.stderr[-2000:]}", file=sys.stderr)
        return float("nan"), float("nan"), float("nan")


# Where a sample of the server's CPU goes: the first rule whose pattern is in the stack
# (context: opening a socket, the checkpointer), else the innermost frame that matches
# a rule of the second list (a library's work counts where it is done; asyncio's
# frames count for whoever called them), else the event loop itself.
PROFILE_CONTEXT = [
    ("socket open (handshake, auth, history)",
     ("ChatConsumer.connect", "get_user (channels", "websocket_connect", "resolve_scope",
      "thread_handler (asgiref", "HttpToolsProtocol", "H11Protocol")),
    ("checkpointer", ("chat/checkpoint/", "checkpoint/serde", "ormsgpack")),
    ("publishing events (chat.events.publish: stream + fan-out)",
     ("publish (chat/events.py", "publish_renewing (chat/events.py")),
    ("channel layer (pub/sub receive)", ("_do_receiving (channels_redis",)),
]  # fmt: skip
PROFILE_FRAMES = [
    ("JSON encoding/decoding", ("(json/",)),
    ("channel layer (group_send, msgpack)",
     ("(channels_redis/", "(msgpack/", "agenticpal/channel_layer.py")),
    ("Redis client (redis-py)", ("(redis/", "agenticpal/redis_clients.py")),
    ("websocket frames (uvicorn, websockets)", ("(websockets/", "uvicorn/protocols/websockets")),
    ("LangGraph graph execution",
     ("(pregel/", "(langgraph/", "(_internal/", "(langchain_core/", "(pydantic", "chat/graph.py",
      "chat/offline_model.py", "chat/messages.py", "(langchain/")),
    ("our runner/event code", ("chat/runner.py", "chat/events.py", "chat/pending.py")),
    ("Django/Channels consumer dispatch",
     ("(channels/", "(asgiref/", "(django/", "chat/consumers.py", "agenticpal/asgi.py")),
]  # fmt: skip
GC_LINE = re.compile(r"Worker (\d+): (\d+) garbage collections took ([\d.]+) s of CPU (.*)")
EVENT_LOOP = "event loop (asyncio/uvloop)"  # what no rule claims: tasks, callbacks, polling
# Innermost frames of a thread that waits (py-spy cannot always tell): not CPU.
IDLE_FRAMES = ("_worker (concurrent/futures/thread.py",)


def profile_breakdown(path: Path) -> list[tuple[str, float]]:
    """Percent of the recorded samples per area (py-spy raw: ``frame;frame;... count``)."""
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or stack.rpartition(";")[2].startswith(IDLE_FRAMES):
            continue
        total += int(count)
        area = next((a for a, pats in PROFILE_CONTEXT if any(p in stack for p in pats)), None)
        for frame in reversed(stack.split(";")) if area is None else ():
            area = next((a for a, pats in PROFILE_FRAMES if any(p in frame for p in pats)), None)
            if area is not None:
                break
        area = area or EVENT_LOOP
        counts[area] = counts.get(area, 0) + int(count)
    return sorted(((a, 100 * n / max(total, 1)) for a, n in counts.items()), key=lambda x: -x[1])


def redis_calls(server: LiveServer) -> dict[str, tuple[int, int]]:
    """Commands the server's Redis has run so far, by name: calls and microseconds spent
    (``INFO commandstats``; a script's time includes the commands it calls)."""
    import redis

    assert server.redis is not None
    with redis.Redis.from_url(server.redis.url) as client:
        stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (row["calls"], row["usec"]) for name, row in stats.items()
    }


def redis_cpu_seconds(server: LiveServer) -> float:
    """The server's redis-server CPU so far (``INFO cpu``: user + system)."""
    import redis

    assert server.redis is not None
    with redis.Redis.from_url(server.redis.url) as client:
        info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def worker_cpu_seconds(server: LiveServer) -> dict[int, float]:
    """User + system CPU seconds of each worker process (``/proc/<pid>/stat``)."""
    found = {}
    for pid in server.worker_pids():
        with contextlib.suppress(OSError):
            found[pid] = process_cpu_seconds(pid)
    return found


def own_cpu_seconds() -> float:
    """This process's CPU so far: the bench's clients."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def profile_path(base: str, scenario: str) -> Path:
    """``base`` itself, or ``<stem>.<scenario><suffix>`` when several scenarios run."""
    path = Path(base)
    return path.with_name(f"{path.stem}.{scenario}{path.suffix}")


def start_profiler(server: LiveServer, path: Path) -> subprocess.Popen:
    """py-spy sampling the server until :func:`stop_profiler`. ``--nonblocking``: pausing
    the server 200 times a second slowed it down several times over; the price is a
    few torn stacks (classified by their innermost frames)."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    command = [spy, "record", "--pid", str(server.pid), "--format", "raw", "--rate", "200",
               "--nonblocking", "--output", str(path)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # attached before the clients start
    if process.poll() is not None:
        raise SystemExit(f"py-spy failed: {process.stderr.read().decode(errors='replace')}")
    return process


def stop_profiler(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    process.wait(60)


def mb(kb: int) -> float:
    return kb / 1024


@dataclass
class Scenario:
    name: str
    results: Results
    seconds: float
    cpu: float
    rss_kb: int
    warnings: list[str]
    stalled: list[str]
    others_cpu: float  # its redis-server's and the bench's clients' CPU-seconds

    @property
    def ttft_p99(self) -> float:
        return percentile(self.results.ttft_ms, 99)

    @property
    def per_s(self) -> float:
        """Messages sent per second of the chat phase."""
        return self.results.sent / self.seconds

    @property
    def cpu_per_message(self) -> float:
        """The server's CPU-seconds (all workers) per message sent."""
        return self.cpu / max(self.results.sent, 1)

    def most_per_s(self, workers: int) -> float:
        """The messages/s this scenario's CPU per message (the server's, and its
        redis-server's and the clients' on the same CPUs) allows ``workers`` processes."""
        server = self.cpu_per_message
        if not server:
            return 0.0
        others = self.others_cpu / max(self.results.sent, 1)
        return min((os.cpu_count() or 1) / (server + others), workers / server)

    def met(self) -> dict[str, bool]:
        r = self.results
        return {
            "0 failed": not r.failed,
            "0 lost": r.lost == 0 and r.done == r.sent,
            f"p99 TTFT <= {TARGET_TTFT_P99_MS:.0f} ms": self.ttft_p99 <= TARGET_TTFT_P99_MS,
        }


async def run_scenario(
    server: LiveServer, cookies: list[str], args: argparse.Namespace, name: str
) -> Scenario:
    results = Results()
    start = asyncio.Event()
    pacing = None
    if name == "paced":
        pacing = Pacing(args.think, random.Random(args.seed))
    elif name == "people":
        pacing = Pacing(args.people_spread, random.Random(args.seed), people=True)
    opened = OpenCount(args.clients, pacing.all_open if pacing else None)
    log_lines = len(server.log_path.read_text(errors="replace").splitlines())
    tasks = [
        asyncio.create_task(
            chat_client(
                server, cookies[i % len(cookies)], args.messages, start, results, args.wait,
                pacing, opened,
            )
        )
        for i in range(args.clients)
    ]  # fmt: skip
    await asyncio.sleep(0.1)
    profiler = start_profiler(server, profile_path(args.profile, name)) if args.profile else None
    calls0 = redis_calls(server)
    t0 = time.perf_counter()
    cpu0, redis0, own0 = server.cpu_seconds(), redis_cpu_seconds(server), own_cpu_seconds()
    workers0 = worker_cpu_seconds(server)
    start.set()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - t0
    cpu = server.cpu_seconds() - cpu0
    redis_cpu, own_cpu = redis_cpu_seconds(server) - redis0, own_cpu_seconds() - own0
    split = ""
    if len(workers0) > 1:  # how evenly the workers shared the load
        used = {pid: t - workers0.get(pid, 0.0) for pid, t in worker_cpu_seconds(server).items()}
        split = " (workers " + " / ".join(f"{t:.1f}" for t in sorted(used.values())) + " s)"
    print(
        f"{name}: CPU over the chat phase ({seconds:.1f} s, {os.cpu_count()} CPUs): server "
        f"{cpu:.1f} s{split}, its redis-server {redis_cpu:.1f} s, the bench's clients "
        f"{own_cpu:.1f} s",
        flush=True,
    )
    sent = max(results.sent, 1)
    calls = {
        k: (n - calls0.get(k, (0, 0))[0], us - calls0.get(k, (0, 0))[1])
        for k, (n, us) in redis_calls(server).items()
    }
    per_message = {k: n / sent for k, (n, _) in calls.items() if n}
    print(
        f"{name}: Redis commands per message sent: {sum(per_message.values()):.1f} ("
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(per_message.items(), key=lambda x: -x[1]))
        + ")",
        flush=True,
    )
    spent = {k: us / sent for k, (n, us) in calls.items() if n}
    print(
        f"{name}: redis-server time per message in its busiest commands (evalsha includes the "
        "commands the scripts call): "
        + ", ".join(f"{k} {v:.0f} µs" for k, v in sorted(spent.items(), key=lambda x: -x[1])[:8])
        + f"; CPU per message {1e3 * redis_cpu / sent:.2f} ms",
        flush=True,
    )
    if profiler is not None:
        await asyncio.to_thread(stop_profiler, profiler)
        for area, percent in profile_breakdown(profile_path(args.profile, name)):
            print(f"{name} profile: {percent:5.1f}% {area}", flush=True)
    rss = server.rss_kb()
    print(f"{name}: chat phase {seconds:.1f}s", flush=True)
    await count_stored(server, results)
    stalled = await replay_stalled(server, results)
    warnings = [
        line
        for line in server.log_path.read_text(errors="replace").splitlines()[log_lines:]
        if line.startswith(("WARNING", "ERROR", "CRITICAL"))
    ]
    return Scenario(name, results, seconds, cpu, rss, warnings, stalled, redis_cpu + own_cpu)


async def run(args: argparse.Namespace) -> tuple[int, dict[str, Scenario]]:
    fd_limit = raise_fd_limit(2 * (args.clients + args.idle) + 256)
    names = [n for n in SCENARIOS if getattr(args, n)] or list(SCENARIOS)
    # Every client signs in as the same local user: the per-user limits are lifted.
    env = {"CHAT_MESSAGES_PER_MINUTE": "1000000", "CHAT_MAX_THREADS_PER_USER": "1000000"}
    # Served as in production (DEBUG off: no query log, no debug pages), unless --debug;
    # the local user keeps the demo workspace (its tools), as in development.
    # INFO, production's default level: a worker logs the garbage collector's work as it stops.
    env |= {"DEBUG": "true" if args.debug else "false", "WORKSPACE_DEMO": "true"}
    env |= {"LOG_LEVEL": "INFO"}
    if args.gc_threshold:
        env["GC_THRESHOLD"] = str(args.gc_threshold)
    # One worker: the app every worker of `make run` serves (agenticpal.serve), factory,
    # lifespan (the start-up warm-up) and all, in one uvicorn process without a supervisor.
    served = args.app == SERVED_APP and args.workers == 1
    factory = ["--factory"] if served else []
    with LiveServer(
        app=args.app, workers=args.workers, extra_env=env, uvicorn_args=factory, lifespan=served
    ) as server:
        print(f"server pid {server.pid} on {server.url}; open-files limit {fd_limit}", flush=True)
        t0 = time.perf_counter()
        # The local user's sessions, made by login() in one Django start-up.
        cookies = await asyncio.to_thread(server.session_cookies, args.sessions or args.clients)
        print(f"{len(cookies)} sessions signed in in {time.perf_counter() - t0:.1f}s", flush=True)
        rss_start = server.rss_kb()
        floor_ms, floor_first_ms, together_ms = await asyncio.to_thread(
            graph_alone_ms, server, args.clients, max(args.messages, 1)
        )
        scenarios = [await run_scenario(server, cookies, args, name) for name in names]
        idle_opened, idle_failed, rss_idle = 0, [], 0
        if args.idle:
            async with contextlib.AsyncExitStack() as stack:
                t0, cpu0 = time.perf_counter(), server.cpu_seconds()
                idle_opened, idle_failed = await open_idle(server, cookies, args.idle, stack)
                seconds, cpu = time.perf_counter() - t0, server.cpu_seconds() - cpu0
                held0 = server.cpu_seconds()
                await asyncio.sleep(IDLE_HOLD_S)
                held = server.cpu_seconds() - held0
                rss_idle = server.rss_kb()
                print(
                    f"idle phase: opened in {seconds:.1f}s, server CPU "
                    f"{1e3 * cpu / max(idle_opened, 1):.2f} ms a socket (handshake, sign-in, "
                    f"claim, history); then held {IDLE_HOLD_S:g} s: server CPU "
                    f"{100 * held / IDLE_HOLD_S:.1f}% of a core",
                    flush=True,
                )
        # Its workers log what the garbage collector took as they stop.
        await asyncio.to_thread(server.stop_app, 30)
        if args.log:
            await asyncio.to_thread(shutil.copyfile, server.log_path, args.log)
        log = await asyncio.to_thread(server.log_path.read_text, errors="replace")
        for pid, runs, took, split in GC_LINE.findall(log):
            print(
                f"worker {pid}: the garbage collector ran {runs} times, {took} s of CPU {split}, "
                f"over the server's life (sign-ins, scenarios, read-backs, idle sockets; "
                f"GC_THRESHOLD {args.gc_threshold or 'default'})",
                flush=True,
            )

    print(
        f"\n{args.clients} concurrent chat clients, {args.messages} messages each; "
        f"server RSS at the start {mb(rss_start):.0f} MB\n"
    )
    print(
        "| Scenario | Connections OK / failed | Sent / lost | TTFT p50 / p99 | "
        "Done p50 / p99 | Server CPU (chat phase) | RSS after | Targets met | Missed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for sc in scenarios:
        r = sc.results
        met = sc.met()
        ok = ok and all(met.values())
        first, later = r.ttft_first_ms, r.ttft_ms.copy()
        for value in first:
            later.remove(value)
        print(
            f"| {sc.name} | {r.connected} / {len(r.failed)} | {r.sent} / {r.lost} | "
            f"{percentile(r.ttft_ms, 50):.0f} / {sc.ttft_p99:.0f} ms | "
            f"{percentile(r.ttd_ms, 50):.0f} / {percentile(r.ttd_ms, 99):.0f} ms | "
            f"{sc.cpu:.1f} s in {sc.seconds:.1f} s ({100 * sc.cpu / sc.seconds:.0f}% of a core; "
            f"{sc.per_s:.0f} messages/s, {1000 * sc.cpu_per_message:.0f} ms each) | "
            f"{mb(sc.rss_kb):.0f} MB | {', '.join(k for k, v in met.items() if v) or '-'} | "
            f"{', '.join(f'**{k}**' for k, v in met.items() if not v) or '-'} |"
        )
    if args.idle:
        idle_ok = not idle_failed and mb(rss_idle) <= TARGET_IDLE_RSS_MB
        ok = ok and idle_ok
        print(
            f"| {args.idle} idle sockets | {idle_opened} / {len(idle_failed)} | | | | | "
            f"{mb(rss_idle):.0f} MB | "
            f"{'RSS <= 400 MB, 0 failed' if idle_ok else '-'} | "
            f"{'-' if idle_ok else '**RSS <= 400 MB, 0 failed**'} |"
        )
    print()
    for sc in scenarios:
        r = sc.results
        later = r.ttft_ms.copy()
        for value in r.ttft_first_ms:
            later.remove(value)
        print(
            f"{sc.name}: TTFT of each client's first message p50/p99 "
            f"{percentile(r.ttft_first_ms, 50):.0f}/{percentile(r.ttft_first_ms, 99):.0f} ms, "
            f"later messages {percentile(later, 50):.0f}/{percentile(later, 99):.0f} ms"
        )
        for label, problems in (
            ("failed connections", r.failed),
            ("errors", r.errors),
            ("server log warnings", sc.warnings),
            ("stalled threads replayed", sc.stalled),
        ):
            if problems:
                print(
                    f"{sc.name}: {len(problems)} {label}, first: {problems[:12]}", file=sys.stderr
                )
    print(
        f"graph alone (one process, offline model without delay, InMemorySaver, no server): "
        f"{floor_ms:.1f} ms CPU per message, at most {1000 / floor_ms:.0f} messages/s on a core; "
        f"{floor_first_ms:.1f} ms of it before the first token, so {args.clients} messages "
        f"arriving at once need {args.clients * floor_first_ms:.0f} ms of CPU before the last "
        "of them can have its first token"
    )
    print(
        f"graph alone, {args.clients} threads streaming at once ({max(args.messages, 1)} "
        f"messages each, as the burst sends them; same process, same saver): {together_ms:.1f} "
        f"ms CPU per message, {together_ms / floor_ms:.2f}x the one-at-a-time floor above"
    )
    cores = os.cpu_count() or 1
    ttft_floor_ms = args.clients * floor_first_ms / cores
    print(
        f"burst floor of p99 time to first token: {ttft_floor_ms:.0f} ms ({args.clients} x "
        f"{floor_first_ms:.1f} ms over {cores} cores; target <= 1.25x); one worker process "
        "runs on one core of them"
    )
    for sc in scenarios:  # for scripts
        r = sc.results
        per_message = 1000 * sc.cpu_per_message
        print(
            f"scenario={sc.name} workers={args.workers} cpu_per_message_ms={per_message:.1f} "
            f"floor_ms={floor_ms:.1f} cpu_ratio={per_message / floor_ms:.2f} "
            f"ttft_p99_ms={sc.ttft_p99:.0f} lost={r.lost} failed={len(r.failed)} "
            f"messages_per_s={sc.per_s:.1f} steady_messages_per_s={r.steady_per_s():.1f} "
            f"together_floor_ms={together_ms:.1f} together_ratio={per_message / together_ms:.2f}"
            + (
                f" ttft_floor_ms={ttft_floor_ms:.0f} ttft_ratio={sc.ttft_p99 / ttft_floor_ms:.2f}"
                if sc.name == "burst" and ttft_floor_ms > 0
                else ""
            )
        )
    if idle_failed:
        print(f"{len(idle_failed)} failed idle sockets, first: {idle_failed[:12]}", file=sys.stderr)
    return (0 if ok else 1), {sc.name: sc for sc in scenarios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent chat clients")
    parser.add_argument("--messages", type=int, default=3, help="messages per chat client")
    parser.add_argument("--idle", type=int, default=1000, help="idle sockets to hold (0: skip)")
    parser.add_argument(
        "--debug", action="store_true",
        help="serve with DEBUG on, as the development server runs (default: off, production)",
    )  # fmt: skip
    parser.add_argument(
        "--wait", type=float, default=120, help="seconds to wait for a message's done event"
    )
    parser.add_argument(
        "--profile",
        help="record the server's stacks over each chat phase with py-spy (raw collapsed "
        "stacks, one file per scenario) and print the CPU by area",
    )
    parser.add_argument("--log", help="copy the server's log (once it stopped) to this file")
    parser.add_argument(
        "--app",
        default=SERVED_APP,
        help="the ASGI application uvicorn serves (to measure a variant)",
    )
    parser.add_argument(
        "--sessions", type=int, default=0, help="signed-in sessions to share (default: one each)"
    )
    parser.add_argument(
        "--workers",
        type=_worker_counts,
        default=[1],
        help="server worker processes (uvicorn --workers); a list such as 1,2 runs everything "
        "once per count, one after the other, and compares their messages/s",
    )
    for name in SCENARIOS:
        parser.add_argument(
            f"--{name}", action="store_true", help=f"run the {name} scenario (default: all)"
        )
    parser.add_argument(
        "--think", type=float, default=3.0,
        help="paced: first messages spread over this many seconds (default 3)",
    )  # fmt: skip
    parser.add_argument(
        "--people-spread", type=float, default=10.0,
        help="people: first messages spread over this many seconds (default 10)",
    )  # fmt: skip
    parser.add_argument(
        "--gc-threshold", type=int,
        help="the server's GC_THRESHOLD (default: the project's; Python's own is 700); "
        "only the served app (the default --app) applies it and reports its collections",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="seed of the think times")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run everything this many times, the worker counts interleaved; the scaling "
        "lines compare the medians",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat takes a number of runs >= 1")
    counts, status = args.workers, 0
    rates: dict[int, list[dict[str, Scenario]]] = {count: [] for count in counts}
    for _ in range(args.repeat):  # interleaved: 1, 2, 1, 2, ... (the machine's pace drifts)
        for count in counts:
            args.workers = count
            code, found = _run_loop(run(args))
            rates[count].append(found)
            status = status or code
    for count in counts[1:]:  # same run, side by side: what more processes bring
        for name in rates[count][0]:
            rate = statistics.median(r[name].per_s for r in rates[count])
            base = statistics.median(r[name].per_s for r in rates[counts[0]])
            if not base:
                continue  # nothing went through with the first count: no ratio to give
            each = " ".join(
                f"{r[name].per_s / b[name].per_s:.2f}" if b[name].per_s else "-"
                for r, b in zip(rates[count], rates[counts[0]], strict=True)
            )
            bound = statistics.median(b[name].most_per_s(count) for b in rates[counts[0]]) / base
            steady = statistics.median(r[name].results.steady_per_s() for r in rates[count])
            steady_base = statistics.median(
                r[name].results.steady_per_s() for r in rates[counts[0]]
            )
            steady_each = " ".join(
                f"{r[name].results.steady_per_s() / b[name].results.steady_per_s():.2f}"
                for r, b in zip(rates[count], rates[counts[0]], strict=True)
            )
            print(
                f"scaling scenario={name} workers={count} vs={counts[0]} "
                f"messages_per_s={rate:.1f} vs_messages_per_s={base:.1f} ratio={rate / base:.2f} "
                f"bound_ratio={bound:.2f} steady_ratio={steady / steady_base:.2f}"
                + (
                    f" runs={args.repeat} (medians; each pair: {each}; steady: {steady_each})"
                    if args.repeat > 1
                    else ""
                )
            )
    if len(counts) > 1:
        print(
            "bound_ratio: the most the messages/s could grow on this machine at the first "
            "count's CPU per message (the server's, and its redis-server's and the clients' "
            f"that share the {os.cpu_count()} CPUs): min(CPUs / (server + others), "
            "workers / server), over the first count's messages/s: a bound of ratio (the "
            "whole phase) only; steady_ratio: the same comparison between the 10th and the "
            "90th percent of the messages done (see Results.steady_per_s), whose messages "
            "cost less than the phase's average (no socket openings)"
        )
    return status


def _worker_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("worker counts are whole numbers >= 1, e.g. 1,2")
    return counts


def _run_loop(coro):
    with contextlib.suppress(ImportError):
        import uvloop  # the client side should not be what limits the measurement

        return uvloop.run(coro)
    return asyncio.run(coro)


if __name__ == "__main__":
    sys.exit(main())
