"""``make run``: one command from a fresh clone to a working server.

0. Without ``.env``, write one from ``.env.example`` for development (DEBUG=true, a
   fresh SECRET_KEY and credentials key) and say so; ``make dev-env`` does only this.
   Settings are then read as every ``manage.py`` command reads them: the environment,
   then ``.env``. DEBUG is on unless one of them sets it.
1. If ``REDIS_URL`` is unset, start the embedded Redis on 127.0.0.1:EMBEDDED_REDIS_PORT
   (6379; AOF on, data in ``var/redis``) -- the address settings default to, so
   ``manage.py`` commands reach it too. A Redis already answering there (``make redis``,
   ``docker compose up -d redis``) is used as it is. With ``REDIS_CLUSTER=true``: an
   embedded 3-master Redis Cluster on that port and the next two (``var/redis-cluster``).
2. Run the system checks (``agenticpal/checks.py``: Redis answers, the model can load):
   an error stops here with its one-line fix, warnings are printed.
3. Apply migrations (and make a one-time local sign-in link, in development).
4. Serve HTTP and websockets with uvicorn on 127.0.0.1:8000 (``HOST``/``PORT``) in
   ``WEB_CONCURRENCY`` worker processes (default: the CPU cores this process may use),
   under uvicorn's supervisor, which restarts a worker that dies
   (:mod:`agenticpal.workers`: each worker on a ``SO_REUSEPORT`` socket of its own). Any
   worker takes any socket and any run: the queue, the run lock and the events are in
   Redis. The app is :func:`asgi_application` (the Django/Channels app, draining this
   worker's chat runs at shutdown).
5. On Ctrl-C (or SIGTERM, SIGHUP) stop the server gracefully -- no new connections,
   websockets closed with 1012 (the page reconnects), HTTP responses get
   CONNECTIONS_GRACE_SECONDS, replies being written RUN_DRAIN_SECONDS to finish; what is
   not answered by then stays queued in Redis -- then Redis (which flushes its AOF). A
   second Ctrl-C stops at once (queued messages are kept all the same).

``--dev-env`` only writes ``.env``; ``--redis-only`` runs the embedded Redis alone
(``make redis``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import io
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from agenticpal.redis_server import RedisClusterServers, RedisServer, RedisServerError

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_PORT = 6379
APP_FACTORY = "agenticpal.serve:asgi_application"
# Shutdown (SIGINT/SIGTERM to a worker): open HTTP responses (an SSE stream) get this
# long before they are cancelled, then the worker's chat runs get RUN_DRAIN_SECONDS
# (both run meanwhile: a reply keeps streaming to sockets on other workers).
CONNECTIONS_GRACE_SECONDS = 5
RUN_DRAIN_SECONDS = 15
# How long `make run` waits for the server after Ctrl-C before killing it.
STOP_WAIT_SECONDS = CONNECTIONS_GRACE_SECONDS + RUN_DRAIN_SECONDS + 10
DEV_ENV_HEADER = """\
# Written by `make run` (or `make dev-env`) from .env.example, for development on this
# machine: DEBUG=true, a SECRET_KEY and a CREDENTIALS_ENCRYPTION_KEY of its own. Edit it
# freely; environment variables override it. Never use it on a server others can reach.
"""


def env_file() -> Path:
    """The ``.env`` that settings read (``AGENTICPAL_ENV_FILE`` may point elsewhere)."""
    return Path(os.environ.get("AGENTICPAL_ENV_FILE") or BASE_DIR / ".env")


def dev_env_text(example: str) -> str:
    """``.env.example`` with development values: DEBUG on, fresh secrets."""
    values = {
        "DEBUG": "true",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CREDENTIALS_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    for name, value in values.items():
        # Only the first uncommented assignment (the production section is commented).
        example, count = re.subn(rf"(?m)^{name}=.*$", f"{name}={value}", example, count=1)
        if not count:
            example += f"\n{name}={value}\n"
    if example.startswith("#"):  # .env.example's own introduction: replaced by ours
        example = example.partition("\n\n")[2]
    return DEV_ENV_HEADER + "\n" + example


def ensure_dev_env(*, quiet: bool = False) -> bool:
    """Write ``.env`` for development when there is none; True when it was written."""
    path = env_file()
    if path.exists():
        return False
    example = BASE_DIR / ".env.example"
    text = example.read_text(encoding="utf-8") if example.is_file() else ""
    path.write_text(dev_env_text(text), encoding="utf-8")
    path.chmod(0o600)  # it holds secrets
    if not quiet:
        print(
            f"Wrote {_shown(path)} for development (DEBUG=true, a new SECRET_KEY): "
            "`make run`, `make redis` and every `.venv/bin/python manage.py ...` command read it. "
            "Edit it to change settings.",
            flush=True,
        )
    return True


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(BASE_DIR))
    except ValueError:
        return str(path)


def load_settings_environment() -> dict[str, str]:
    """The environment the server and ``manage.py`` see: ours, then ``.env``."""
    from agenticpal.config import read_dotenv

    read_dotenv(BASE_DIR)  # environment variables win, as in settings
    env = dict(os.environ)
    env.setdefault("DEBUG", "true")  # a development server, unless the environment or .env says
    return env


def _port(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(
            f"Configuration error: {name} must be a port number (1-65535), got {raw!r}."
        )
    return int(raw)


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def web_concurrency(env: dict[str, str]) -> int:
    """Worker processes: ``WEB_CONCURRENCY``, else one per CPU core."""
    raw = env.get("WEB_CONCURRENCY", "").strip()
    if not raw:
        return cpu_cores()
    if not raw.isdigit() or not 0 < int(raw) <= 256:
        raise SystemExit(
            f"Configuration error: WEB_CONCURRENCY must be a number of worker processes "
            f"(1-256), got {raw!r}."
        )
    return int(raw)


def server_command(host: str, port: int, workers: int) -> list[str]:
    """The server ``make run`` starts: :mod:`agenticpal.workers` (uvicorn, its workers on
    ``SO_REUSEPORT`` sockets of their own); the production command in the README and the
    Dockerfile is the same, as ``python -m agenticpal.workers``."""
    return [
        sys.executable, "-m", "agenticpal.workers",
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


class DrainRunsAtShutdown:
    """``app`` plus an ASGI lifespan: at start-up the worker warms up (its first chat
    message then runs as fast as the others); at shutdown the worker's chat runs get
    ``drain_seconds`` to finish (:func:`chat.runner.drain`); a run still going then is
    cancelled, and its message stays at the head of the thread's queue in Redis.

    uvicorn sends ``lifespan.shutdown`` after it has stopped accepting connections,
    closed the websockets (1012) and waited for HTTP responses, so no new run starts
    here meanwhile; runs keep publishing their events to the sockets of other workers.
    """

    def __init__(self, app, drain_seconds: float = RUN_DRAIN_SECONDS) -> None:
        self.app = app
        self.drain_seconds = drain_seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.warm()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.drain()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def warm(self) -> None:
        """Warm the worker before it takes connections (:func:`chat.warmup.awarm`), then
        freeze what that built (the graph, the clients) out of the collector's reach."""
        from chat.warmup import awarm

        await awarm()
        freeze_heap()

    async def drain(self) -> None:
        """Let the chat runs finish (:func:`chat.runner.drain`), then close the websocket
        sign-in thread's database connection."""
        from chat import runner
        from sessions_redis.websocket import close_connections

        logger = logging.getLogger("agenticpal.serve")
        started = time.monotonic()
        try:
            await runner.drain(self.drain_seconds)
        except Exception:  # shutting down all the same; the messages stay queued
            logger.exception("Draining the chat runs of worker %d failed", os.getpid())
        with contextlib.suppress(Exception):  # the database's problem, not the shutdown's
            await asyncio.to_thread(close_connections)
        waited = time.monotonic() - started
        if waited >= 0.1:
            logger.info("Worker %d waited %.1f s for its chat runs to finish", os.getpid(), waited)
        logger.info(
            "Worker %d: %d garbage collections took %.2f s of CPU (by generation, 0/1/2: "
            "%s collections, %s s)",
            os.getpid(), sum(COLLECTOR.collections), sum(COLLECTOR.seconds),
            "/".join(map(str, COLLECTOR.collections)),
            "/".join(f"{s:.2f}" for s in COLLECTOR.seconds),
        )  # fmt: skip


