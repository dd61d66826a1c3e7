"""The data layout of the Redis checkpointer and its (de)serialisation.

:class:`BaseRedisCheckpointer` owns the key layout (db 1; a fixed set of six keys per
thread, all with the Redis Cluster hash tag ``{<thread>}``) and the encoding, like
``langgraph-checkpoint-postgres``'s base class; ``RedisCheckpointer`` (sync) and
``AsyncRedisCheckpointer`` only do I/O. Core commands only (Redis >= 6.2, Valkey), no
modules. Key guarantee: ``put``, ``put_writes``, ``get_tuple``, the ``DeltaChannel``
history walk and the removal of a ``trim`` are one atomic Lua call each, so no
read-modify-write can race. The key
layout table and why this saver exists: the README's "LangGraph checkpoints (db 1)".
"""

from __future__ import annotations

import contextlib
import logging
import random
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from langchain_core.runnables import RunnableConfig
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import (
    INTERRUPT,
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    SerializerProtocol,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)

from agenticpal import redis_keys as keys
from agenticpal.config import mask_password
from agenticpal.redis_clients import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

SEP = "\0"
_H = struct.Struct(">H")
_I = struct.Struct(">I")
# Namespaces per key kind, in the order the scripts take them as KEYS.
KINDS = ("idx", "cp", "blobs", "writes", "wix", "runs")


class CheckpointerUnavailableError(redis.exceptions.ConnectionError):
    """Redis did not answer. A ``ConnectionError`` so the 503 middleware maps it too."""


class CheckpointDecodeError(ValueError):
    """A stored checkpoint could not be read back; never a silently wrong state."""


@dataclass(frozen=True)
class ThreadInfo:
    thread_id: str
    last_activity: datetime


@dataclass(frozen=True)
class ThreadStats:
    thread_id: str
    checkpoints: int
    runs: int
    last_activity: datetime | None
    bytes: int
    ttl_seconds: int | None


# --- Lua ---------------------------------------------------------------------------
# KEYS for every script: idx, cp, blobs, writes, wix, runs [, thread index].

# ARGV: ns, mode, ... Mode '' = the latest checkpoint; 'r' = the newest ARGV[5] in the
# ZREVRANGEBYLEX range ARGV[3] .. ARGV[4] (``list`` in one round trip); otherwise the
# checkpoint ids ARGV[3..].
# One checkpoint of a namespace (p: the namespace and a NUL), loaded: {id, record, blobs,
# writes}, or nil when its record is gone.
LOAD_ONE_LUA = r"""
local function load_one(p, cid)
  local m = p .. cid
  local rec = redis.call('HGET', KEYS[2], m)
  if not rec then return nil end
  local n, pos = struct.unpack('>I2', rec)
  local refs = {}
  for i = 1, n do
    local l
    l, pos = struct.unpack('>I2', rec, pos)
    refs[i] = p .. string.sub(rec, pos, pos + l - 1)
    pos = pos + l
  end
  local blobs = {}
  if n > 0 then blobs = redis.call('HMGET', KEYS[3], unpack(refs)) end
  local wf = redis.call('ZRANGEBYLEX', KEYS[5], '(' .. m .. '\0', '(' .. m .. '\1')
  local writes = {}
  if #wf > 0 then writes = redis.call('HMGET', KEYS[4], unpack(wf)) end
  return {cid, rec, blobs, writes}
end
"""

# ARGV: ns, mode, ... Mode '' = the latest checkpoint; 'r' = the newest ARGV[5] in the
# ZREVRANGEBYLEX range ARGV[3] .. ARGV[4] (``list`` in one round trip); otherwise the
# checkpoint ids ARGV[3..].
LOAD_LUA = (
    LOAD_ONE_LUA
    + r"""
local p = ARGV[1] .. '\0'
local cids = {}
if ARGV[2] == '' or ARGV[2] == 'r' then
  local hi, lo, n = '(' .. ARGV[1] .. '\1', '(' .. p, 1
  if ARGV[2] == 'r' then hi, lo, n = ARGV[3], ARGV[4], tonumber(ARGV[5]) end
  local r = redis.call('ZREVRANGEBYLEX', KEYS[1], hi, lo, 'LIMIT', 0, n)
  if #r == 0 then return {} end
  for i = 1, #r do cids[i] = string.sub(r[i], #p + 1) end
else
  for i = 3, #ARGV do cids[#cids + 1] = ARGV[i] end
end
local out = {}
for _, cid in ipairs(cids) do
  local entry = load_one(p, cid)
  if entry then out[#out + 1] = entry end
end
return out
"""
)

