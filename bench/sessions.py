"""Session backend benchmark: ``sessions_redis.backend`` vs Django's cache backend on
django-redis, side by side in one run, on one ``redis-server`` started here.

    .venv/bin/python bench/sessions.py [--seconds 0.3] [--rounds 7] [--concurrency 16]

Times a read and a write request (the session part only) sync, async and sync under
ASGI, with 1 and ``--concurrency`` requests in flight, plus bytes per session and round
trips and Redis server time per request. Each figure is the best of ``--rounds`` rounds
of ``--seconds`` in which every mode and both backends take turns, so the ratios are
fair. Methodology and results: the README's "Sessions" section, under "Benchmark".
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings

from agenticpal.config import redis_settings
from agenticpal.redis_server import RedisServer

USER_EMAIL = "someone@example.com"
THREADS = ["0b9f2c9e-2f0e-4a53-9d7c-6f1f0c1e8a11", "5d1c7f8a-8c43-4d0b-b0f4-3c2d9e6a7b22"]
AUTH = {
    "_auth_user_id": "42",
    "_auth_user_backend": "workspace.oauth_state.GoogleOAuth2",
    "_auth_user_hash": "3f2b8c0d9e1a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
}


def configure(url: str) -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-secret-key-0123456789-0123456789-0123456789",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        DATABASES={},
        USE_TZ=True,
        REDIS=redis_settings(url),
        SESSION_TTL_SECONDS=604_800,
        SESSION_COOKIE_AGE=604_800,
        SESSION_SAVE_EVERY_REQUEST=True,  # what the cache backend needs to slide expiry
        SESSION_CACHE_ALIAS="sessions",
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "sessions": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": f"{url}/0",
                "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
            },
        },
    )
    django.setup()


# --- one request of each kind, per backend ------------------------------------------


def new_sessions(store_class, count: int, *, email_in_record: bool) -> list[str]:
    made = []
    for _ in range(count):
        session = store_class()
        session.update(AUTH)
        if email_in_record:
            session.set_user_email(USER_EMAIL)
        else:  # the cache backend keeps the same facts in Django's dict
            session.update({"user_email": USER_EMAIL, "thread_ids": THREADS})
        session.save()
        if email_in_record:
            from sessions_redis import store

            for thread_id in THREADS:
                store.add_thread_id(session.session_key, thread_id)
        made.append(session.session_key)
    return made


def read_ours(store_class, key: str, _: int) -> None:
    session = store_class(key)
    session.get("_auth_user_id")  # load (and renew); not modified, so no save


def read_cache(store_class, key: str, _: int) -> None:
    session = store_class(key)
    session.get("_auth_user_id")
    session.save()  # SESSION_SAVE_EVERY_REQUEST: the middleware saves every request


def write_any(store_class, key: str, i: int) -> None:
    session = store_class(key)
    session.get("_auth_user_id")
    session["last_page"] = i
    session.save()


async def aread_ours(store_class, key: str, _: int) -> None:
    session = store_class(key)
    await session.aget("_auth_user_id")


async def aread_cache(store_class, key: str, _: int) -> None:
    session = store_class(key)
    await session.aget("_auth_user_id")
    await session.asave()


async def awrite_any(store_class, key: str, i: int) -> None:
    session = store_class(key)
    await session.aget("_auth_user_id")
    await session.aset("last_page", i)
    await session.asave()


def under_asgi(step: Callable) -> Callable[..., Awaitable[None]]:
    """The sync ``step`` as a sync view runs under an ASGI server: in a worker thread,
    one thread-sensitive context per request (what Django's ASGIHandler does)."""
    from asgiref.sync import ThreadSensitiveContext, sync_to_async

    threaded = sync_to_async(step)

    async def run(store_class, key: str, i: int) -> None:
        async with ThreadSensitiveContext():
            await threaded(store_class, key, i)

    return run


# --- timing ----------------------------------------------------------------------------


def rate_sync(
    step: Callable, store_class, sessions: list[str], seconds: float, workers: int
) -> float:
    """Requests/s with ``workers`` threads (1: a plain loop) for ``seconds``."""
    counts = [0] * workers
    deadline = time.perf_counter() + seconds

    def worker(n: int) -> None:
        i = n
        while time.perf_counter() < deadline:
            step(store_class, sessions[i % len(sessions)], i)
            i += workers
            counts[n] += 1

    started = time.perf_counter()
    if workers == 1:
        worker(0)
    else:
        pool = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    return sum(counts) / (time.perf_counter() - started)


async def rate_async(
    step: Callable[..., Awaitable[None]],
    store_class,
    sessions: list[str],
    seconds: float,
    workers: int,
) -> float:
    """Requests/s with ``workers`` requests in flight on one event loop."""
    counts = [0] * workers
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        i = n
        while time.perf_counter() < deadline:
            await step(store_class, sessions[i % len(sessions)], i)
            i += workers
            counts[n] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(workers)))
    return sum(counts) / (time.perf_counter() - started)