def asgi_application() -> DrainRunsAtShutdown:
    """What every worker serves (``uvicorn --factory agenticpal.serve:asgi_application``):
    :mod:`agenticpal.asgi`'s application with :class:`DrainRunsAtShutdown`, the start-up
    heap frozen (:func:`freeze_heap`)."""
    from agenticpal.asgi import application

    freeze_heap()
    return DrainRunsAtShutdown(application)


class CollectorClock:
    """How often the garbage collector ran in this process and the CPU it took (its
    thread's), from ``gc.callbacks``: Python counts collections but does not time them.
    A worker logs both when it stops; ``bench/chat_ws.py`` prints them."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]  # by generation
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        """``gc.callbacks``' signature: called at the start and at the stop of each
        collection, in the thread that collects (collections never overlap)."""
        if phase == "start":
            self._started = time.thread_time()
        else:
            generation = info["generation"]
            self.collections[generation] += 1
            self.seconds[generation] += time.thread_time() - self._started

    def install(self) -> None:
        """Start counting (once, however often called)."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)


COLLECTOR = CollectorClock()


def freeze_heap() -> None:
    """Free what start-up left behind, freeze the rest (Django, LangChain, LangGraph, the
    warmed graph: most of the heap, alive as long as the worker) out of the garbage
    collector's reach, and collect the youngest generation every ``GC_THRESHOLD`` new
    objects instead of Python's 700. A full collection under load took about 150 ms of
    CPU walking the start-up heap, 35 ms after the freeze. A one-worker bench server
    (sign-ins, a 1,200-message burst, read-backs) ran 1,081-1,153 collections taking
    2.5-2.7 s of CPU at 700, 15-17 taking 0.37-0.44 s at 20,000 (the README's "Where the
    server's CPU goes")."""
    from django.conf import settings

    gc.collect()
    gc.freeze()
    _, *older = gc.get_threshold()
    gc.set_threshold(settings.GC_THRESHOLD, *older)
    COLLECTOR.install()