# Whether a task of checkpoint member m was interrupted: one of its write fields ends with
# ``suffix`` (NUL and the INTERRUPT write index).
INTERRUPTED_ONE_LUA = r"""
local function interrupted(m, suffix)
  local wf = redis.call('ZRANGEBYLEX', KEYS[5], '(' .. m .. '\0', '(' .. m .. '\1')
  for i = 1, #wf do
    if string.sub(wf[i], -#suffix) == suffix then return 1 end
  end
  return 0
end
"""

# ARGV: ns, the end of an INTERRUPT write's field (NUL and its write index, -3). Whether
# a task of the namespace's latest checkpoint was interrupted: 1, 0, or -1 for no
# checkpoint. The check before every turn, without loading the checkpoint.
INTERRUPTED_LUA = (
    INTERRUPTED_ONE_LUA
    + r"""
local p = ARGV[1] .. '\0'
local r = redis.call('ZREVRANGEBYLEX', KEYS[1], '(' .. ARGV[1] .. '\1', '(' .. p, 'LIMIT', 0, 1)
if #r == 0 then return -1 end
return interrupted(r[1], ARGV[2])
"""
)

# ARGV: member, record, ttl, now ms, thread id, run id, then blob field/value pairs.
PUT_LUA = r"""
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if #ARGV > 6 then redis.call('HSET', KEYS[3], unpack(ARGV, 7)) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[6], ARGV[6], ARGV[4]) end
local ttl = tonumber(ARGV[3])
if ttl > 0 then for i = 1, 6 do redis.call('EXPIRE', KEYS[i], ttl) end end
if KEYS[7] then redis.call('ZADD', KEYS[7], ARGV[4], ARGV[5]) end
return 1
"""

# ARGV: upsert ('1' or ''), ttl, now ms, thread id, then write field/value pairs.
PUT_WRITES_LUA = r"""
local upsert = ARGV[1] == '1'
for i = 5, #ARGV, 2 do
  if upsert then
    redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  else
    redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[5], 0, ARGV[i])
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then for i = 1, 6 do redis.call('EXPIRE', KEYS[i], ttl) end end
if KEYS[7] then redis.call('ZADD', KEYS[7], ARGV[3], ARGV[4]) end
return 1
"""


# A checkpoint record (see _encode_put): its blob refs, then length-prefixed fields;
# record(rec, k) returns the refs and the k-th field (4: metadata, 5: the parent's id).
RECORD_LUA = r"""
local function record(rec, k)
  local n, pos = struct.unpack('>I2', rec)
  local refs = {}
  for i = 1, n do
    local l
    l, pos = struct.unpack('>I2', rec, pos)
    refs[i] = string.sub(rec, pos, pos + l - 1)
    pos = pos + l
  end
  for _ = 1, k - 1 do
    local l
    l, pos = struct.unpack('>I4', rec, pos)
    pos = pos + l
  end
  local l
  l, pos = struct.unpack('>I4', rec, pos)
  return refs, string.sub(rec, pos, pos + l - 1)
end
"""