PING = b"*1\r\n$4\r\nPING\r\n"


def floor_sync(port: int, seconds: float) -> float:
    """PING round trips/s over a blocking socket, no client library: the sync floor."""
    count, deadline = 0, time.perf_counter() + seconds
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            sock.sendall(PING)
            sock.recv(64)
            count += 1
    return count / (time.perf_counter() - started)


class _Pong(asyncio.Protocol):
    waiter: asyncio.Future | None = None

    def data_received(self, data: bytes) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def floor_async(port: int, seconds: float) -> float:
    """PING round trips/s through the event loop (a bare protocol): the async floor."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(_Pong, "127.0.0.1", port)
    count, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    try:
        while time.perf_counter() < deadline:
            protocol.waiter = loop.create_future()
            transport.write(PING)
            await protocol.waiter
            count += 1
    finally:
        transport.close()
    return count / (time.perf_counter() - started)


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """uvloop when installed (uvicorn[standard] serves the app on it), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def server_cost(client, step: Callable, store_class, sessions: list[str], n: int = 2000):
    """(round trips, Redis server µs) per request, from ``INFO commandstats``.

    This backend sends only ``EVALSHA`` (whose time includes the commands its script
    runs, which commandstats also lists); the cache backend sends plain commands.
    """
    client.config_resetstat()
    for i in range(n):
        step(store_class, sessions[i % len(sessions)], i)
    stats = {
        name.removeprefix("cmdstat_"): value
        for name, value in client.info("commandstats").items()
        if not name.startswith(("cmdstat_config", "cmdstat_info"))
    }
    top = {"evalsha": stats["evalsha"]} if "evalsha" in stats else stats
    calls = sum(v["calls"] for v in top.values())
    usec = sum(v["usec"] for v in top.values())
    return calls / n, usec / n


