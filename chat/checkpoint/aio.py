"""``AsyncRedisCheckpointer``: the asyncio saver the web path and the graph runs use.

Native ``redis.asyncio`` (no thread pool), one round trip per ``put`` / ``put_writes`` /
``get_tuple``. Only I/O lives here; the layout and encoding are in
``chat.checkpoint.base``, and the sync twin is ``chat.checkpoint.sync``.

A ``redis.asyncio`` client belongs to the event loop that created it, so build one saver
per loop (``create_redis_checkpointer()`` does, on the per-loop client of
``agenticpal.redis_clients``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    SerializerProtocol,
    get_checkpoint_id,
)

from agenticpal import redis_clients
from agenticpal import redis_keys as keys
from chat.checkpoint.base import (
    BaseRedisCheckpointer,
    _as_str,
    now_ms,
)

BATCH = 100


TURN_READ_SECONDS = 5.0  # a turn's reads (aread_turn) older than this are read again
SWEEP_TURN_READS = 100  # past this many kept reads, the expired ones are dropped

_USED = object()


@dataclass
class _TurnRead:
    """What :meth:`AsyncRedisCheckpointer.aread_turn` read, until the turn uses it."""

    thread_id: str
    ns: str
    checkpoint_id: str  # "" when the thread had no checkpoint
    channels: tuple[str, ...]
    entry: Any  # the latest checkpoint as LOAD_LUA returns it (None: none); _USED once used
    chain: Any  # its delta history as DELTA_LUA returns it; None once used
    at: float = field(default_factory=time.monotonic)

    def fresh(self) -> bool:
        return time.monotonic() - self.at < TURN_READ_SECONDS


# The read of the turn the current task (and the tasks it starts: LangGraph's) runs. Only
# there is it used: another reader of the thread in this process (a page, a socket's
# history) reads Redis as always.
_TURN_READ: ContextVar[_TurnRead | None] = ContextVar("agenticpal_turn_read", default=None)


class AsyncRedisCheckpointer(BaseRedisCheckpointer):
    """LangGraph checkpointer on plain Redis (>= 6.2, Valkey), asyncio."""

    client: aioredis.Redis

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        ttl: int | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(client, ttl=ttl, serde=serde)
        self._turns: dict[str, _TurnRead] = {}  # aread_turn's reads, by thread

    @classmethod
    def from_url(cls, url: str, *, ttl: int | None = None, **kwargs: Any) -> AsyncRedisCheckpointer:
        """A saver with its own connection pool; close it with ``aclose()`` or ``async with``."""
        saver = cls(redis_clients.async_client_for_url(url), ttl=ttl, **kwargs)
        saver._owns_client = True
        return saver

    async def aload_scripts(self) -> None:
        """Load the saver's scripts into Redis now, not on their first call."""
        await redis_clients.aload_scripts(self.client, self.script_sources)

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncRedisCheckpointer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aping(self) -> None:
        """Raise ``CheckpointerUnavailableError`` unless Redis answers."""
        with self._guard("connecting to"):
            await self.client.ping()

    # --- LangGraph API ---------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id = str(config["configurable"]["thread_id"])
        ns = self._ns(config)
        cid = get_checkpoint_id(config)
        turn = self._turn_read(thread_id, ns)
        if turn is not None and not cid and turn.entry is not _USED:
            entry, turn.entry = turn.entry, _USED
            return None if entry is None else self._decode(thread_id, ns, entry)
        ks, args = self._load_args(thread_id, ns, [cid] if cid else None)
        with self._guard("reading", thread_id):
            entries = await self._load(keys=ks, args=args)
        return self._decode(thread_id, ns, entries[0]) if entries else None

    async def ahas_interrupt(self, config: RunnableConfig) -> bool:
        """Whether a task of the latest checkpoint (of ``config``'s namespace; a
        ``checkpoint_id`` in ``config`` is not looked at) was interrupted, without
        loading the checkpoint: one small script call."""
        ks, args = self._interrupted_args(config)
        with self._guard("reading", str(config["configurable"]["thread_id"])):
            return int(await self._interrupted(keys=ks, args=args)) == 1

    async def aread_turn(self, config: RunnableConfig, channels: Sequence[str]) -> bool:
        """What a turn reads before it runs, in one script call: returns whether a task of
        the latest checkpoint (of ``config``'s namespace) was interrupted, as
        :meth:`ahas_interrupt`, and keeps that checkpoint and the history of its delta
        ``channels`` for the turn's own reads that follow in this task (LangGraph's
        ``aget_tuple`` of the latest checkpoint, then ``aget_delta_channel_history`` of
        it), which then make no round trip. For the run that holds the thread's run lock
        (nothing else writes the thread meanwhile): each is used once, only by the task
        that called this and the tasks it starts, within ``TURN_READ_SECONDS``; any write
        of the thread through this saver and :meth:`forget_turn` drop them."""
        thread_id, ns = str(config["configurable"]["thread_id"]), self._ns(config)
        ks, args = self._interrupted_args(config)
        with self._guard("reading", thread_id):
            found = await self._turn(keys=ks, args=[*args, *channels])
        if len(self._turns) >= SWEEP_TURN_READS:  # runs that ended without using theirs
            for stale in [t for t, turn in self._turns.items() if not turn.fresh()]:
                del self._turns[stale]
        if int(found[0]) < 0:  # no checkpoint yet: the turn's aget_tuple finds none
            turn = _TurnRead(thread_id, ns, "", tuple(channels), None, None)
        else:
            entry = found[1]
            turn = _TurnRead(thread_id, ns, _as_str(entry[0]), tuple(channels), entry, found[2])
        self._turns[thread_id] = turn
        _TURN_READ.set(turn)
        return int(found[0]) == 1

    def forget_turn(self, thread_id: str) -> None:
        """Drop what :meth:`aread_turn` kept for ``thread_id`` (its turn has ended)."""
        self._turns.pop(str(thread_id), None)

    def _turn_read(self, thread_id: str, ns: str) -> _TurnRead | None:
        """This task's turn read of ``thread_id``, if it is still good to use."""
        turn = _TURN_READ.get()
        if turn is None or turn.thread_id != thread_id or turn.ns != ns:
            return None
        if self._turns.get(thread_id) is not turn or not turn.fresh():
            return None  # dropped (a write, the turn's end) or too old
        return turn

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        before_id = get_checkpoint_id(before) if before else None
        remaining = [limit]
        if config is None:
            async for thread_id in self._all_threads():
                async for tup in self._list_thread(
                    thread_id, None, None, filter, before_id, remaining
                ):
                    yield tup
                if remaining[0] is not None and remaining[0] <= 0:
                    return
            return
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = self._ns(config) if conf.get("checkpoint_ns") is not None else None
        async for tup in self._list_thread(
            thread_id, ns, get_checkpoint_id(config), filter, before_id, remaining
        ):
            yield tup

    async def _list_thread(
        self,
        thread_id: str,
        ns: str | None,
        only_id: str | None,
        filter: dict[str, Any] | None,
        before_id: str | None,
        remaining: list[int | None],
    ) -> AsyncIterator[CheckpointTuple]:
        """Newest first; pages of ids from the sorted index, then one script per page."""
        if remaining[0] is not None and remaining[0] <= 0:
            return
        idx_key, cp_key = self.thread_keys(thread_id)[:2]
        pages: AsyncIterator[list[tuple[str, str]]]
        if only_id is not None:
            pages = _aiter(
                [[(ns or "", only_id)]] if before_id is None or only_id < before_id else []
            )
        elif ns is None:
            with self._guard("listing", thread_id):
                members = await self.client.zrange(idx_key, 0, -1)
            pairs = self._group_members(members, before_id)
            pages = _aiter([pairs[i : i + BATCH] for i in range(0, len(pairs), BATCH)])
        elif not filter:
            async for tup in self._ns_range(thread_id, ns, before_id, remaining):
                yield tup
            return
        else:
            pages = self._ns_pages(thread_id, idx_key, ns, before_id, remaining, bool(filter))
        async for page in pages:
            if filter:
                with self._guard("listing", thread_id):
                    recs = await self.client.hmget(cp_key, [f"{n}\0{c}" for n, c in page])
                page = [
                    (n, c)
                    for (n, c), rec in zip(page, recs, strict=True)
                    if rec is not None
                    and self._matches(self._record_metadata(thread_id, n, c, rec), filter)
                ]
            by_ns: dict[str, list[str]] = {}
            for n, c in page:
                by_ns.setdefault(n, []).append(c)
            loaded: dict[tuple[str, str], CheckpointTuple] = {}
            for n, cids in by_ns.items():
                ks, args = self._load_args(thread_id, n, cids)
                with self._guard("listing", thread_id):
                    entries = await self._load(keys=ks, args=args)
                for entry in entries:
                    tup = self._decode(thread_id, n, entry)
                    loaded[(n, tup.config["configurable"]["checkpoint_id"])] = tup
            for key in page:
                if key in loaded:
                    if remaining[0] is not None:
                        if remaining[0] <= 0:
                            return
                        remaining[0] -= 1
                    yield loaded[key]

    async def _ns_range(
        self, thread_id: str, ns: str, before_id: str | None, remaining: list[int | None]
    ) -> AsyncIterator[CheckpointTuple]:
        """One namespace, no filter: each page is one script call (ids and records)."""
        high, low = self._lex_bounds(ns, before_id)
        while True:
            size = BATCH if remaining[0] is None else min(BATCH, remaining[0])
            if size <= 0:
                return
            ks, args = self._range_args(thread_id, ns, high, low, size)
            with self._guard("listing", thread_id):
                entries = await self._load(keys=ks, args=args)
            for entry in entries:
                if remaining[0] is not None:
                    remaining[0] -= 1
                yield self._decode(thread_id, ns, entry)
            if len(entries) < size:
                return
            high = f"({ns}\0{_as_str(entries[-1][0])}"

    async def _ns_pages(
        self,
        thread_id: str,
        idx_key: str,
        ns: str,
        before_id: str | None,
        remaining: list[int | None],
        filtered: bool,
    ) -> AsyncIterator[list[tuple[str, str]]]:
        high, low = self._lex_bounds(ns, before_id)
        while True:
            size = BATCH if filtered or remaining[0] is None else min(BATCH, remaining[0])
            if size <= 0:
                return
            with self._guard("listing", thread_id):
                members = await self.client.zrevrangebylex(idx_key, high, low, start=0, num=size)
            if not members:
                return
            yield [tuple(m.decode().split("\0", 1)) for m in members]  # type: ignore[misc]
            if len(members) < size:
                return
            high = f"({members[-1].decode()}"

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """``DeltaChannel`` replay: the whole parent walk is one script call."""
        if not channels:
            return {}
        thread_id, ns, ks, args = self._delta_args(config, channels)
        turn = self._turn_read(thread_id, ns)
        if (
            turn is not None
            and turn.chain is not None
            and turn.channels == tuple(channels)
            and args[1] == turn.checkpoint_id
        ):
            chain, turn.chain = turn.chain, None
            return self._decode_delta(thread_id, ns, channels, chain)
        with self._guard("reading the history of", thread_id):
            chain = await self._delta(keys=ks, args=args)
        return self._decode_delta(thread_id, ns, channels, chain)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        ks, args, next_config = self._encode_put(config, checkpoint, metadata, new_versions)
        thread_id = args[4]
        self._turns.pop(thread_id, None)
        with self._guard("saving a checkpoint of", thread_id):
            await self._put(keys=ks, args=args)
            if self.cluster:
                with self._cluster_index(thread_id):
                    await self.client.zadd(keys.CHECKPOINT_THREAD_INDEX_KEY, {thread_id: args[3]})
        return next_config

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if not writes:
            return
        ks, args = self._encode_writes(config, writes, task_id, task_path)
        thread_id = args[3]
        self._turns.pop(thread_id, None)
        with self._guard("saving pending writes of", thread_id):
            await self._put_writes(keys=ks, args=args)
            if self.cluster:
                with self._cluster_index(thread_id):
                    await self.client.zadd(keys.CHECKPOINT_THREAD_INDEX_KEY, {thread_id: args[2]})

    async def adelete_thread(self, thread_id: str) -> None:
        thread_id = str(thread_id)
        self._turns.pop(thread_id, None)
        with self._guard("deleting", thread_id):
            if self.cluster:  # two slots: the thread's keys, then the index
                await self.client.unlink(*self.thread_keys(thread_id))
                await self.client.zrem(keys.CHECKPOINT_THREAD_INDEX_KEY, thread_id)
                return
            pipe = self.client.pipeline(transaction=True)
            pipe.unlink(*self.thread_keys(thread_id))
            pipe.zrem(keys.CHECKPOINT_THREAD_INDEX_KEY, thread_id)
            await pipe.execute()

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        src, dst = self.thread_keys(str(source_thread_id)), self.thread_keys(str(target_thread_id))
        self._turns.pop(str(target_thread_id), None)
        with self._guard("copying", source_thread_id):
            read = self.client.pipeline(transaction=not self.cluster)
            for i, key in enumerate(src):
                if i in (0, 4):
                    read.zrange(key, 0, -1)
                else:
                    read.hgetall(key)
            data = await read.execute()
            if not data[0]:
                return
            write = self.client.pipeline(transaction=not self.cluster)
            for i, (key, value) in enumerate(zip(dst, data, strict=True)):
                if not value:
                    continue
                if i in (0, 4):
                    write.zadd(key, dict.fromkeys(value, 0))
                else:
                    write.hset(key, mapping=value)
                if self.ttl:
                    write.expire(key, self.ttl)
            write.zadd(keys.CHECKPOINT_THREAD_INDEX_KEY, {str(target_thread_id): now_ms()})
            await write.execute()

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"Unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'.")
        for thread_id in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(thread_id)
            else:
                await self._remove(str(thread_id), None)

    async def atrim(
        self,
        thread_id: str,
        keep: int,
        *,
        channels: Mapping[str, DeltaChannel] | None = None,
        checkpoint_ns: str = "",
    ) -> int:
        """Keep the newest ``keep`` checkpoints, drop the older ones (see ``RedisCheckpointer.trim``)."""
        thread_id, keep = str(thread_id), self._check_keep(keep)
        self._turns.pop(thread_id, None)
        key, high, low, offset = self._oldest_kept_args(thread_id, checkpoint_ns, keep)
        with self._guard("trimming", thread_id):
            found = await self.client.zrevrangebylex(key, high, low, start=offset, num=2)
        if len(found) < 2:
            return 0
        oldest = _as_str(found[0]).split("\0", 1)[1]
        channels = channels or {}
        history = {}
        if channels:
            config = {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": oldest,
                }
            }
            history = await self.aget_delta_channel_history(config=config, channels=list(channels))
        ks, args = self._trim_args(thread_id, checkpoint_ns, oldest, channels, history)
        with self._guard("trimming", thread_id):
            return max(int(await self._trim(keys=ks, args=args)), 0)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        wanted = [str(r) for r in run_ids]
        if not wanted:
            return
        targets = set(wanted)
        found_in: list[str] = []
        async for page in self._thread_pages():
            pipe = self.client.pipeline(transaction=False)
            for thread_id in page:
                pipe.hmget(self.thread_keys(thread_id)[5], wanted)
            with self._guard("looking up runs in"):
                hits = await pipe.execute()
            found_in += [
                t for t, h in zip(page, hits, strict=True) if any(v is not None for v in h)
            ]
        for thread_id in found_in:
            await self._remove(thread_id, lambda ns, cid, md: str(md.get("run_id")) in targets)

    async def _remove(self, thread_id: str, remove: Any) -> None:
        """Delete some checkpoints of a thread atomically (WATCH/MULTI, retried)."""
        self._turns.pop(thread_id, None)
        ks = self.thread_keys(thread_id)
        idx, cp, blobs, writes, wix, runs = ks
        with self._guard("pruning", thread_id):
            async with self.client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(idx, cp, wix)
                        records = await pipe.hgetall(cp)
                        if not records:
                            await pipe.unwatch()
                            return
                        plan = self._plan_removal(
                            thread_id,
                            records,
                            await pipe.hkeys(blobs),
                            await pipe.zrange(wix, 0, -1),
                            await pipe.hkeys(runs),
                            remove or self._keep_latest(records),
                        )
                        if not plan.members:
                            await pipe.unwatch()
                            return
                        pipe.multi()
                        if plan.empty:
                            pipe.unlink(*ks)
                            if not self.cluster:
                                pipe.zrem(keys.CHECKPOINT_THREAD_INDEX_KEY, thread_id)
                        else:
                            pipe.zrem(idx, *plan.members)
                            pipe.hdel(cp, *plan.members)
                            if plan.blob_fields:
                                pipe.hdel(blobs, *plan.blob_fields)
                            if plan.write_fields:
                                pipe.hdel(writes, *plan.write_fields)
                                pipe.zrem(wix, *plan.write_fields)
                            if plan.run_fields:
                                pipe.hdel(runs, *plan.run_fields)
                        await pipe.execute()
                        break
                    except redis.WatchError:
                        continue
            if plan.empty and self.cluster:
                await self.client.zrem(keys.CHECKPOINT_THREAD_INDEX_KEY, thread_id)

    async def _thread_pages(self, size: int = 500) -> AsyncIterator[list[str]]:
        """The thread index in pages (a snapshot per page; admin/maintenance only)."""
        start = 0
        while True:
            with self._guard("reading the thread index"):
                page = await self.client.zrange(
                    keys.CHECKPOINT_THREAD_INDEX_KEY, start, start + size - 1
                )
            if not page:
                return
            yield [m.decode() for m in page]
            if len(page) < size:
                return
            start += size

    async def _all_threads(self) -> AsyncIterator[str]:
        async for page in self._thread_pages():
            for thread_id in page:
                yield thread_id


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item