def _redis_answers(port: int) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        client.close()


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def var_dir(env: dict[str, str]) -> Path:
    """``var/`` (``AGENTICPAL_VAR_DIR``): the embedded Redis' data, ``STATIC_ROOT``."""
    return Path(env.get("AGENTICPAL_VAR_DIR", "").strip() or BASE_DIR / "var")


def start_embedded_redis(port: int, data: Path) -> tuple[RedisServer | None, str]:
    """The embedded Redis on ``port`` (or the one already answering there) and its URL."""
    url = f"redis://127.0.0.1:{port}"
    if _redis_answers(port):
        print(f"Using the Redis already running on {url} (data stays where it is)")
        return None, url
    if _port_taken(port):
        raise RedisServerError(
            f"port {port} is in use by something that is not Redis. Set EMBEDDED_REDIS_PORT "
            "to a free port in .env (manage.py commands follow it), or REDIS_URL to a "
            "running Redis."
        )
    server = RedisServer(data, port=port).start()
    print(f"Embedded Redis {server.version} on {server.url} (AOF on, data in {_shown(data)})")
    return server, server.url


def start_embedded_cluster(port: int, data: Path) -> tuple[RedisClusterServers, str]:
    """``REDIS_CLUSTER=true`` without ``REDIS_URL``: a 3-master Redis Cluster on ``port``,
    ``port + 1`` and ``port + 2`` (AOF on; restarts keep the data and the cluster)."""
    for node_port in range(port, port + 3):
        if _port_taken(node_port) or _port_taken(node_port + 10000):
            raise RedisServerError(
                f"port {node_port} (or its cluster bus port {node_port + 10000}) is in use. "
                "Set EMBEDDED_REDIS_PORT to the first of three free ports, or REDIS_URL to a "
                "node of a running cluster."
            )
    cluster = RedisClusterServers(data, appendonly=True, first_port=port).start()
    print(
        f"Embedded Redis Cluster: 3 masters on 127.0.0.1:{port}-{port + 2} "
        f"(AOF on, data in {_shown(data)})"
    )
    return cluster, cluster.url


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def run_checks(env: dict[str, str]) -> bool:
    """Django's system checks with ``env``, Redis included; False when one is an error.

    Each problem is printed on one line with its fix."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agenticpal.settings")
    from django.core.exceptions import ImproperlyConfigured

    try:
        import django

        django.setup()
    except ImproperlyConfigured as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return False
    from django.core import checks

    messages = [m for m in checks.run_checks(databases=["default"]) if not m.is_silenced()]
    for message in messages:
        kind = "Error" if message.is_serious() else "Warning"
        line = f"{kind} ({message.id}): {message.msg}"
        if message.hint:
            line += f" Fix: {message.hint}"
        print(line, file=sys.stderr if message.is_serious() else sys.stdout, flush=True)
    return not any(m.is_serious() for m in messages)


def migrate_and_login_link(base_url: str) -> str | None:
    """``migrate``, then a one-time local sign-in line (DEBUG only), in this process:
    Django is set up already. None when migrate fails (its error is printed)."""
    from django.core.management import CommandError, call_command
    from django.db import connections

    try:
        call_command("migrate", interactive=False, verbosity=0, skip_checks=True)
    except Exception as exc:  # any failure: say it in one line, stop
        print(f"migrate failed: {exc}", file=sys.stderr)
        return None
    out = io.StringIO()
    try:
        call_command("local_login_url", base_url, stdout=out, stderr=io.StringIO())
    except CommandError:
        pass  # DEBUG off: no local sign-in
    finally:
        connections.close_all()
    return out.getvalue().strip()


def _wait_listening(server: subprocess.Popen, host: str, port: int, timeout: float = 60) -> bool:
    """Whether a worker answers HTTP (False: uvicorn exited, or none did in time).

    Not just a TCP connect: with workers, the supervisor listens before any worker has
    loaded the app."""
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        connection = http.client.HTTPConnection(host, port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
        finally:
            connection.close()
    return False


def stop_server(server: subprocess.Popen, timeout: float = STOP_WAIT_SECONDS) -> None:
    """SIGINT to uvicorn (its graceful stop; the supervisor passes it on to every worker
    as SIGTERM), then SIGKILL to its whole process group after ``timeout`` seconds or at
    a second Ctrl-C, and after a crash of the supervisor: workers left behind would keep
    serving."""
    clean = False
    try:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout)
        clean = server.returncode == 0
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    finally:
        if not clean:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def redis_only(port: int, data: Path) -> int:
    """``make redis``: the embedded Redis alone, in the foreground."""
    try:
        server = RedisServer(data, port=port)
        if _redis_answers(port) or _port_taken(port):
            raise RedisServerError(f"port {port} is already in use (set EMBEDDED_REDIS_PORT)")
        server.start()
    except RedisServerError as exc:
        print(f"Could not start the embedded Redis: {exc}", file=sys.stderr)
        return 1
    print(
        f"Redis {server.version} on {server.url} (AOF on, data in {_shown(data)}); Ctrl-C to stop",
        flush=True,
    )
    try:
        return server.process.wait() if server.process else 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--host", default=None, help="default: HOST, else 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: PORT, else 8000")
    parser.add_argument(
        "--redis-port", type=int, default=None, help="default: EMBEDDED_REDIS_PORT, else 6379"
    )
    parser.add_argument("--dev-env", action="store_true", help="only write .env if missing")
    parser.add_argument("--redis-only", action="store_true", help="only run the embedded Redis")
    args = parser.parse_args(argv)

    # `kill`, a supervisor, `timeout`, a closed terminal: stop the server and Redis as
    # Ctrl-C does (uvicorn runs in a session of its own: only this process gets them).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.default_int_handler)
    ensure_dev_env()
    if args.dev_env:
        return 0
    env = load_settings_environment()
    host = args.host or env.get("HOST", "").strip() or "127.0.0.1"
    port = args.port or _port(env, "PORT", 8000)
    redis_port = args.redis_port or _port(env, "EMBEDDED_REDIS_PORT", DEFAULT_REDIS_PORT)
    workers = web_concurrency(env)
    var = var_dir(env)
    if args.redis_only:
        return redis_only(redis_port, var / "redis")

    redis_server = None
    # whitenoise serves app static files through the finders in development; an empty
    # STATIC_ROOT keeps it from warning that the collectstatic directory is missing.
    (var / "static").mkdir(parents=True, exist_ok=True)
    if not env.get("REDIS_URL", "").strip():
        try:
            if _truthy(env.get("REDIS_CLUSTER")):
                redis_server, env["REDIS_URL"] = start_embedded_cluster(
                    redis_port, var / "redis-cluster"
                )
            else:
                redis_server, env["REDIS_URL"] = start_embedded_redis(redis_port, var / "redis")
        except RedisServerError as exc:
            print(f"Could not start the embedded Redis: {exc}", file=sys.stderr)
            return 1
    else:
        from agenticpal.config import mask_password

        print(f"Using REDIS_URL={mask_password(env['REDIS_URL'])} (environment or .env)")

    server = None
    try:
        if not run_checks(env):
            print(
                "AgenticPal did not start: fix the error above and run it again.", file=sys.stderr
            )
            return 2
        login = migrate_and_login_link(f"http://{host}:{port}")
        if login is None:
            return 2
        sys.stdout.flush()  # what was printed comes before uvicorn's log
        # A session of its own: Ctrl-C reaches this process only, which stops the
        # server in order (and can kill the whole group, workers included).
        server = subprocess.Popen(
            server_command(host, port, workers), env=env, cwd=BASE_DIR, start_new_session=True
        )
        if not _wait_listening(server, host, port):
            print(
                f"The server did not start on {host}:{port} (see above); another one may use "
                "the port: set PORT.",
                file=sys.stderr,
            )
            return server.poll() or 1
        plural = "es" if workers > 1 else ""
        print(
            f"\nAgenticPal is running ({workers} worker process{plural}): "
            f"open http://{host}:{port}/"
        )
        if login:
            print(login)
        print("Press Ctrl-C to stop.\n", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            if server.poll() is None:
                print(
                    f"Stopping: replies being written get up to {RUN_DRAIN_SECONDS} s to "
                    "finish (Ctrl-C again to stop at once; unanswered messages stay queued).",
                    flush=True,
                )
            stop_server(server)
        if redis_server is not None:
            redis_server.stop()
            print(f"Embedded Redis stopped (data kept in {_shown(redis_server.data_dir)}).")


if __name__ == "__main__":
    sys.exit(main())