# The parent chain of checkpoint ``target`` (of namespace p) for ``DeltaChannel`` replay,
# the channels being ARGV[first..]. For each ancestor, nearest first: {id, writes of the
# channels still wanted, {channel, blob} seeds found there}. A channel stops at the
# nearest ancestor holding a real (non-"empty") blob for it.
DELTA_WALK_LUA = r"""
local function delta_walk(p, target, first)
  local want, left = {}, 0
  for i = first, #ARGV do
    if not want[ARGV[i]] then want[ARGV[i]] = true; left = left + 1 end
  end
  local function parse(rec) return record(rec, 5) end
  local rec = redis.call('HGET', KEYS[2], p .. target)
  if not rec then return {} end
  local _, current = parse(rec)
  local out, steps = {}, 0
  while current ~= '' and left > 0 and steps < 100000 do
    steps = steps + 1
    local m = p .. current
    rec = redis.call('HGET', KEYS[2], m)
    if not rec then break end
    local refs, parent = parse(rec)
    local seeds, done = {}, {}
    for _, ref in ipairs(refs) do
      local sep = string.find(ref, '\0', 1, true)
      local ch = string.sub(ref, 1, sep - 1)
      if want[ch] then
        local blob = redis.call('HGET', KEYS[3], p .. ref)
        if blob then
          local tl = struct.unpack('>I2', blob)
          if string.sub(blob, 3, 2 + tl) ~= 'empty' then
            seeds[#seeds + 1] = ch
            seeds[#seeds + 1] = blob
            done[#done + 1] = ch
          end
        end
      end
    end
    local writes = {}
    local wf = redis.call('ZRANGEBYLEX', KEYS[5], '(' .. m .. '\0', '(' .. m .. '\1')
    if #wf > 0 then
      for _, w in ipairs(redis.call('HMGET', KEYS[4], unpack(wf))) do
        if w then
          local l1 = struct.unpack('>I4', w)
          local l2 = struct.unpack('>I4', w, 5 + l1)
          if want[string.sub(w, 9 + l1, 8 + l1 + l2)] then writes[#writes + 1] = w end
        end
      end
    end
    out[#out + 1] = {current, writes, seeds}
    for _, ch in ipairs(done) do want[ch] = nil; left = left - 1 end
    current = parent
  end
  return out
end
"""

# Walks the parent chain of one checkpoint for ``DeltaChannel`` replay, in one call.
# ARGV: ns, checkpoint id ('' = latest), channel names.
DELTA_LUA = (
    RECORD_LUA
    + DELTA_WALK_LUA
    + r"""
local p = ARGV[1] .. '\0'
local target = ARGV[2]
if target == '' then
  local r = redis.call('ZREVRANGEBYLEX', KEYS[1], '(' .. ARGV[1] .. '\1', '(' .. p, 'LIMIT', 0, 1)
  if #r == 0 then return {} end
  target = string.sub(r[1], #p + 1)
end
return delta_walk(p, target, 3)
"""
)

# Before a turn, one call for the three reads it starts with: whether a task of the
# namespace's latest checkpoint was interrupted, that checkpoint loaded (as LOAD_LUA)
# and its delta channels' history (as DELTA_LUA). ARGV: ns, the INTERRUPT write field's
# end, channel names. Returns {-1} without a checkpoint, else {flag, entry, chain}.
TURN_LUA = (
    RECORD_LUA
    + LOAD_ONE_LUA
    + INTERRUPTED_ONE_LUA
    + DELTA_WALK_LUA
    + r"""
local p = ARGV[1] .. '\0'
local r = redis.call('ZREVRANGEBYLEX', KEYS[1], '(' .. ARGV[1] .. '\1', '(' .. p, 'LIMIT', 0, 1)
if #r == 0 then return {-1} end
local cid = string.sub(r[1], #p + 1)
local entry = load_one(p, cid)
if not entry then return {-1} end
return {interrupted(r[1], ARGV[2]), entry, delta_walk(p, cid, 3)}
"""
)

