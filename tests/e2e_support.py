"""The real server in a subprocess, for the end-to-end tests and ``bench/chat_ws.py``.

pytest-django's ``live_server`` runs WSGI in a thread of the test process: no
websockets, and the server would share the test's event loop, settings overrides and
Redis clients. :class:`LiveServer` instead runs what ``make run`` runs
(``agenticpal.serve``): a throw-away ``redis-server`` on a free port, ``migrate`` on a
temporary SQLite database, and uvicorn with the same flags, DEBUG on. Clients sign in
through the one-time local sign-in URL (``/login/local/<token>/``) like a developer
does, so every request carries real session and CSRF cookies.

Also here: a small Server-Sent Events reader for httpx responses (the ``text/event-stream``
format is a few lines; no client library is in the dependencies).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agenticpal.redis_server import RedisClusterServers, RedisServer, free_port

BASE_DIR = Path(__file__).resolve().parent.parent
SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
_LOGIN_URL = re.compile(r"https?://\S+/login/local/[^/\s]+/")
_SESSION_LINE = re.compile(r"(?m)^session ([A-Za-z0-9_-]+)$")


class LiveServerError(RuntimeError):
    pass


def server_env(
    redis_url: str, var_dir: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of the server: this process's, minus what the test settings put there."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CHECKPOINT_REDIS_URL"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "agenticpal.settings",
            "DEBUG": "true",
            "SECRET_KEY": "e2e-secret-key-not-for-production-0123456789abcdef",
            "REDIS_URL": redis_url,
            "AGENTICPAL_VAR_DIR": str(var_dir),
            "DATABASE_URL": f"sqlite:///{var_dir / 'db.sqlite3'}",
            "AGENTICPAL_ENV_FILE": os.devnull,  # a developer's .env must not leak in
            "AGENTICPAL_MODEL": "",  # the offline model
            "AGENTICPAL_OFFLINE_WORD_DELAY": env.get("AGENTICPAL_OFFLINE_WORD_DELAY", "0.02"),
            # Load tests and benches sign in hundreds of users from 127.0.0.1.
            "SIGN_IN_ATTEMPTS_PER_MINUTE": "1000000",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": os.environ.get("E2E_LOG_LEVEL", "WARNING"),
        }
    )
    env.update(extra or {})
    return env


@dataclass
class LiveServer:
    """Redis + migrate + uvicorn serving ``agenticpal.asgi`` on 127.0.0.1:<free port>."""

    workdir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    uvicorn_args: list[str] = field(default_factory=list)
    app: str = "agenticpal.asgi:application"
    host: str = "127.0.0.1"
    port: int = 0
    redis_aof: bool = False  # Redis with its append-only file (restarts keep the data)
    # More than 1: what `make run` runs (agenticpal.serve.server_command: uvicorn's
    # supervisor and this many worker processes, the app draining its runs at shutdown;
    # ``app`` is not used then). 1: one uvicorn process serving ``app``, as before.
    workers: int = 1
    # One worker: serve the ASGI lifespan too (``app`` must take it: the served factory).
    lifespan: bool = False
    # A real 3-master Redis Cluster instead of one server (REDIS_CLUSTER=true).
    cluster: bool = False
    redis: RedisServer | None = None
    redis_cluster: RedisClusterServers | None = None
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory | None = None

    # --- lifecycle ------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> LiveServer:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="agenticpal-e2e-")
            self.workdir = Path(self._tmp.name)
        self.workdir = Path(self.workdir)
        var_dir = self.workdir / "var"
        (var_dir / "static").mkdir(parents=True, exist_ok=True)  # whitenoise's STATIC_ROOT
        try:
            if self.cluster:
                self.redis_cluster = RedisClusterServers(self.workdir / "redis-cluster").start()
                url, extra = self.redis_cluster.url, {"REDIS_CLUSTER": "true", **self.extra_env}
            else:
                self.redis = RedisServer(self.workdir / "redis", appendonly=self.redis_aof).start()
                url, extra = self.redis.url, self.extra_env
            self.env = server_env(url, var_dir, extra)
            migrate = self.manage("migrate", "--noinput", "-v", "0")
            if migrate.returncode != 0:
                raise LiveServerError(f"migrate failed:\n{migrate.stdout}{migrate.stderr}")
            self.port = self.port or free_port()
            self._serve(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _serve(self, timeout: float) -> None:
        if self.workers != 1:
            from agenticpal.serve import server_command

            command = server_command(self.host, self.port, self.workers)
        else:
            command = [sys.executable, "-m", "uvicorn", self.app,
                       "--host", self.host, "--port", str(self.port),
                       "--lifespan", "on" if self.lifespan else "off",
                       "--no-server-header", "--ws-max-size", "65536",
                       "--ws-per-message-deflate", "false"]  # fmt: skip
        self.process = subprocess.Popen(
            [*command, *self.uvicorn_args],
            env=self.env, cwd=BASE_DIR, start_new_session=True,
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_ready(timeout)
        if self.workers > 1:
            self.wait_workers(self.workers, timeout)

    def restart_app(self, *, kill: bool = True, timeout: float = 60.0) -> None:
        """Stop the server process (``kill``: SIGKILL, a crash; else uvicorn's graceful
        SIGINT) and start it again on the same port, same Redis and database."""
        assert self.process is not None
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(15)
        if self.process.stdout:
            self.process.stdout.close()
        self._serve(timeout)

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "server.log"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process else None
                raise LiveServerError(
                    f"The server exited at start (code {code}). Its log:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise LiveServerError(
            f"The server did not answer /healthz within {timeout}s. Its log:\n{self.log_tail()}"
        )

    def stop_app(self, timeout: float = 10.0) -> None:
        """SIGINT (uvicorn's graceful stop), SIGKILL to the whole group if it hangs; Redis
        and the work directory (the server's log) stay."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None

    def stop(self) -> None:
        """:meth:`stop_app`, then Redis; the work directory is removed."""
        self.stop_app()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.redis_cluster is not None:
            self.redis_cluster.stop()
            self.redis_cluster = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses and process facts ---------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        return self.url

    def ws_url(self, thread_id: str) -> str:
        return f"ws://{self.host}:{self.port}/ws/chat/{thread_id}/"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The processes that serve: the uvicorn supervisor's workers, or uvicorn itself."""
        return worker_pids(self.pid) if self.workers != 1 else [self.pid]

    def wait_workers(
        self, count: int, timeout: float = 60.0, *, gone: frozenset[int] = frozenset()
    ) -> list[int]:
        """The worker pids once ``count`` workers accept connections and none of them is
        in ``gone`` (the supervisor replaces a dead one: this waits for the new one to be
        ready; a worker just sent a signal may still run for a moment, so pass it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if (
                len(pids) >= count
                and not gone.intersection(pids)
                and all(_accepting(pid, self.port) for pid in pids)
            ):
                return pids
            time.sleep(0.1)
        raise LiveServerError(
            f"{count} workers did not start within {timeout}s. Its log:\n{self.log_tail()}"
        )

    def serving_pid(self, client_port: int) -> int | None:
        """The worker that accepted the connection from 127.0.0.1:``client_port``."""
        inode = tcp_inode(self.port, client_port)
        if inode is None:
            return None
        for pid in self.worker_pids():
            if inode in _socket_inodes(pid):
                return pid
        return None

    def _serving(self) -> list[int]:
        """The server's processes: uvicorn, and its workers when there are several."""
        return [self.pid] if self.workers == 1 else [self.pid, *self.worker_pids()]

    def rss_kb(self) -> int:
        """Resident set size in KiB (``VmRSS``), summed over the server's processes."""
        total = 0
        for pid in self._serving():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's processes (``/proc/<pid>/stat``)."""
        return sum(process_cpu_seconds(pid) for pid in self._serving())

    # --- signing in ------------------------------------------------------------------

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            env=self.env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def quick_login_url(self, email: str) -> str:
        """A one-time local sign-in URL issued as ``manage.py local_login_url`` does, the
        token written straight into this server's Redis: milliseconds, where the command
        starts a Python process (seconds on a loaded machine). For tests that time the
        server's recovery and sign in again mid-measurement."""
        import secrets

        import redis

        from agenticpal import redis_keys as keys

        if self.redis is None:
            raise LiveServerError("quick_login_url needs the server's own single Redis")
        token = secrets.token_urlsafe(32)
        ttl = int(self.env.get("LOGIN_TOKEN_TTL_SECONDS", keys.LOGIN_TOKEN_TTL_SECONDS))
        with redis.Redis.from_url(self.redis.url, socket_timeout=5) as client:
            client.set(keys.login_token_key(token), email, ex=ttl)
        return f"{self.url}/login/local/{token}/"

    def login_url(self) -> str:
        """A one-time local sign-in URL, from ``manage.py local_login_url`` like ``make run``."""
        result = self.manage("local_login_url", self.url)
        match = _LOGIN_URL.search(result.stdout)
        if result.returncode != 0 or match is None:
            raise LiveServerError(
                f"local_login_url failed (code {result.returncode}): {result.stdout}{result.stderr}"
            )
        return match.group(0)

    def session_cookies(self, count: int) -> list[str]:
        """``count`` session cookies of the local user, made as Django's test client's
        ``force_login`` makes them (the real ``login()``, the project's session store), and
        the user's demo workspace when it is on. DEBUG or not: the load benches serve with
        DEBUG off, where the local sign-in link is refused."""
        code = (
            "from django.conf import settings\n"
            "from django.contrib.auth import get_user_model\n"
            "from django.test import Client\n"
            "from workspace import demo\n"
            "from workspace.views import LOCAL_EMAIL, LOCAL_USERNAME\n"
            "user, _ = get_user_model().objects.get_or_create(\n"
            "    username=LOCAL_USERNAME, defaults={'email': LOCAL_EMAIL})\n"
            "if demo.enabled():\n"
            "    demo.connect(LOCAL_EMAIL)\n"
            f"for _ in range({count}):\n"
            "    client = Client()\n"
            "    client.force_login(user, backend='django.contrib.auth.backends.ModelBackend')\n"
            "    print('session', client.cookies[settings.SESSION_COOKIE_NAME].value)\n"
        )
        result = self.manage("shell", "-c", code)
        cookies = _SESSION_LINE.findall(result.stdout)
        if result.returncode != 0 or len(cookies) != count:
            raise LiveServerError(f"Minting sessions failed: {result.stdout}{result.stderr}")
        return cookies

    def signed_in_client(self, login_url: str | None = None, **kwargs) -> httpx.Client:
        """An httpx client with a session cookie (signed in) and a CSRF cookie."""
        client = httpx.Client(base_url=self.url, **kwargs)
        sign_in(client, login_url or self.login_url())
        return client


def load_bench(name: str):
    """The module ``bench/<name>.py`` (benches are scripts, not a package), loaded once."""
    key = f"bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, BASE_DIR / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[key]


# --- processes and their sockets (Linux /proc) ------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def child_pids(pid: int) -> list[int]:
    """The children of ``pid`` (every thread's ``children`` list)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def worker_pids(supervisor: int) -> list[int]:
    """The worker processes of a uvicorn supervisor: its children that run
    ``multiprocessing.spawn`` (not its multiprocessing resource tracker)."""
    return sorted(pid for pid in child_pids(supervisor) if b"spawn_main" in _cmdline(pid))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _tcp_table() -> list[tuple[int, int, int, int]]:
    """(local port, remote port, state, inode) of each IPv4 TCP socket (/proc/net/tcp)."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        rows.append((int(local, 16), int(remote, 16), int(fields[3], 16), int(fields[9])))
    return rows


def tcp_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server's end of the connection from ``client_port``."""
    for local, remote, _state, inode in _tcp_table():
        if local == server_port and remote == client_port and inode:
            return inode
    return None


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _accepting(pid: int, port: int) -> bool:
    """Whether ``pid`` waits for connections on ``port``: the listening socket is in one
    of its epoll sets (a worker holds the socket from its start, but polls it only once
    its app is loaded)."""
    listening = {
        inode for local, _r, state, inode in _tcp_table() if local == port and state == 0x0A
    }
    fds, epolls = set(), []
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and int(target[8:-1]) in listening:
                    fds.add(int(fd.name))
                elif target == "anon_inode:[eventpoll]":
                    epolls.append(fd.name)
    for epoll in epolls:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/fdinfo/{epoll}").read_text().splitlines():
                if line.startswith("tfd:") and int(line.split()[1]) in fds:
                    return True
    return False


def sign_in(client: httpx.Client, login_url: str) -> None:
    """Follow a one-time sign-in URL, then load the chat index to get the CSRF cookie."""
    response = client.get(login_url, follow_redirects=False)
    if response.status_code != 302 or SESSION_COOKIE not in client.cookies:
        raise LiveServerError(
            f"Local sign-in answered {response.status_code} without a session cookie: "
            f"{response.text[:300]}"
        )
    page = client.get("/")
    if page.status_code != 200 or CSRF_COOKIE not in client.cookies:
        raise LiveServerError(f"The chat index answered {page.status_code} without a CSRF cookie.")


async def asign_in(client: httpx.AsyncClient, login_url: str, *, csrf: bool = True) -> str:
    """:func:`sign_in` for an async client (``csrf=False`` skips the index page); returns
    the session cookie."""
    response = await client.get(login_url, follow_redirects=False)
    if response.status_code != 302 or SESSION_COOKIE not in client.cookies:
        raise LiveServerError(
            f"Local sign-in answered {response.status_code} without a session cookie: "
            f"{response.text[:300]}"
        )
    if csrf:
        page = await client.get("/")
        if page.status_code != 200 or CSRF_COOKIE not in client.cookies:
            raise LiveServerError(
                f"The chat index answered {page.status_code} without a CSRF cookie."
            )
    return client.cookies[SESSION_COOKIE]


def cookie_header(cookies: httpx.Cookies) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


# --- Server-Sent Events ---------------------------------------------------------------


@dataclass
class SSEMessage:
    id: str | None
    event: str
    data: str

    def json(self) -> dict:
        return json.loads(self.data)


async def aiter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEMessage]:
    """Messages of a ``text/event-stream`` (comments and ``retry:`` lines skipped)."""
    msg_id: str | None = None
    event = "message"
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield SSEMessage(msg_id, event, "\n".join(data))
            msg_id, event, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "id":
            msg_id = value
        elif name == "event":
            event = value


# --- websocket client helpers ---------------------------------------------------------


def ws_connect(
    server: LiveServer, thread_id: str, cookie: str | None, *, origin: str | None = None, **kwargs
):
    """``websockets`` connect to the chat socket of ``thread_id`` (use with ``async with``)."""
    from websockets.asyncio.client import connect

    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
    return connect(
        server.ws_url(thread_id),
        origin=origin or server.origin,
        additional_headers=headers,
        open_timeout=kwargs.pop("open_timeout", 15),
        **kwargs,
    )


async def next_event(ws, within: float = 20.0) -> dict:
    async with asyncio.timeout(within):
        return json.loads(await ws.recv())


async def events_until(ws, last: set[str], within: float = 30.0) -> list[dict]:
    """Events up to and including the first whose type is in ``last`` (pongs skipped)."""
    out: list[dict] = []
    async with asyncio.timeout(within):
        while True:
            event = json.loads(await ws.recv())
            if event.get("type") == "pong":
                continue
            out.append(event)
            if event.get("type") in last:
                return out


# --- the Workspace emulator as a stub Google in its own process ---------------------


class WorkspaceStub:
    """``python -m workspace.emulator`` under uvicorn in a subprocess; its access log
    (one line per request) goes to a file."""

    def __init__(self, latency_ms: float, log_path: Path, timezone: str = "Europe/Paris") -> None:
        self.latency_ms = latency_ms
        self.timezone = timezone
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> WorkspaceStub:
        command = [
            sys.executable, "-m", "workspace.emulator", "--host", "127.0.0.1",
            "--port", str(self.port), "--latency-ms", str(self.latency_ms),
            "--timezone", self.timezone,
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the stub exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(
                    f"{self.url}/gmail/v1/users/me/labels",
                    headers={"Authorization": "Bearer demo.probe@example.com"},
                    timeout=2,
                )
                if answer.status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"the stub did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def cpu_seconds(self) -> float:
        """The stub's CPU time so far (Linux: /proc; elsewhere NaN)."""
        try:
            return process_cpu_seconds(self.process.pid)
        except (AttributeError, OSError):
            return float("nan")

    def logged(self, pattern: str = r"(?:GET|POST|PUT|PATCH|DELETE) /") -> int:
        """Requests in the stub's access log so far (those matching ``pattern``)."""
        text = self.log_path.read_text(errors="replace")
        return len(re.findall(f'"{pattern}', text))
