"""More than one worker process: any worker takes any socket and any run.

The real server as ``make run`` serves it with ``WEB_CONCURRENCY=2``
(``LiveServer(workers=2)``: uvicorn's supervisor, two worker processes, its own
redis-server). Which worker serves a socket is read from ``/proc``: the worker that
holds the server's end of the connection (nothing is added to the product for it).
Sockets are opened until each worker has one.

- a message sent on a socket of worker A streams to a socket of the same thread on
  worker B, and the other way round, each event exactly once, in the same order;
- SIGKILL to the worker that runs a message: the supervisor starts a new worker, and
  the message is answered once (after the dead worker's run lock expires, 20 s);
- SIGTERM to that worker instead: it closes its sockets (1012) but finishes the run
  before it exits, so the reply reaches the other worker's socket at once;
- ``python -m agenticpal.serve`` (``make run``) with ``WEB_CONCURRENCY=2``: the banner
  says 2 workers, the sign-in link is printed once, Ctrl-C lets the reply being written
  finish and stops every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed

from agenticpal import redis_keys as keys
from agenticpal import serve
from agenticpal.redis_server import RedisServer, free_port
from tests.e2e_support import (
    BASE_DIR,
    LiveServer,
    asign_in,
    child_pids,
    events_until,
    next_event,
    server_env,
    worker_pids,
    ws_connect,
)

END = {"done", "error", "cancelled"}
LOCK_TTL_SECONDS = keys.RUN_LOCK_TTL_MS / 1000


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    # Slower words than the default (0.02 s): a run lasts long enough to kill mid-way.
    with LiveServer(workers=2, extra_env={"AGENTICPAL_OFFLINE_WORD_DELAY": "0.05"}) as live:
        yield live


@pytest.fixture
async def cookie(server: LiveServer) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        return await asign_in(client, server.login_url(), csrf=False)


def new_thread() -> str:
    return uuid.uuid4().hex


async def sockets_on_each_worker(
    server: LiveServer, thread: str, cookie: str, stack: contextlib.AsyncExitStack
) -> dict[int, object]:
    """One open socket of ``thread`` per worker (its ``history`` read): {worker pid: socket}.

    The kernel gives each connection to whichever worker accepts first; sockets that
    land on a worker that has one already are closed."""
    workers = set(server.worker_pids())
    assert len(workers) == 2, workers
    found: dict[int, object] = {}
    for _ in range(100):
        async with contextlib.AsyncExitStack() as attempt:
            ws = await attempt.enter_async_context(ws_connect(server, thread, cookie))
            assert (await next_event(ws))["type"] == "history"  # a worker accepted it
            pid = server.serving_pid(ws.local_address[1])
            assert pid in workers, (pid, workers)
            if pid not in found:
                found[pid] = ws
                stack.push_async_exit(attempt.pop_all())
        if len(found) == len(workers):
            return found
    raise AssertionError(f"100 connections all went to {set(found)} of {workers}")


async def events_quiet(ws, within: float) -> list[dict]:
    """Every event that arrives in the next ``within`` seconds (pongs skipped)."""
    out: list[dict] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while True:
                event = json.loads(await ws.recv())
                if event.get("type") != "pong":
                    out.append(event)
    return out


def of(events: list[dict], kind: str, mid: str) -> list[dict]:
    return [e for e in events if e["type"] == kind and e.get("message_id") == mid]


def tokens(events: list[dict], mid: str) -> str:
    return "".join(e["text"] for e in of(events, "token", mid))


async def send(ws, text: str) -> str:
    mid = uuid.uuid4().hex
    await ws.send(json.dumps({"type": "message", "message": text, "id": mid}))
    return mid


async def history(server: LiveServer, thread: str, cookie: str) -> list[tuple[str, str]]:
    async with ws_connect(server, thread, cookie) as ws:
        first = await next_event(ws)
    assert first["type"] == "history"
    return [(m["role"], m["content"]) for m in first["messages"] if m["role"] != "tool"]


# --- configuration ---------------------------------------------------------------------


async def test_in_production_mode_each_worker_warms_up_then_serves_minted_sessions() -> None:
    """DEBUG off, as the benches serve: every worker warms up before it takes connections
    (chat.warmup, from the lifespan), and sessions made by ``login()`` outside the site
    (LiveServer.session_cookies) chat on any worker."""
    env = {"DEBUG": "false", "WORKSPACE_DEMO": "true", "LOG_LEVEL": "INFO"}
    with LiveServer(workers=2, extra_env=env) as live:
        deadline = time.monotonic() + 30  # /healthz answered: one worker is up at least
        while len(re.findall(r"Worker warmed up in \d+ ms", live.log_tail(200_000))) < 2:
            assert time.monotonic() < deadline, live.log_tail()
            await asyncio.sleep(0.1)
        assert "Warm-up" not in live.log_tail(200_000)  # no step failed
        [cookie] = live.session_cookies(1)
        async with ws_connect(live, new_thread(), cookie) as ws:
            assert (await next_event(ws))["type"] == "history"
            mid = await send(ws, "Hello there")
            events = await events_until(ws, END)
        assert of(events, "done", mid) and tokens(events, mid)


def test_web_concurrency_defaults_to_the_cpu_cores() -> None:
    assert serve.web_concurrency({}) == serve.cpu_cores() >= 1
    assert serve.web_concurrency({"WEB_CONCURRENCY": " 3 "}) == 3
    assert serve.web_concurrency({"WEB_CONCURRENCY": "1"}) == 1


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "257"])
def test_a_bad_web_concurrency_stops_with_one_line(value: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        serve.web_concurrency({"WEB_CONCURRENCY": value})
    assert "WEB_CONCURRENCY" in str(stopped.value) and repr(value) in str(stopped.value)


def test_the_server_command_serves_the_draining_app_in_workers() -> None:
    from agenticpal import workers

    command = serve.server_command("127.0.0.1", 8000, 4)
    assert command[command.index("--workers") + 1] == "4"
    conf = workers.config("127.0.0.1", 8000, 4)
    assert conf.lifespan == "on" and conf.factory and conf.app == serve.APP_FACTORY
    assert not conf.reload and conf.ws_per_message_deflate is False


# --- two workers --------------------------------------------------------------------------


async def test_a_reply_streams_once_to_sockets_on_both_workers(server, cookie) -> None:
    thread = new_thread()
    async with contextlib.AsyncExitStack() as stack:
        (pid_a, a), (pid_b, b) = (
            await sockets_on_each_worker(server, thread, cookie, stack)
        ).items()
        assert pid_a != pid_b

        for sender, watcher, text in ((a, b, "Hello, my name is Ada."), (b, a, "What is my name?")):
            mid = await send(sender, text)
            sent = await events_until(sender, END)
            seen = await events_until(watcher, END)
            sent += await events_quiet(sender, 1.0)  # nothing comes twice, late
            seen += await events_quiet(watcher, 0.2)
            for events in (sent, seen):
                assert len(of(events, "user", mid)) == 1, events
                [done] = of(events, "done", mid)
                assert done["content"].strip() and tokens(events, mid) == done["content"]
            assert seen == sent  # the same events, in the same order, on both workers
        assert "Ada" in done["content"]  # the second turn, run by B, knew the first (by A)

    said = await history(server, thread, cookie)
    assert [role for role, _ in said] == ["user", "assistant", "user", "assistant"]
    assert said[0][1] == "Hello, my name is Ada." and said[2][1] == "What is my name?"


async def test_a_worker_killed_mid_run_is_replaced_and_the_message_answered_once(
    server, cookie
) -> None:
    thread = new_thread()
    async with contextlib.AsyncExitStack() as stack:
        (pid_a, a), (pid_b, b) = (
            await sockets_on_each_worker(server, thread, cookie, stack)
        ).items()
        mid = await send(a, "Tell me a long story about a lighthouse keeper.")  # A runs it
        before = await events_until(b, {"token"})
        os.kill(pid_a, signal.SIGKILL)
        killed = time.monotonic()
        assert not of(before, "done", mid)

        # The supervisor starts a new worker in place of the dead one.
        [new] = set(server.wait_workers(2, timeout=30, gone=frozenset({pid_a}))) - {pid_b}
        assert new not in (pid_a, pid_b)

        # The page reconnects (its socket died with A): the new socket, on either
        # worker, takes the queue over once the dead worker's lock has expired.
        c = await stack.enter_async_context(ws_connect(server, thread, cookie))
        assert (await next_event(c))["type"] == "history"
        after = await events_until(b, END, within=LOCK_TTL_SECONDS + 20)
        answered = time.monotonic() - killed
        after += await events_quiet(b, 1.0)
        seen_by_c = await events_until(c, END, within=5)

    [done] = of(after, "done", mid)
    assert of(seen_by_c, "done", mid) == [done]
    assert not of(after, "error", mid)
    # The run again from the start (its user event again): the whole reply, once.
    rerun = len(after) - after[::-1].index(of(after, "user", mid)[-1])
    assert tokens(after[rerun:], mid) == done["content"]
    # Not sooner: the dead worker held the lock (it ran the message); not much later.
    assert LOCK_TTL_SECONDS - 2 <= answered <= LOCK_TTL_SECONDS + 10, answered
    print(f"\nworker {pid_a} killed mid-run; answered {answered:.1f} s later; new worker {new}")
    said = await history(server, thread, cookie)
    assert said == [
        ("user", "Tell me a long story about a lighthouse keeper."),
        ("assistant", done["content"]),
    ]


async def test_sigterm_lets_the_workers_run_finish(server, cookie) -> None:
    thread = new_thread()
    async with contextlib.AsyncExitStack() as stack:
        (pid_a, a), (pid_b, b) = (
            await sockets_on_each_worker(server, thread, cookie, stack)
        ).items()
        mid = await send(a, "Tell me a long story about a lighthouse keeper.")  # A runs it
        await events_until(b, {"token"})
        os.kill(pid_a, signal.SIGTERM)
        stopped = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            await events_until(a, END)  # A closes its sockets first ...
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        # ... and finishes the run before it exits: no other socket, no lock expiry.
        after = await events_until(b, END, within=serve.RUN_DRAIN_SECONDS)
        answered = time.monotonic() - stopped
        after += await events_quiet(b, 1.0)
        [done] = of(after, "done", mid)
        assert not of(after, "user", mid)  # not run again
        assert answered < LOCK_TTL_SECONDS / 2, answered
        workers = server.wait_workers(2, timeout=30, gone=frozenset({pid_a}))
        assert len(set(workers) - {pid_a, pid_b}) == 1

    r = redis.Redis.from_url(server.redis.url)
    assert r.llen(keys.pending_message_key(thread)) == 0
    assert not r.exists(keys.run_lock_key(thread))  # released, not left to expire
    said = await history(server, thread, cookie)
    assert said[-1] == ("assistant", done["content"])
    print(f"\nworker {pid_a} stopped mid-run; its run finished {answered:.1f} s later")


# --- make run -----------------------------------------------------------------------------


@contextlib.contextmanager
def make_run(tmp_path: Path, redis_url: str, **extra: str) -> Iterator[subprocess.Popen]:
    """``python -m agenticpal.serve`` as ``make run`` starts it, output to ``run.log``."""
    env = server_env(redis_url, tmp_path / "var", {"PORT": str(free_port()), **extra})
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "agenticpal.serve"], cwd=BASE_DIR, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    process.port = int(env["PORT"])  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in child_pids(pid):
        out += tree(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def gone(pids: list[int], within: float = 5.0) -> bool:
    """Whether every one of ``pids`` has exited (multiprocessing's resource tracker
    exits just after the supervisor)."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    yield server
    server.stop()