# Trims one namespace of a thread to its newest checkpoints, atomically (every key is
# the thread's: one slot; the thread index is not touched). ARGV: ns, id of the oldest
# checkpoint to keep, then channel/blob pairs: a delta channel's whole value at that
# checkpoint, stored as its blob (when that is still "empty") so the checkpoint stands
# alone once the ancestors its value is replayed from are gone. Blobs, writes and run
# entries only the removed checkpoints used go with them; a run entry goes only when the
# thread has no other namespace and no kept checkpoint's metadata names the run.
# Returns how many checkpoints went, or -1 when the oldest to keep is gone already.
TRIM_LUA = (
    RECORD_LUA
    + r"""
local p = ARGV[1] .. '\0'
local oldest = p .. ARGV[2]
local orec = redis.call('HGET', KEYS[2], oldest)
if not orec then return -1 end
local gone = redis.call('ZRANGEBYLEX', KEYS[1], '(' .. p, '(' .. oldest)
if #gone == 0 then return 0 end
local function batched(cmd, key, items)
  for i = 1, #items, 500 do
    redis.call(cmd, key, unpack(items, i, math.min(i + 499, #items)))
  end
end
local function parse(rec) return record(rec, 4) end
local orefs = parse(orec)
for i = 3, #ARGV, 2 do
  for _, ref in ipairs(orefs) do
    if string.sub(ref, 1, #ARGV[i] + 1) == ARGV[i] .. '\0' then
      local field = p .. ref
      local blob = redis.call('HGET', KEYS[3], field)
      local tl = blob and struct.unpack('>I2', blob)
      if not blob or string.sub(blob, 3, 2 + tl) == 'empty' then
        redis.call('HSET', KEYS[3], field, ARGV[i + 1])
      end
    end
  end
end
local kept = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. oldest, '(' .. ARGV[1] .. '\1')
local used, kept_md = {}, {}
for i = 1, #kept, 500 do
  local recs = redis.call('HMGET', KEYS[2], unpack(kept, i, math.min(i + 499, #kept)))
  for _, rec in ipairs(recs) do
    if rec then
      local refs, md = parse(rec)
      for _, ref in ipairs(refs) do used[p .. ref] = true end
      kept_md[#kept_md + 1] = md
    end
  end
end
local blobs, seen, gone_md = {}, {}, {}
for _, m in ipairs(gone) do
  local rec = redis.call('HGET', KEYS[2], m)
  if rec then
    local refs, md = parse(rec)
    for _, ref in ipairs(refs) do
      local field = p .. ref
      if not used[field] and not seen[field] then
        seen[field] = true
        blobs[#blobs + 1] = field
      end
    end
    gone_md[#gone_md + 1] = md
  end
  local wf = redis.call('ZRANGEBYLEX', KEYS[5], '(' .. m .. '\0', '(' .. m .. '\1')
  if #wf > 0 then
    batched('HDEL', KEYS[4], wf)
    batched('ZREM', KEYS[5], wf)
  end
end
batched('ZREM', KEYS[1], gone)
batched('HDEL', KEYS[2], gone)
if #blobs > 0 then batched('HDEL', KEYS[3], blobs) end
if redis.call('ZCARD', KEYS[1]) == #kept then
  local function named(mds, run)
    for _, md in ipairs(mds) do
      if string.find(md, run, 1, true) then return true end
    end
    return false
  end
  local runs = {}
  for _, run in ipairs(redis.call('HKEYS', KEYS[6])) do
    if named(gone_md, run) and not named(kept_md, run) then runs[#runs + 1] = run end
  end
  if #runs > 0 then batched('HDEL', KEYS[6], runs) end
end
return #gone
"""
)

# --- framing -----------------------------------------------------------------------


def _frames(*parts: bytes) -> bytes:
    return b"".join(_I.pack(len(p)) + p for p in parts)


