"""Checkpointer benchmark: a chat-shaped LangGraph workload on several savers, side by
side in one process.

    .venv/bin/python bench/checkpointer.py [--threads 4] [--turns 150]
        [--official-url redis://host:port] [--json out.json]

The workload: a two-node graph (``agent`` appends the assistant's reply, ``bookkeep``
appends a short status message) over a ``messages`` channel; every turn sends one user
message. ``--threads`` conversations run concurrently on one event
loop, ``--turns`` turns each, after a short warm-up conversation per saver.

Savers:

- ``InMemorySaver`` (LangGraph's, the limit: no I/O at all);
- ``AsyncRedisCheckpointer`` (this project), db 1 of a ``redis-server`` started here on
  a free port (AOF on, ``appendfsync everysec``, as in production);
- the official ``langgraph-checkpoint-redis`` ``AsyncRedisSaver``, only with
  ``--official-url`` (it needs RediSearch + RedisJSON: Redis 8 or Redis Stack, db 0);
- the AWS ``AsyncValkeySaver`` (``langgraph-checkpoint-aws[valkey]``) if importable, on
  the same local server, db 2.

Per saver: turns/s, p50/p99 latency of one turn, p99 (and p50) over the first ten turns
of every conversation against the last ten (does a turn get slower as history grows?),
and Redis bytes per turn (``used_memory`` growth over the run, and for our saver also
``MEMORY USAGE`` of the thread keys). Numbers are noisy on a busy machine.

Two workloads (``--workload``, default both). ``messages``: the usual ``add_messages``
channel; every step hands the saver the whole message list, so a turn costs more as the
conversation grows, with every saver including ``InMemorySaver`` (LangGraph serialises
and reduces the full list). ``delta``: the same messages in a ``DeltaChannel``; a step
stores only its new messages and a snapshot every 100 updates, and loading a thread
replays the writes since the last snapshot (``get_delta_channel_history``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
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

from agenticpal.config import mask_password, with_db
from agenticpal.redis_server import RedisServer

REPLY = (
    "Here is what I found in your calendar for next week: three meetings on Tuesday, "
    "a one-to-one on Wednesday at 10:00 and the team review on Friday afternoon. "
    "Shall I draft an email to move the Friday review to Thursday? "
)
VALKEY_DB = 2  # bench-only: keeps the AWS saver's keys away from ours (db 1)


def configure(url: str) -> None:
    from sessions_redis import keys

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-secret-key-0123456789-0123456789-0123456789",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        DATABASES={},
        USE_TZ=True,
        CHECKPOINTER="agenticpal",
        REDIS={
            "URL": url,
            "SESSIONS_URL": with_db(url, keys.SESSIONS_DB),
            "CHECKPOINTS_URL": with_db(url, keys.CHECKPOINTS_DB),
            "SOCKET_TIMEOUT": 5,
            "CONNECT_TIMEOUT": 2,
            "MAX_CONNECTIONS": 200,
        },
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
    bytes_per_turn: int | None
    key_bytes_per_turn: int | None = None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def run_one(
    workload: str,
    name: str,
    saver: Any,
    threads: int,
    turns: int,
    memory: Callable[[], Any] | None = None,
    key_bytes: Callable[[list[str]], Any] | None = None,
) -> Result:
    graph = build_graph(saver, workload)
    await converse(graph, f"warmup-{uuid.uuid4()}", 5, [[] for _ in range(5)])
    before = await memory() if memory else None
    lat: list[list[float]] = [[] for _ in range(turns)]
    ids = [f"bench-{uuid.uuid4()}" for _ in range(threads)]
    t0 = time.perf_counter()
    await asyncio.gather(*(converse(graph, tid, turns, lat) for tid in ids))
    elapsed = time.perf_counter() - t0
    total = threads * turns
    flat = [x for per_turn in lat for x in per_turn]
    window = min(10, turns)
    used = (await memory() - before) // total if memory else None
    return Result(
        workload=workload,
        saver=name,
        turns=total,
        seconds=round(elapsed, 3),
        turns_per_s=round(total / elapsed, 1),
        p50_ms=round(pct(flat, 0.50), 2),
        p99_ms=round(pct(flat, 0.99), 2),
        p99_first10_ms=round(pct([x for t in lat[:window] for x in t], 0.99), 2),
        p99_last10_ms=round(pct([x for t in lat[-window:] for x in t], 0.99), 2),
        p50_first10_ms=round(pct([x for t in lat[:window] for x in t], 0.5), 2),
        p50_last10_ms=round(pct([x for t in lat[-window:] for x in t], 0.5), 2),
        bytes_per_turn=used,
        key_bytes_per_turn=(await key_bytes(ids)) // total if key_bytes else None,
    )


# --- the savers -----------------------------------------------------------------------


def used_memory(client: Any) -> Callable[[], Any]:
    async def read() -> int:
        return int((await client.info("memory"))["used_memory"])

    return read


@asynccontextmanager
async def ours(url: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    from chat.checkpoint import AsyncRedisCheckpointer

    async with AsyncRedisCheckpointer.from_url(url) as saver:

        async def key_bytes(thread_ids: list[str]) -> int:
            pipe = saver.client.pipeline(transaction=False)
            for tid in thread_ids:
                for key in saver.thread_keys(tid):
                    pipe.memory_usage(key, samples=0)
            return sum(int(n or 0) for n in await pipe.execute())

        yield saver, used_memory(saver.client), key_bytes


@asynccontextmanager
async def official(url: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    from langgraph.checkpoint.redis.aio import AsyncRedisSaver

    from agenticpal.redis_clients import async_client_for_url

    client = async_client_for_url(url)
    saver = AsyncRedisSaver(redis_client=client)
    await saver.asetup()
    try:
        yield saver, used_memory(client), None
    finally:
        await client.aclose()


@asynccontextmanager
async def aws_valkey(url: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver
    from valkey.asyncio import Valkey

    client = Valkey.from_url(url)  # the AWS saver takes its own client type
    try:
        yield AsyncValkeySaver(client), used_memory(client), None
    finally:
        await client.aclose()


def valkey_skip_reason() -> str | None:
    try:
        import langgraph_checkpoint_aws.checkpoint.valkey  # noqa: F401
    except ImportError as exc:
        return f"not installed ({exc}); pip install 'langgraph-checkpoint-aws[valkey]' to compare"
    return None


# --- report ---------------------------------------------------------------------------


def table(results: list[Result], turns: int) -> str:
    """One markdown table for one workload; ratios against its InMemorySaver row."""
    base = next((r for r in results if r.saver == "InMemorySaver"), None)
    last = f"{max(1, turns - 9)}-{turns}"
    rows = [
        f"| saver | turns/s | vs InMemorySaver | p50 ms | p99 ms | p99 turns 1-10 | "
        f"p99 turns {last} | growth | p50 turns 1-10 / {last} | Redis bytes/turn |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.turns_per_s / base.turns_per_s:.2f}x" if base else "-"
        growth = f"{r.p99_last10_ms / r.p99_first10_ms:.2f}x" if r.p99_first10_ms else "-"
        mem = "-" if r.bytes_per_turn is None else f"{r.bytes_per_turn:,}"
        if r.key_bytes_per_turn is not None:
            mem += f" (keys: {r.key_bytes_per_turn:,})"
        rows.append(
            f"| {r.saver} | {r.turns_per_s:,.0f} | {ratio} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.p99_first10_ms:.2f} | {r.p99_last10_ms:.2f} | {growth} | "
            f"{r.p50_first10_ms:.2f} / {r.p50_last10_ms:.2f} | {mem} |"
        )
    return "\n".join(rows)


async def main(args: argparse.Namespace, server: RedisServer) -> list[Result]:
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
    shape = (args.threads, args.turns)
    for workload in args.workload:
        results.append(await run_one(workload, "InMemorySaver", InMemorySaver(), *shape))
        async with ours(url_for("checkpoints")) as (saver, memory, key_bytes):
            await saver.client.flushdb()
            name = "AsyncRedisCheckpointer (db 1)"
            results.append(await run_one(workload, name, saver, *shape, memory, key_bytes))
        if args.official_url:
            async with official(args.official_url) as (saver, memory, _):
                name = f"official AsyncRedisSaver ({mask_password(args.official_url)})"
                results.append(await run_one(workload, name, saver, *shape, memory))
        if not reason:
            async with aws_valkey(with_db(server.url, VALKEY_DB)) as (saver, memory, _):
                name = "AWS AsyncValkeySaver (db 2)"
                results.append(await run_one(workload, name, saver, *shape, memory))
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4, help="concurrent conversations")
    parser.add_argument("--turns", type=int, default=150, help="turns per conversation")
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
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), appendonly=True).start()
        try:
            configure(server.url)
            print(
                f"redis-server {server.version} on port {server.port}; "
                f"{args.threads} conversations x {args.turns} turns per saver"
            )
            results = asyncio.run(main(args, server))
        finally:
            server.stop()
    for workload in args.workload:
        rows = [r for r in results if r.workload == workload]
        print(f"\n### workload: {workload}\n")
        print(table(rows, args.turns))
        mine = next(r for r in rows if r.saver.startswith("AsyncRedisCheckpointer"))
        ratio = mine.turns_per_s / rows[0].turns_per_s
        growth = mine.p99_last10_ms / mine.p99_first10_ms
        base = rows[0]
        print(
            f"\nours: throughput {ratio:.2f}x InMemorySaver (target >= 0.70x) "
            f"{'ok' if ratio >= 0.7 else 'MISSED'}; p99 last 10 turns / first 10 turns "
            f"{growth:.2f}x (target <= 1.20x) {'ok' if growth <= 1.2 else 'MISSED'}; "
            f"InMemorySaver's own growth {base.p99_last10_ms / base.p99_first10_ms:.2f}x"
        )
        print(
            f"ours: p50 latency added over InMemorySaver: "
            f"{mine.p50_first10_ms - base.p50_first10_ms:+.2f} ms at turns 1-10, "
            f"{mine.p50_last10_ms - base.p50_last10_ms:+.2f} ms at the last ten turns"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    cli()