async def test_make_run_serves_with_web_concurrency_workers_and_ctrl_c_drains(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    with make_run(tmp_path, own_redis.url, WEB_CONCURRENCY="2") as run:
        log = tmp_path / "run.log"
        deadline = time.monotonic() + 60
        while "Press Ctrl-C to stop." not in (output := log.read_text(errors="replace")):
            assert run.poll() is None and time.monotonic() < deadline, output
            await asyncio.sleep(0.1)
        assert (
            f"AgenticPal is running (2 worker processes): open http://127.0.0.1:{run.port}/"
            in output
        )
        links = re.findall(r"http://\S+/login/local/\S+/", output)
        assert len(links) == 1, output  # one sign-in link, from make run, not per worker
        [supervisor] = child_pids(run.pid)
        assert len(worker_pids(supervisor)) == 2
        processes = tree(run.pid)

        thread = new_thread()
        live = LiveServer(port=run.port)  # addresses only
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            cookie = await asign_in(client, links[0], csrf=False)
        async with ws_connect(live, thread, cookie) as ws:
            assert (await next_event(ws))["type"] == "history"
            mid = await send(ws, "Tell me a long story about a lighthouse keeper.")
            await events_until(ws, {"token"})
            os.kill(run.pid, signal.SIGINT)  # Ctrl-C (the server is in a session of its own)
            stopped = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                await events_until(ws, END)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert run.wait(serve.STOP_WAIT_SECONDS) == 0
        print(f"\nmake run stopped {time.monotonic() - stopped:.1f} s after Ctrl-C")
    output = log.read_text(errors="replace")
    assert "Stopping: replies being written" in output
    assert gone(processes), output  # the supervisor and its workers too

    # The reply was finished, not left for later: answered once, nothing queued, unlocked.
    r = redis.Redis.from_url(own_redis.url)
    stream = [json.loads(fields[b"e"]) for _id, fields in r.xrange(keys.thread_events_key(thread))]
    assert r.llen(keys.pending_message_key(thread)) == 0
    assert not r.exists(keys.run_lock_key(thread))
    assert stream, "no events in the thread's stream"
    dones = [e for e in stream if e["type"] == "done"]
    assert len(dones) == 1 and dones[0]["message_id"] == mid, stream


# --- the Docker image's command ----------------------------------------------------------


def dockerfile_command() -> list[str]:
    line = next(
        line
        for line in (BASE_DIR / "Dockerfile").read_text().splitlines()
        if line.startswith("CMD ")
    )
    return json.loads(line.removeprefix("CMD "))


def test_the_docker_command_is_make_runs(tmp_path: Path, own_redis: RedisServer) -> None:
    """The Dockerfile's CMD, run here by ``sh`` with the virtualenv first on PATH (no
    Docker needed): the flags of :func:`serve.server_command`, ``nproc`` workers when
    ``WEB_CONCURRENCY`` is empty, and ``docker stop``'s SIGTERM stops every process."""
    command = dockerfile_command()
    flags = serve.server_command("0.0.0.0", 8000, 1)[3:]
    flags[flags.index("--workers") + 1] = '"${WEB_CONCURRENCY:-$(nproc)}"'
    for i, flag in enumerate(flags):
        if flag.startswith("--") and i + 1 < len(flags) and not flags[i + 1].startswith("--"):
            assert f"{flag} {flags[i + 1]}" in command[-1], flag
        elif flag.startswith("--"):
            assert flag in command[-1].split(), flag

    port = free_port()
    script = command[-1].replace("--port 8000", f"--port {port}").replace("0.0.0.0", "127.0.0.1")
    env = server_env(
        own_redis.url, tmp_path / "var",
        {"DEBUG": "false", "WEB_CONCURRENCY": "", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )  # fmt: skip
    (tmp_path / "var" / "static").mkdir(parents=True)
    with (tmp_path / "docker.log").open("wb") as log:
        process = subprocess.Popen(
            [*command[:-1], script], cwd=BASE_DIR, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "docker.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        assert len(worker_pids(process.pid)) == serve.cpu_cores()  # exec: sh became uvicorn
        processes = tree(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(serve.STOP_WAIT_SECONDS) == 0
        assert gone(processes), (tmp_path / "docker.log").read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_workers_refuse_a_port_another_server_holds_even_with_so_reuseport(tmp_path) -> None:
    """Each worker listens with SO_REUSEPORT, which would let a second server of the same
    user share the port silently: the supervisor's bind check refuses it, as uvicorn does."""
    import socket

    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        env = server_env("redis://127.0.0.1:1", tmp_path)
        result = subprocess.run(
            [sys.executable, "-m", "agenticpal.workers", "--port", str(port), "--workers", "2"],
            capture_output=True, text=True, timeout=60, cwd=BASE_DIR, env=env, check=False,
        )  # fmt: skip
    finally:
        holder.close()
    assert result.returncode != 0
    assert "Address already in use" in result.stderr