def memory_usage(client, key: str) -> int:
    return int(client.memory_usage(key, samples=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per figure (best kept)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--sessions", type=int, default=200, help="distinct sessions used")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        server = RedisServer(Path(data_dir), appendonly=False).start()
        try:
            configure(server.url)
            run(args, server)
        finally:
            server.stop()


def run(args: argparse.Namespace, server: RedisServer) -> None:
    from django.contrib.sessions.backends.cache import SessionStore as CacheStore
    from django.core.cache import caches

    from agenticpal import redis_keys as keys
    from agenticpal.redis_clients import get_client
    from sessions_redis.backend import SessionStore as OurStore

    ours = new_sessions(OurStore, args.sessions, email_in_record=True)
    cache = new_sessions(CacheStore, args.sessions, email_in_record=False)
    client = get_client("sessions")
    bytes_ours = memory_usage(client, keys.session_key(ours[0]))
    # django-redis names the key itself (":1:<session prefix><id>").
    cache_key = caches[settings.SESSION_CACHE_ALIAS].make_key(CacheStore(cache[0]).cache_key)
    bytes_cache = memory_usage(client, cache_key)

    costs = {
        kind: [server_cost(client, s, c, k) for s, c, k in pairs]
        for kind, pairs in (
            ("read", ((read_ours, OurStore, ours), (read_cache, CacheStore, cache))),
            ("write", ((write_any, OurStore, ours), (write_any, CacheStore, cache))),
        )
    }

    factory, loop_name = loop_factory()
    steps = {
        ("sync", "read"): (read_ours, read_cache),
        ("sync", "write"): (write_any, write_any),
        ("async", "read"): (aread_ours, aread_cache),
        ("async", "write"): (awrite_any, awrite_any),
        ("sync under ASGI", "read"): (under_asgi(read_ours), under_asgi(read_cache)),
        ("sync under ASGI", "write"): (under_asgi(write_any), under_asgi(write_any)),
    }
    results: dict[tuple[str, str, int], list[float]] = {
        (mode, kind, workers): [0.0, 0.0]
        for (mode, kind) in steps
        for workers in (1, args.concurrency)
    }
    with asyncio.Runner(loop_factory=factory) as runner:
        for kind in ("read", "write"):
            for workers in (1, args.concurrency):
                # Every mode and both backends take turns within a round, so a noisy
                # moment cannot favour one side of any ratio printed below.
                for _ in range(args.rounds):
                    for mode in ("sync", "async", "sync under ASGI"):
                        mine, theirs = steps[(mode, kind)]
                        for n, (store_class, step, sessions) in enumerate(
                            ((OurStore, mine, ours), (CacheStore, theirs, cache))
                        ):
                            if mode == "sync":
                                rate = rate_sync(step, store_class, sessions, args.seconds, workers)
                            else:
                                rate = runner.run(
                                    rate_async(step, store_class, sessions, args.seconds, workers)
                                )
                            cell = results[(mode, kind, workers)]
                            cell[n] = max(cell[n], rate)
        floor = [0.0, 0.0]  # the event loop's own cost: a bare round trip, sync vs async
        for _ in range(args.rounds):
            floor[0] = max(floor[0], floor_sync(server.port, args.seconds))
            floor[1] = max(floor[1], runner.run(floor_async(server.port, args.seconds)))

    c = args.concurrency
    print(f"Sessions: sessions_redis vs cache backend + django-redis, Redis {server.version}, "
          f"one server; best of {args.rounds} x {args.seconds}s; async on {loop_name}; "
          f"x{c} = {c} requests in flight (threads for sync)")  # fmt: skip
    print()
    print("| cycles/s | sessions_redis | cache + django-redis | ratio |")
    print("|---|---:|---:|---:|")
    for (mode, kind, workers), (a, b) in results.items():
        label = f"{kind} request, {mode}, x{workers}"
        print(f"| {label} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")
    ratio = bytes_ours / bytes_cache
    print(f"| bytes per session (MEMORY USAGE) | {bytes_ours} | {bytes_cache} | {ratio:.2f}x |")
    for kind, ((trips_a, us_a), (trips_b, us_b)) in costs.items():
        print(f"| {kind} request: Redis round trips | {trips_a:.0f} | {trips_b:.0f} | "
              f"{trips_a / trips_b:.2f}x |")  # fmt: skip
        print(f"| {kind} request: Redis server µs (commandstats) | {us_a:.1f} | {us_b:.1f} | "
              f"{us_a / us_b:.2f}x |")  # fmt: skip
    print()
    print(f"| sessions_redis, async (aload/asave) / | x1 | x{c} |")
    print("|---|---:|---:|")
    for kind in ("read", "write"):
        for base in ("sync", "sync under ASGI"):
            a, b = (results[("async", kind, w)][0] / results[(base, kind, w)][0] for w in (1, c))
            print(f"| {base}, {kind} request | {a:.2f}x | {b:.2f}x |")
    print(f"| floor: a bare PING round trip, event loop / blocking socket "
          f"({floor[1]:,.0f} / {floor[0]:,.0f} per s) | {floor[1] / floor[0]:.2f}x | |")  # fmt: skip


if __name__ == "__main__":
    main()
