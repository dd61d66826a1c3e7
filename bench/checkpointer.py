"""Checkpointer benchmark: a chat-shaped LangGraph workload on several savers side by side.

    .venv/bin/python bench/checkpointer.py [--threads 4] [--turns 150] [--warmup 10]
        [--saver-reps 50] [--workload messages|delta] [--official-url redis://host:port]
        [--json out.json]

Runs ``InMemorySaver`` (no I/O: the limit), this project's ``AsyncRedisCheckpointer`` (db 1
of a ``redis-server`` started here), the AWS ``AsyncValkeySaver`` when importable (db 2)
and, with ``--official-url``, the official saver; then times the savers alone, without
LangGraph (``--saver-reps 0`` skips that). Every saver gets the same warm-up, workload and
byte accounting, so the figures compare. Methodology and results: the README's
"LangGraph checkpoints (db 1)" section.
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


WORKLOADS = {"messages": FullState, "delta": DeltaState}


def build_graph(checkpointer: Any, workload: str) -> Any:
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


async def converse(graph: Any, thread_id: str, turns: int, lat: list[list[float]]) -> None:
    config = {"configurable": {"thread_id": thread_id}}
    for turn in range(turns):
        text = f"Turn {turn}: what is on my calendar next week, and why?"
        message = HumanMessage(text, id=f"u{turn}")
        t0 = time.perf_counter()
        await graph.ainvoke({"messages": [message]}, config)
        lat[turn].append(time.perf_counter() - t0)


@dataclass
class Result:
    workload: str
    saver: str
    turns: int
    seconds: float
    turns_per_s: float
    p50_ms: float
    p99_ms: float
    p99_first10_ms: float
    p99_last10_ms: float
    p50_first10_ms: float
    p50_last10_ms: float
    key_bytes_per_turn: int | None = None
    used_memory_per_turn: int | None = None
    gc_full_collections: int = 0
    gc_longest_ms: float = 0.0


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
    saver: Any,
    threads: int,
    turns: int,
    warmup: int,
    client: Any = None,
) -> Result:
    graph = build_graph(saver, workload)
    warm = [[] for _ in range(warmup)]
    await asyncio.gather(
        *(converse(graph, f"warmup-{uuid.uuid4()}", warmup, warm) for _ in range(threads))
    )
    gc.collect()
    before = await redis_bytes(client) if client is not None else None
    lat: list[list[float]] = [[] for _ in range(turns)]
    ids = [f"bench-{uuid.uuid4()}" for _ in range(threads)]
    with FullCollections() as collections:
        t0 = time.perf_counter()
        await asyncio.gather(*(converse(graph, tid, turns, lat) for tid in ids))
        elapsed = time.perf_counter() - t0
    total = threads * turns
    flat = [x for per_turn in lat for x in per_turn]
    window = min(10, turns)
    first = [x for t in lat[:window] for x in t]
    last = [x for t in lat[-window:] for x in t]
    result = Result(
        workload=workload,
        saver=name,
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
        after = await redis_bytes(client)
        result.key_bytes_per_turn = (after[0] - before[0]) // total
        result.used_memory_per_turn = (after[1] - before[1]) // total
    return result


# --- the savers -----------------------------------------------------------------------


async def redis_bytes(client: Any) -> tuple[int, int]:
    """(sum of MEMORY USAGE over every key of the client's db, used_memory).

    The same measure for every Redis saver; each saver has a database of its own.
    SCAN is fine here: this is a bench, not a request path."""
    found = [key async for key in client.scan_iter(count=1000)]
    total = 0
    for i in range(0, len(found), 1000):
        pipe = client.pipeline(transaction=False)
        for key in found[i : i + 1000]:
            pipe.memory_usage(key, samples=0)
        total += sum(int(n or 0) for n in await pipe.execute())
    return total, int((await client.info("memory"))["used_memory"])


@asynccontextmanager
async def ours(url: str) -> AsyncIterator[tuple[Any, Any]]:
    from chat.checkpoint import AsyncRedisCheckpointer

    async with AsyncRedisCheckpointer.from_url(url) as saver:
        yield saver, saver.client


@asynccontextmanager
async def official(url: str) -> AsyncIterator[tuple[Any, Any]]:
    from langgraph.checkpoint.redis.aio import AsyncRedisSaver

    from agenticpal.redis_clients import async_client_for_url

    client = async_client_for_url(url)
    saver = AsyncRedisSaver(redis_client=client)
    await saver.asetup()
    try:
        yield saver, client
    finally:
        await client.aclose()


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
        f"p99 growth | p50 turns 1-10 / {last} | p50 growth | Redis bytes/turn (keys) | "
        "used_memory/turn | full GCs (longest ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.turns_per_s / base.turns_per_s:.2f}x" if base else "-"
        g99 = f"{r.p99_last10_ms / r.p99_first10_ms:.2f}x" if r.p99_first10_ms else "-"
        g50 = f"{r.p50_last10_ms / r.p50_first10_ms:.2f}x" if r.p50_first10_ms else "-"
        keyb = "-" if r.key_bytes_per_turn is None else f"{r.key_bytes_per_turn:,}"
        used = "-" if r.used_memory_per_turn is None else f"{r.used_memory_per_turn:,}"
        rows.append(
            f"| {r.saver} | {r.turns_per_s:,.0f} | {ratio} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.p99_first10_ms:.2f} / {r.p99_last10_ms:.2f} | {g99} | "
            f"{r.p50_first10_ms:.2f} / {r.p50_last10_ms:.2f} | {g50} | {keyb} | {used} | "
            f"{r.gc_full_collections} ({r.gc_longest_ms:.0f}) |"
        )
    return "\n".join(rows)


OURS = "AsyncRedisCheckpointer (db 1)"
AWS = "AWS AsyncValkeySaver (db 2)"


async def main(args: argparse.Namespace, server: RedisServer) -> tuple[list[Result], list[Any]]:
    from langgraph.checkpoint.memory import InMemorySaver

    from agenticpal.redis_clients import url_for

    results: list[Result] = []
    reason = valkey_skip_reason()
    if not args.official_url:
        print(
            "skip: official langgraph-checkpoint-redis saver: needs RediSearch/RedisJSON "
            "(Redis 8 or Redis Stack, db 0); pass --official-url redis://host:port to include it"
        )
    if reason:
        print(f"skip: AWS AsyncValkeySaver: {reason}")
    shape = (args.threads, args.turns, args.warmup)
    valkey_url = with_db(server.url, VALKEY_DB)
    for workload in args.workload:
        results.append(await run_one(workload, "InMemorySaver", InMemorySaver(), *shape))
        async with ours(url_for("checkpoints")) as (saver, client):
            await client.flushdb()
            results.append(await run_one(workload, OURS, saver, *shape, client))
        if args.official_url:
            async with official(args.official_url) as (saver, client):
                name = f"official AsyncRedisSaver ({mask_password(args.official_url)})"
                results.append(await run_one(workload, name, saver, *shape, client))
        if not reason:
            async with aws_valkey(valkey_url) as (saver, client):
                await client.flushdb()
                results.append(await run_one(workload, AWS, saver, *shape, client))
    only: list[Any] = []
    if args.saver_reps:
        length = 150
        only.append(("InMemorySaver", await saver_only(InMemorySaver(), args.saver_reps, length)))
        async with ours(url_for("checkpoints")) as (saver, client):
            await client.flushdb()
            only.append((OURS, await saver_only(saver, args.saver_reps, length)))
        if args.official_url:
            async with official(args.official_url) as (saver, _):
                name = f"official AsyncRedisSaver ({mask_password(args.official_url)})"
                only.append((name, await saver_only(saver, args.saver_reps, length)))
        if not reason:
            async with aws_valkey(valkey_url) as (saver, client):
                await client.flushdb()
                only.append((AWS, await saver_only(saver, args.saver_reps, length)))
    return results, only


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4, help="concurrent conversations")
    parser.add_argument("--turns", type=int, default=150, help="turns per conversation")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured warm-up turns")
    parser.add_argument(
        "--saver-reps",
        type=int,
        default=50,
        help="saver-only section: threads of 150 checkpoints per saver (0 skips it); "
        "each window gets 10 x this many samples, so p99 is not just the slowest two",
    )
    parser.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        action="append",
        help="messages: add_messages channel (every step stores the whole list); "
        "delta: the same messages in a DeltaChannel. Repeatable; default both.",
    )
    parser.add_argument("--official-url", help="a Redis 8 / Redis Stack server (db 0 is used)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.workload = args.workload or ["messages", "delta"]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), appendonly=True).start()
        try:
            configure(server.url)
            print(
                f"redis-server {server.version} on port {server.port}; "
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
    if only:
        print(
            f"\n### saver only: one thread of 150 checkpoints, {args.saver_reps} repetitions "
            "per saver, checkpoints 1-10 vs 141-150\n"
        )
        print(saver_table(only, 150))
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