def _unframe(data: bytes, pos: int, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        (n,) = _I.unpack_from(data, pos)
        pos += 4
        out.append(data[pos : pos + n])
        pos += n
    return out


def _typed(type_: str, data: bytes) -> bytes:
    t = type_.encode()
    return _H.pack(len(t)) + t + data


def _untyped(value: bytes) -> tuple[str, bytes]:
    (n,) = _H.unpack_from(value, 0)
    return value[2 : 2 + n].decode(), value[2 + n :]


def now_ms() -> int:
    return int(time.time() * 1000)


_MISSING = object()
# Stored bytes of the decoded history writes one saver keeps (the objects take a few
# times that): the recent turns of a few hundred active chats.
DECODED_WRITES_MAX_BYTES = 8 * 1024 * 1024


def _as_str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _from_ms(score: float | None) -> datetime | None:
    return None if score is None else datetime.fromtimestamp(score / 1000, tz=UTC)


def _describe(client: Any) -> str:
    """``redis://host:port/db`` of a client, password never shown."""
    try:
        kw = client.connection_pool.connection_kwargs
    except AttributeError:
        return "the Redis Cluster"
    if "path" in kw:
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return mask_password(
        f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
    )


@dataclass(frozen=True)
class Removal:
    """What to delete from one thread (computed from a snapshot, applied in MULTI)."""

    members: list[bytes]
    blob_fields: list[bytes]
    write_fields: list[bytes]
    run_fields: list[bytes]
    empty: bool


class BaseRedisCheckpointer(BaseCheckpointSaver[str]):
    """Layout, key names and encoding shared by the sync and async savers."""

    def __init__(
        self,
        client: Any,
        *,
        ttl: int | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}.")
        self.client = client
        self.ttl = ttl
        self.cluster = isinstance(client, (redis.RedisCluster, redis.asyncio.RedisCluster))
        self._owns_client = False
        # Delta-history writes decoded before, by their stored bytes (exact: the same
        # bytes decode to the same value); bounded by DECODED_WRITES_MAX_BYTES.
        self._decoded: dict[bytes, Any] = {}
        self._decoded_bytes = 0
        self._load = client.register_script(LOAD_LUA)
        self._put = client.register_script(PUT_LUA)
        self._put_writes = client.register_script(PUT_WRITES_LUA)
        self._delta = client.register_script(DELTA_LUA)
        self._trim = client.register_script(TRIM_LUA)
        self._interrupted = client.register_script(INTERRUPTED_LUA)
        self._turn = client.register_script(TURN_LUA)

    @property
    def script_sources(self) -> list[bytes | str]:
        """The Lua scripts this saver calls (to load them before the first call)."""
        scripts = (self._load, self._put, self._put_writes, self._delta, self._trim)
        return [script.script for script in (*scripts, self._interrupted, self._turn)]

    # --- keys ------------------------------------------------------------------------

    @staticmethod
    def thread_keys(thread_id: str) -> list[str]:
        """The six keys of a thread, in script order."""
        return [keys.checkpoint_thread_key(thread_id, kind) for kind in KINDS]

    def _script_keys(self, thread_id: str) -> list[str]:
        ks = self.thread_keys(thread_id)
        if not self.cluster:
            ks.append(keys.CHECKPOINT_THREAD_INDEX_KEY)
        return ks

    @staticmethod
    def _ns(config: RunnableConfig) -> str:
        ns = config["configurable"].get("checkpoint_ns", "") or ""
        if SEP in ns:
            raise ValueError(f"checkpoint_ns must not contain a NUL character: {ns!r}")
        return ns

    def where(self) -> str:
        return _describe(self.client)

    @contextlib.contextmanager
    def _guard(self, action: str, thread_id: str | None = None) -> Iterator[None]:
        """Redis down -> one sentence a person can act on, naming server and thread."""
        try:
            yield
        except UNAVAILABLE_ERRORS as exc:
            on = f" thread {thread_id!r}" if thread_id is not None else ""
            raise CheckpointerUnavailableError(
                f"The checkpoint store (Redis at {self.where()}) did not answer while "
                f"{action}{on} ({exc}). Checkpoints already written are safe: start Redis "
                "(`make redis`) or fix CHECKPOINT_REDIS_URL / REDIS_URL, then retry; the "
                "thread resumes from its last checkpoint."
            ) from exc

    @contextlib.contextmanager
    def _cluster_index(self, thread_id: str) -> Iterator[None]:
        """The thread index is one key, so one node, on a cluster: while that node is down
        the conversations on the others still save (the next write re-indexes them)."""
        try:
            yield
        except UNAVAILABLE_ERRORS as exc:
            logger.warning("Thread %r saved but not indexed (%s): its node is down", thread_id, exc)

    # --- versions --------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Same format as the postgres and in-memory savers (sortable, collision-free
        across forks because of the random part), so threads move between savers."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # --- encoding --------------------------------------------------------------------

    def _encode_put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[list[str], list[Any], RunnableConfig]:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = self._ns(config)
        cid = checkpoint["id"]
        c = checkpoint.copy()
        values: dict[str, Any] = c.pop("channel_values")  # type: ignore[misc]
        c["channel_values"] = {}
        refs = [f"{ch}{SEP}{ver}".encode() for ch, ver in checkpoint["channel_versions"].items()]
        header = _H.pack(len(refs)) + b"".join(_H.pack(len(r)) + r for r in refs)
        ctype, cbytes = self.serde.dumps_typed(c)
        md = get_serializable_checkpoint_metadata(config, metadata)
        mtype, mbytes = self.serde.dumps_typed(md)
        parent = conf.get("checkpoint_id") or ""
        record = header + _frames(
            ctype.encode(), cbytes, mtype.encode(), mbytes, str(parent).encode()
        )
        run_id = md.get("run_id")
        args: list[Any] = [
            f"{ns}{SEP}{cid}",
            record,
            self.ttl or 0,
            now_ms(),
            thread_id,
            str(run_id) if run_id else "",
        ]
        prefix = f"{ns}{SEP}"
        for ch, ver in new_versions.items():
            args.append(f"{prefix}{ch}{SEP}{ver}")
            args.append(
                _typed(*self.serde.dumps_typed(values[ch]))
                if ch in values
                else _typed("empty", b"")
            )
        next_config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}
        }
        return self._script_keys(thread_id), args, next_config

    def _encode_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> tuple[list[str], list[Any]]:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = self._ns(config)
        member = f"{ns}{SEP}{conf['checkpoint_id']}{SEP}{task_id}{SEP}"
        upsert = all(ch in WRITES_IDX_MAP for ch, _ in writes)
        args: list[Any] = ["1" if upsert else "", self.ttl or 0, now_ms(), thread_id]
        for idx, (channel, value) in enumerate(writes):
            widx = WRITES_IDX_MAP.get(channel, idx)
            wtype, wbytes = self.serde.dumps_typed(value)
            args.append(f"{member}{widx}")
            args.append(
                _frames(
                    task_id.encode(),
                    channel.encode(),
                    task_path.encode(),
                    str(widx).encode(),
                    wtype.encode(),
                    wbytes,
                )
            )
        return self._script_keys(thread_id), args

    def _load_args(
        self, thread_id: str, ns: str, cids: Sequence[str] | None
    ) -> tuple[list[str], list[Any]]:
        if cids is None:
            return self.thread_keys(thread_id), [ns, ""]
        return self.thread_keys(thread_id), [ns, "1", *cids]

    def _interrupted_args(self, config: RunnableConfig) -> tuple[list[str], list[Any]]:
        thread_id = str(config["configurable"]["thread_id"])
        return self.thread_keys(thread_id), [self._ns(config), f"{SEP}{WRITES_IDX_MAP[INTERRUPT]}"]

    def _range_args(
        self, thread_id: str, ns: str, high: str, low: str, count: int
    ) -> tuple[list[str], list[Any]]:
        """The newest ``count`` checkpoints of one namespace in a lex range, loaded."""
        return self.thread_keys(thread_id), [ns, "r", high, low, count]

    # --- decoding --------------------------------------------------------------------

    def _fail(
        self, what: str, thread_id: str, ns: str, cid: str, exc: Exception
    ) -> CheckpointDecodeError:
        where = f" (namespace {ns!r})" if ns else ""
        return CheckpointDecodeError(
            f"Checkpoint {cid} of thread {thread_id!r}{where} could not be read back: its "
            f"{what} does not deserialize ({type(exc).__name__}: {exc}). The stored data is "
            "left untouched; restore it or delete the thread."
        )

    @staticmethod
    def _split_record(rec: bytes) -> tuple[list[bytes], list[bytes]]:
        (n,) = _H.unpack_from(rec, 0)
        pos = 2
        refs = []
        for _ in range(n):
            (ln,) = _H.unpack_from(rec, pos)
            pos += 2
            refs.append(rec[pos : pos + ln])
            pos += ln
        return refs, _unframe(rec, pos, 5)

    def _record_metadata(self, thread_id: str, ns: str, cid: str, rec: bytes) -> CheckpointMetadata:
        try:
            _, (_, _, mtype, mbytes, _) = self._split_record(rec)
            return self.serde.loads_typed((mtype.decode(), mbytes))
        except Exception as exc:
            raise self._fail("metadata", thread_id, ns, cid, exc) from exc

    def _decode(self, thread_id: str, ns: str, entry: list[Any]) -> CheckpointTuple:
        raw_cid, rec, blobs, writes = entry
        cid = _as_str(raw_cid)
        try:
            refs, (ctype, cbytes, mtype, mbytes, parent) = self._split_record(rec)
        except Exception as exc:
            raise self._fail("record", thread_id, ns, cid, exc) from exc
        try:
            checkpoint: Checkpoint = self.serde.loads_typed((ctype.decode(), cbytes))
        except Exception as exc:
            raise self._fail("checkpoint body", thread_id, ns, cid, exc) from exc
        try:
            metadata = self.serde.loads_typed((mtype.decode(), mbytes))
        except Exception as exc:
            raise self._fail("metadata", thread_id, ns, cid, exc) from exc
        values: dict[str, Any] = {}
        for ref, blob in zip(refs, blobs, strict=False):
            if blob is None:
                continue
            channel = ref.split(b"\0", 1)[0].decode()
            try:
                btype, bdata = _untyped(blob)
                if btype == "empty":
                    continue
                values[channel] = self.serde.loads_typed((btype, bdata))
            except Exception as exc:
                raise self._fail(f"channel {channel!r}", thread_id, ns, cid, exc) from exc
        pending = self._decode_writes(thread_id, ns, cid, writes)
        pending.sort(key=lambda item: item[0])
        parent_id = parent.decode()
        return CheckpointTuple(
            config={
                "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}
            },
            checkpoint={**checkpoint, "channel_values": values},
            metadata=metadata,
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent_id,
                    }
                }
                if parent_id
                else None
            ),
            pending_writes=[w for _, w in pending],
        )

    def _delta_args(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> tuple[str, str, list[str], list[Any]]:
        thread_id = str(config["configurable"]["thread_id"])
        ns = self._ns(config)
        cid = config["configurable"].get("checkpoint_id") or ""
        return thread_id, ns, self.thread_keys(thread_id), [ns, cid, *channels]

    def _decode_delta(
        self, thread_id: str, ns: str, channels: Sequence[str], chain: list[Any]
    ) -> dict[str, DeltaChannelHistory]:
        """Per channel: writes oldest -> newest (each checkpoint's in writes_sort_key
        order) from the seed's checkpoint on, and the seed value if one was found."""
        writes: dict[str, list[PendingWrite]] = {ch: [] for ch in channels}
        seeds: dict[str, Any] = {}
        for raw_cid, raw_writes, raw_seeds in reversed(chain):
            cid = _as_str(raw_cid)
            for i in range(0, len(raw_seeds), 2):
                ch = _as_str(raw_seeds[i])
                try:
                    seeds[ch] = self.serde.loads_typed(_untyped(raw_seeds[i + 1]))
                except Exception as exc:
                    raise self._fail(f"channel {ch!r}", thread_id, ns, cid, exc) from exc
            for _, (tid, ch, value) in sorted(
                self._decode_writes(thread_id, ns, cid, raw_writes, memo=True),
                key=lambda kw: kw[0],
            ):
                writes[ch].append((tid, ch, value))
        result: dict[str, DeltaChannelHistory] = {}
        for ch in channels:
            entry: DeltaChannelHistory = {"writes": writes[ch]}
            if ch in seeds:
                entry["seed"] = seeds[ch]
            result[ch] = entry
        return result

    def _decode_writes(
        self, thread_id: str, ns: str, cid: str, raw: Sequence[bytes | None], memo: bool = False
    ) -> list[tuple[tuple[str, str, int], PendingWrite]]:
        """``memo``: the writes of a delta channel's history, which every turn of a thread
        reads again (all of them since the last snapshot): each distinct stored write is
        decoded once per saver (``_decoded``), not once per turn."""
        pending: list[tuple[tuple[str, str, int], PendingWrite]] = []
        decoded = self._decoded
        for w in raw:
            if w is None:
                continue
            try:
                task_id, channel, task_path, widx, wtype, wbytes = _unframe(w, 0, 6)
                tid, ch = task_id.decode(), channel.decode()
                value = decoded.get(w, _MISSING) if memo else _MISSING
                if value is _MISSING:
                    value = self.serde.loads_typed((wtype.decode(), wbytes))
                    if memo:
                        self._decoded_bytes += len(w)
                        if self._decoded_bytes > DECODED_WRITES_MAX_BYTES:
                            decoded.clear()  # simpler than an LRU, as good for the hot threads
                            self._decoded_bytes = len(w)
                        decoded[w] = value
            except Exception as exc:
                raise self._fail("pending writes", thread_id, ns, cid, exc) from exc
            pending.append((writes_sort_key(task_path.decode(), tid, int(widx)), (tid, ch, value)))
        return pending

    # --- list planning ---------------------------------------------------------------

    @staticmethod
    def _lex_bounds(ns: str, before: str | None) -> tuple[str, str]:
        """(max, min) for ZREVRANGEBYLEX over one namespace, newest first."""
        high = f"({ns}{SEP}{before}" if before else f"({ns}\1"
        return high, f"({ns}{SEP}"

    @staticmethod
    def _matches(metadata: CheckpointMetadata, filter: dict[str, Any] | None) -> bool:
        return not filter or all(metadata.get(k) == v for k, v in filter.items())

    @staticmethod
    def _group_members(members: Sequence[bytes], before: str | None) -> list[tuple[str, str]]:
        """(ns, id) pairs of a whole thread, newest first across namespaces."""
        pairs = []
        for m in members:
            ns, cid = _as_str(m).split(SEP, 1)
            if before is None or cid < before:
                pairs.append((ns, cid))
        pairs.sort(key=lambda p: p[1], reverse=True)
        return pairs

    # --- removal planning (prune / delete_for_runs) ----------------------------------

    def _plan_removal(
        self,
        thread_id: str,
        records: dict[bytes, bytes],
        blob_fields: Sequence[bytes],
        write_fields: Sequence[bytes],
        run_fields: Sequence[bytes],
        remove: Any,
    ) -> Removal:
        """Which members, blobs, writes and run entries go when ``remove(ns, id, md)``.

        Blobs still referenced by a surviving checkpoint stay; so do run entries that
        still have a checkpoint.
        """
        gone: list[bytes] = []
        kept_refs: set[bytes] = set()
        kept_runs: set[bytes] = set()
        for member, rec in records.items():
            ns, cid = _as_str(member).split(SEP, 1)
            md = self._record_metadata(thread_id, ns, cid, rec)
            if remove(ns, cid, md):
                gone.append(member)
                continue
            refs, _ = self._split_record(rec)
            prefix = f"{ns}{SEP}".encode()
            kept_refs.update(prefix + r for r in refs)
            if md.get("run_id"):
                kept_runs.add(str(md["run_id"]).encode())
        gone_set = {m + b"\0" for m in gone}
        return Removal(
            members=gone,
            blob_fields=[f for f in blob_fields if f not in kept_refs],
            write_fields=[f for f in write_fields if any(f.startswith(g) for g in gone_set)],
            run_fields=[f for f in run_fields if f not in kept_runs],
            empty=len(gone) == len(records),
        )

    @staticmethod
    def _keep_latest(records: dict[bytes, bytes]) -> Any:
        latest: dict[str, str] = {}
        for member in records:
            ns, cid = _as_str(member).split(SEP, 1)
            if cid > latest.get(ns, ""):
                latest[ns] = cid
        return lambda ns, cid, md: latest.get(ns) != cid

    # --- trimming (keep the newest N) -----------------------------------------------

    @staticmethod
    def _check_keep(keep: int) -> int:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a whole number >= 1, got {keep!r}.")
        return keep

    def _oldest_kept_args(self, thread_id: str, ns: str, keep: int) -> tuple[str, str, str, int]:
        """ZREVRANGEBYLEX arguments for the ``keep``-th newest checkpoint and the one before
        it: fewer than two answers means there is nothing to trim."""
        high, low = self._lex_bounds(self._ns({"configurable": {"checkpoint_ns": ns}}), None)
        return self.thread_keys(thread_id)[0], high, low, keep - 1

    def _trim_args(
        self,
        thread_id: str,
        ns: str,
        oldest: str,
        channels: Mapping[str, DeltaChannel],
        history: Mapping[str, DeltaChannelHistory],
    ) -> tuple[list[str], list[Any]]:
        """The trim script's keys and arguments: each delta channel's value at ``oldest``
        rebuilt like LangGraph does (seed, then the writes since), ready to store."""
        args: list[Any] = [ns, oldest]
        for name, spec in channels.items():
            entry = history.get(name) or {}
            channel = spec.from_checkpoint(entry.get("seed"))
            channel.replay_writes(entry.get("writes", []))
            args += [name, _typed(*self.serde.dumps_typed(channel.get()))]
        return self.thread_keys(thread_id), args

    @staticmethod
    def _thread_info(member: bytes | str, score: float) -> ThreadInfo:
        return ThreadInfo(_as_str(member), _from_ms(score))  # type: ignore[arg-type]

    @staticmethod
    def _stats(thread_id: str, replies: list[Any]) -> ThreadStats:
        count, runs, score, pttl, *sizes = replies
        return ThreadStats(
            thread_id=thread_id,
            checkpoints=int(count),
            runs=int(runs),
            last_activity=_from_ms(score),
            bytes=sum(int(s or 0) for s in sizes),
            ttl_seconds=(int(pttl) // 1000) if pttl and int(pttl) > 0 else None,
        )
