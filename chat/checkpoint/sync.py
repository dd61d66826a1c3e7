"""``RedisCheckpointer``: the synchronous saver (management commands, scripts, sync views).

Only I/O lives here; the layout and encoding are in ``chat.checkpoint.base``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
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
    ThreadInfo,
    ThreadStats,
    _as_str,
    now_ms,
)

BATCH = 100


class RedisCheckpointer(BaseRedisCheckpointer):
    """LangGraph checkpointer on plain Redis (>= 6.2, Valkey), synchronous."""

    client: redis.Redis

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: int | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(client, ttl=ttl, serde=serde)

    @classmethod
    def from_url(cls, url: str, *, ttl: int | None = None, **kwargs: Any) -> RedisCheckpointer:
        saver = cls(redis_clients.client_for_url(url), ttl=ttl, **kwargs)
        saver._owns_client = True
        return saver

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> RedisCheckpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- LangGraph API ---------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id = str(config["configurable"]["thread_id"])
        ns = self._ns(config)
        cid = get_checkpoint_id(config)
        ks, args = self._load_args(thread_id, ns, [cid] if cid else None)
        with self._guard("reading", thread_id):
            entries = self._load(keys=ks, args=args)
        return self._decode(thread_id, ns, entries[0]) if entries else None

    def has_interrupt(self, config: RunnableConfig) -> bool:
        """Whether a task of the latest checkpoint (of ``config``'s namespace; a
        ``checkpoint_id`` in ``config`` is not looked at) was interrupted, without
        loading the checkpoint: one small script call."""
        ks, args = self._interrupted_args(config)
        with self._guard("reading", str(config["configurable"]["thread_id"])):
            return int(self._interrupted(keys=ks, args=args)) == 1

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        before_id = get_checkpoint_id(before) if before else None
        remaining = [limit]
        if config is None:
            for info in self._all_threads():
                yield from self._list_thread(info, None, None, filter, before_id, remaining)
                if remaining[0] is not None and remaining[0] <= 0:
                    return
            return
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = self._ns(config) if conf.get("checkpoint_ns") is not None else None
        yield from self._list_thread(
            thread_id, ns, get_checkpoint_id(config), filter, before_id, remaining
        )

    def _list_thread(
        self,
        thread_id: str,
        ns: str | None,
        only_id: str | None,
        filter: dict[str, Any] | None,
        before_id: str | None,
        remaining: list[int | None],
    ) -> Iterator[CheckpointTuple]:
        """Newest first; pages of ids from the sorted index, then one script per page."""
        if remaining[0] is not None and remaining[0] <= 0:
            return
        idx_key, cp_key = self.thread_keys(thread_id)[:2]
        if only_id is not None:
            pages: Iterator[list[tuple[str, str]]] = iter(
                [[(ns or "", only_id)]] if before_id is None or only_id < before_id else []
            )
        elif ns is None:
            with self._guard("listing", thread_id):
                members = self.client.zrange(idx_key, 0, -1)
            pairs = self._group_members(members, before_id)
            pages = (pairs[i : i + BATCH] for i in range(0, len(pairs), BATCH))
        elif not filter:
            yield from self._ns_range(thread_id, ns, before_id, remaining)
            return
        else:
            pages = self._ns_pages(thread_id, idx_key, ns, before_id, remaining, bool(filter))
        for page in pages:
            by_ns: dict[str, list[str]] = {}
            if filter:
                with self._guard("listing", thread_id):
                    recs = self.client.hmget(cp_key, [f"{n}\0{c}" for n, c in page])
                page = [
                    (n, c)
                    for (n, c), rec in zip(page, recs, strict=True)
                    if rec is not None
                    and self._matches(self._record_metadata(thread_id, n, c, rec), filter)
                ]
            for n, c in page:
                by_ns.setdefault(n, []).append(c)
            loaded: dict[tuple[str, str], CheckpointTuple] = {}
            for n, cids in by_ns.items():
                ks, args = self._load_args(thread_id, n, cids)
                with self._guard("listing", thread_id):
                    entries = self._load(keys=ks, args=args)
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

    def _ns_range(
        self, thread_id: str, ns: str, before_id: str | None, remaining: list[int | None]
    ) -> Iterator[CheckpointTuple]:
        """One namespace, no filter: each page is one script call (ids and records)."""
        high, low = self._lex_bounds(ns, before_id)
        while True:
            size = BATCH if remaining[0] is None else min(BATCH, remaining[0])
            if size <= 0:
                return
            ks, args = self._range_args(thread_id, ns, high, low, size)
            with self._guard("listing", thread_id):
                entries = self._load(keys=ks, args=args)
            for entry in entries:
                if remaining[0] is not None:
                    remaining[0] -= 1
                yield self._decode(thread_id, ns, entry)
            if len(entries) < size:
                return
            high = f"({ns}\0{_as_str(entries[-1][0])}"

    def _ns_pages(
        self,
        thread_id: str,
        idx_key: str,
        ns: str,
        before_id: str | None,
        remaining: list[int | None],
        filtered: bool,
    ) -> Iterator[list[tuple[str, str]]]:
        high, low = self._lex_bounds(ns, before_id)
        while True:
            size = BATCH if filtered or remaining[0] is None else min(BATCH, remaining[0])
            if size <= 0:
                return
            with self._guard("listing", thread_id):
                members = self.client.zrevrangebylex(idx_key, high, low, start=0, num=size)
            if not members:
                return
            page = [tuple(m.decode().split("\0", 1)) for m in members]
            yield page  # type: ignore[misc]
            if len(members) < size:
                return
            high = f"({members[-1].decode()}"

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """``DeltaChannel`` replay: the whole parent walk is one script call."""
        if not channels:
            return {}
        thread_id, ns, ks, args = self._delta_args(config, channels)
        with self._guard("reading the history of", thread_id):
            chain = self._delta(keys=ks, args=args)
        return self._decode_delta(thread_id, ns, channels, chain)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        ks, args, next_config = self._encode_put(config, checkpoint, metadata, new_versions)
        thread_id = args[4]
        with self._guard("saving a checkpoint of", thread_id):
            self._put(keys=ks, args=args)
            if self.cluster:
                with self._cluster_index(thread_id):
                    self.client.zadd(keys.CHECKPOINT_THREAD_INDEX_KEY, {thread_id: args[3]})
        return next_config

    def put_writes(
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
        with self._guard("saving pending writes of", thread_id):
            self._put_writes(keys=ks, args=args)
            if self.cluster:
                with self._cluster_index(thread_id):
                    self.client.zadd(keys.CHECKPOINT_THREAD_INDEX_KEY, {thread_id: args[2]})

    def delete_thread(self, thread_id: str) -> None:
        thread_id = str(thread_id)
        with self._guard("deleting", thread_id):
            if self.cluster:  # two slots: the thread's keys, then the index
                self.client.unlink(*self.thread_keys(thread_id))
                self.client.zrem(keys.CHECKPOINT_THREAD_INDEX_KEY, thread_id)
                return
            pipe = self.client.pipeline(transaction=True)
            pipe.unlink(*self.thread_keys(thread_id))
            pipe.zrem(keys.CHECKPOINT_THREAD_INDEX_KEY, thread_id)
            pipe.execute()

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        src, dst = self.thread_keys(str(source_thread_id)), self.thread_keys(str(target_thread_id))
        with self._guard("copying", source_thread_id):
            read = self.client.pipeline(transaction=not self.cluster)
            for i, key in enumerate(src):
                if i in (0, 4):
                    read.zrange(key, 0, -1)
                else:
                    read.hgetall(key)
            data = read.execute()
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
            write.execute()

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"Unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'.")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
            else:
                self._remove(str(thread_id), None)

    def trim(
        self,
        thread_id: str,
        keep: int,
        *,
        channels: Mapping[str, DeltaChannel] | None = None,
        checkpoint_ns: str = "",
    ) -> int:
        """Keep the newest ``keep`` (>= 1) checkpoints of one namespace, drop the older
        ones; returns how many went (0: nothing to do, or a concurrent trim went further).

        ``channels`` names the graph's delta channels: the oldest kept checkpoint gets
        their whole value, so it and every later one still read back in full, and
        time travel and forks from them are unchanged. Three round trips when there is
        something to trim (find it, replay the history, the trim script), one otherwise.
        Other namespaces (subgraphs) are left alone.
        """
        thread_id, keep = str(thread_id), self._check_keep(keep)
        key, high, low, offset = self._oldest_kept_args(thread_id, checkpoint_ns, keep)
        with self._guard("trimming", thread_id):
            found = self.client.zrevrangebylex(key, high, low, start=offset, num=2)
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
            history = self.get_delta_channel_history(config=config, channels=list(channels))
        ks, args = self._trim_args(thread_id, checkpoint_ns, oldest, channels, history)
        with self._guard("trimming", thread_id):
            return max(int(self._trim(keys=ks, args=args)), 0)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        wanted = [str(r) for r in run_ids]
        if not wanted:
            return
        targets = set(wanted)
        found_in: list[str] = []
        for page in self._thread_pages():
            pipe = self.client.pipeline(transaction=False)
            for thread_id in page:
                pipe.hmget(self.thread_keys(thread_id)[5], wanted)
            with self._guard("looking up runs in"):
                hits = pipe.execute()
            found_in += [
                t for t, h in zip(page, hits, strict=True) if any(v is not None for v in h)
            ]
        for thread_id in found_in:
            self._remove(thread_id, lambda ns, cid, md: str(md.get("run_id")) in targets)

    def _remove(self, thread_id: str, remove: Any) -> None:
        """Delete some checkpoints of a thread atomically (WATCH/MULTI, retried)."""
        ks = self.thread_keys(thread_id)
        idx, cp, blobs, writes, wix, runs = ks
        with self._guard("pruning", thread_id), self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(idx, cp, wix)
                    records = pipe.hgetall(cp)
                    if not records:
                        pipe.unwatch()
                        return
                    plan = self._plan_removal(
                        thread_id,
                        records,
                        pipe.hkeys(blobs),
                        pipe.zrange(wix, 0, -1),
                        pipe.hkeys(runs),
                        remove or self._keep_latest(records),
                    )
                    if not plan.members:
                        pipe.unwatch()
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
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        if plan.empty and self.cluster:
            self.client.zrem(keys.CHECKPOINT_THREAD_INDEX_KEY, thread_id)

    # --- admin -----------------------------------------------------------------------

    def count_threads(self) -> int:
        with self._guard("counting threads"):
            return int(self.client.zcard(keys.CHECKPOINT_THREAD_INDEX_KEY))

    def list_threads(self, offset: int = 0, limit: int = 50) -> list[ThreadInfo]:
        """Threads by last activity, newest first (from the thread index, no SCAN)."""
        with self._guard("listing threads"):
            rows = self.client.zrevrange(
                keys.CHECKPOINT_THREAD_INDEX_KEY, offset, offset + limit - 1, withscores=True
            )
        return [self._thread_info(m, s) for m, s in rows]

    def thread_stats(self, thread_id: str) -> ThreadStats:
        ks = self.thread_keys(str(thread_id))
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(ks[0])
        pipe.hlen(ks[5])
        pipe.zscore(keys.CHECKPOINT_THREAD_INDEX_KEY, str(thread_id))
        pipe.pttl(ks[0])
        for key in ks:
            pipe.memory_usage(key)
        with self._guard("measuring", thread_id):
            return self._stats(str(thread_id), pipe.execute())

    def forget_expired_threads(self) -> int:
        """Drop index entries of threads whose keys are gone (expired by TTL)."""
        gone: list[str] = []
        for page in self._thread_pages():
            pipe = self.client.pipeline(transaction=False)
            for thread_id in page:
                pipe.exists(self.thread_keys(thread_id)[0])
            with self._guard("cleaning the thread index"):
                alive = pipe.execute()
            gone += [t for t, a in zip(page, alive, strict=True) if not a]
        if not gone:
            return 0
        with self._guard("cleaning the thread index"):
            return int(self.client.zrem(keys.CHECKPOINT_THREAD_INDEX_KEY, *gone))

    def _thread_pages(self, size: int = 500) -> Iterator[list[str]]:
        """The thread index in pages (a snapshot per page; admin/maintenance only)."""
        start = 0
        while True:
            with self._guard("reading the thread index"):
                page = self.client.zrange(keys.CHECKPOINT_THREAD_INDEX_KEY, start, start + size - 1)
            if not page:
                return
            yield [m.decode() for m in page]
            if len(page) < size:
                return
            start += size

    def _all_threads(self) -> Iterator[str]:
        for page in self._thread_pages():
            yield from page
