"""Checkpointer benchmark: a chat-shaped LangGraph workload on several savers, side by
side in one process.

    .venv/bin/python bench/checkpointer.py [--threads 4] [--turns 150]
        [--official-url redis://host:port] [--json out.json]

The workload: a two-node graph (``agent`` appends the assistant's reply, ``bookkeep``
appends a short status message) over a ``messages`` channel with ``add_messages``; every
turn sends one user message. ``--threads`` conversations run concurrently on one event
loop, ``--turns`` turns each, after a short warm-up conversation per saver.

Savers:

- ``InMemorySaver`` (LangGraph's, the limit: no I/O at all);
- ``AsyncRedisCheckpointer`` (this project), db 1 of a ``redis-server`` started here on
  a free port (AOF on, ``appendfsync everysec``, as in production);
- the official ``langgraph-checkpoint-redis`` ``AsyncRedisSaver``, only with
  ``--official-url`` (it needs RediSearch + RedisJSON: Redis 8 or Redis Stack, db 0);
- the AWS ``AsyncValkeySaver`` (``langgraph-checkpoint-aws[valkey]``) if importable, on
  the same local server, db 2.

Per saver: turns/s, p50/p99 latency of one turn, p99 over the first ten turns of every
conversation against p99 over the last ten (does a turn get slower as history grows?),
and Redis bytes per turn (``used_memory`` growth over the run, and for our saver also
``MEMORY USAGE`` of the thread keys). Numbers are noisy on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings
from langchain_core.messages import AIMessage, HumanMessage
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


class State(TypedDict):
    messages: Annotated[list, add_messages]


def build_graph(checkpointer: Any) -> Any:
    def agent(state: State) -> dict:
        return {"messages": [AIMessage(REPLY + str(len(state["messages"])))]}

    def bookkeep(state: State) -> dict:
        return {"messages": [AIMessage(f"turn {len(state['messages']) // 3} done")]}

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node("bookkeep", bookkeep)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "bookkeep")
    builder.add_edge("bookkeep", END)
    return builder.compile(checkpointer=checkpointer)


async def converse(graph: Any, thread_id: str, turns: int, lat: list[list[float]]) -> None:
    config = {"configurable": {"thread_id": thread_id}}
    for turn in range(turns):
        message = HumanMessage(f"Turn {turn}: what is on my calendar next week, and why?")
        t0 = time.perf_counter()
        await graph.ainvoke({"messages": [message]}, config)
        lat[turn].append(time.perf_counter() - t0)


@dataclass
class Result:
    saver: str
    turns: int
    seconds: float
    turns_per_s: float
    p50_ms: float
    p99_ms: float
    p99_first10_ms: float
    p99_last10_ms: float
    bytes_per_turn: int | None
    key_bytes_per_turn: int | None = None
    notes: list[str] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def run_one(
    name: str,
    saver: Any,
    threads: int,
    turns: int,
    memory: Callable[[], Any] | None = None,
    key_bytes: Callable[[list[str]], Any] | None = None,
) -> Result:
    graph = build_graph(saver)
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
        saver=name,
        turns=total,
        seconds=round(elapsed, 3),
        turns_per_s=round(total / elapsed, 1),
        p50_ms=round(pct(flat, 0.50), 2),
        p99_ms=round(pct(flat, 0.99), 2),
        p99_first10_ms=round(pct([x for t in lat[:window] for x in t], 0.99), 2),
        p99_last10_ms=round(pct([x for t in lat[-window:] for x in t], 0.99), 2),
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
    base = next((r for r in results if r.saver == "InMemorySaver"), None)
    last = f"{max(1, turns - 9)}-{turns}"
    rows = [
        f"| saver | turns/s | vs InMemorySaver | p50 ms | p99 ms | p99 turns 1-10 | "
        f"p99 turns {last} | growth | Redis bytes/turn |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.turns_per_s / base.turns_per_s:.2f}x" if base else "-"
        growth = f"{r.p99_last10_ms / r.p99_first10_ms:.2f}x" if r.p99_first10_ms else "-"
        mem = "-" if r.bytes_per_turn is None else f"{r.bytes_per_turn:,}"
        if r.key_bytes_per_turn is not None:
            mem += f" (keys: {r.key_bytes_per_turn:,})"
        rows.append(
            f"| {r.saver} | {r.turns_per_s:,.0f} | {ratio} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.p99_first10_ms:.2f} | {r.p99_last10_ms:.2f} | {growth} | {mem} |"
        )
    return "\n".join(rows)


async def main(args: argparse.Namespace, server: RedisServer) -> list[Result]:
    from langgraph.checkpoint.memory import InMemorySaver

    from agenticpal.redis_clients import url_for

    results = [await run_one("InMemorySaver", InMemorySaver(), args.threads, args.turns)]
    async with ours(url_for("checkpoints")) as (saver, memory, key_bytes):
        await saver.client.flushdb()
        results.append(
            await run_one(
                "AsyncRedisCheckpointer (db 1)", saver, args.threads, args.turns, memory, key_bytes
            )
        )
    if args.official_url:
        async with official(args.official_url) as (saver, memory, _):
            results.append(
                await run_one(
                    f"official AsyncRedisSaver ({mask_password(args.official_url)})",
                    saver,
                    args.threads,
                    args.turns,
                    memory,
                )
            )
    else:
        print(
            "skip: official langgraph-checkpoint-redis saver: needs RediSearch/RedisJSON "
            "(Redis 8 or Redis Stack, db 0); pass --official-url redis://host:port to include it"
        )
    reason = valkey_skip_reason()
    if reason:
        print(f"skip: AWS AsyncValkeySaver: {reason}")
    else:
        async with aws_valkey(with_db(server.url, VALKEY_DB)) as (saver, memory, _):
            results.append(
                await run_one(
                    "AWS AsyncValkeySaver (db 2)", saver, args.threads, args.turns, memory
                )
            )
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4, help="concurrent conversations")
    parser.add_argument("--turns", type=int, default=150, help="turns per conversation")
    parser.add_argument("--official-url", help="a Redis 8 / Redis Stack server (db 0 is used)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
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
    print()
    print(table(results, args.turns))
    print()
    ours_ = next(r for r in results if r.saver.startswith("AsyncRedisCheckpointer"))
    base = results[0]
    ratio = ours_.turns_per_s / base.turns_per_s
    growth = ours_.p99_last10_ms / ours_.p99_first10_ms
    print(f"throughput vs InMemorySaver: {ratio:.2f}x (target >= 0.70x)")
    print(f"p99 last 10 turns / first 10 turns: {growth:.2f}x (target <= 1.20x)")
    print(f"p50 growth (for reference): {statistics.median([ours_.p50_ms]):.2f} ms p50 overall")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    cli()
