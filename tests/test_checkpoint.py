"""Behaviour of the Redis checkpointer beyond the conformance suite: TTL, cluster hash
tags, concurrent writers, long threads, corrupt data, Redis going away, passwords, and
``create_redis_checkpointer()``. Everything runs against real ``redis-server`` processes.
"""

from __future__ import annotations

import asyncio
import contextvars
import operator
import random
import socket
import threading
import uuid
from typing import Annotated, Any, TypedDict

import pytest
import redis
from django.test import override_settings
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from redis.crc import key_slot

from agenticpal import redis_clients
from agenticpal import redis_keys as keys
from agenticpal.config import redis_settings, with_db
from agenticpal.redis_server import free_port
from chat.checkpoint import (
    AsyncRedisCheckpointer,
    CheckpointDecodeError,
    CheckpointerUnavailableError,
    RedisCheckpointer,
    create_redis_checkpointer,
)


class ChatState(TypedDict):
    messages: Annotated[list[str], operator.add]


def chat_graph(checkpointer: Any, on_reply: Any = None) -> Any:
    """Two nodes appending messages, like one chat turn (user, then assistant)."""

    def user(state: ChatState) -> dict:
        return {}

    def assistant(state: ChatState) -> dict:
        if on_reply:
            on_reply(state)
        return {"messages": [f"reply {len(state['messages'])}"]}

    builder = StateGraph(ChatState)
    builder.add_node("user", user)
    builder.add_node("assistant", assistant)
    builder.add_edge(START, "user")
    builder.add_edge("user", "assistant")
    builder.add_edge("assistant", END)
    return builder.compile(checkpointer=checkpointer)


def cfg(thread_id: str, ns: str = "", **extra: Any) -> dict:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, **extra}}


def put_checkpoint(saver: RedisCheckpointer, thread_id: str, parent: dict | None = None, **values):
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=-1))
    cp["channel_values"] = values
    cp["channel_versions"] = {k: saver.get_next_version(None, None) for k in values}
    metadata = {"source": "loop", "step": 0, "run_id": "run-1"}
    return saver.put(parent or cfg(thread_id), cp, metadata, cp["channel_versions"])


@pytest.fixture
def saver() -> RedisCheckpointer:
    with RedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as s:
        yield s


# --- TTL ------------------------------------------------------------------------------


def test_ttl_is_set_and_refreshed_on_every_write(checkpoints_redis: redis.Redis) -> None:
    with RedisCheckpointer.from_url(redis_clients.url_for("checkpoints"), ttl=1000) as saver:
        conf = put_checkpoint(saver, "t-ttl", messages=["hi"])
        saver.put_writes(conf, [("messages", ["w"])], task_id="task-1")
        thread_keys = [k for k in saver.thread_keys("t-ttl") if checkpoints_redis.exists(k)]
        assert len(thread_keys) == 6
        assert all(990 < checkpoints_redis.ttl(k) <= 1000 for k in thread_keys)
        for k in thread_keys:
            checkpoints_redis.expire(k, 5)
        saver.put_writes(conf, [("messages", ["again"])], task_id="task-2")
        assert all(checkpoints_redis.ttl(k) > 990 for k in thread_keys)
        for k in thread_keys:
            checkpoints_redis.expire(k, 5)
        put_checkpoint(saver, "t-ttl", parent=conf, messages=["next"])
        assert all(checkpoints_redis.ttl(k) > 990 for k in thread_keys)
        assert saver.thread_stats("t-ttl").ttl_seconds > 990
        # The thread index itself never expires; it forgets expired threads on demand.
        assert checkpoints_redis.ttl(keys.CHECKPOINT_THREAD_INDEX_KEY) == -1
        checkpoints_redis.delete(*thread_keys)
        assert saver.forget_expired_threads() == 1
        assert saver.count_threads() == 0


def test_no_ttl_by_default(saver: RedisCheckpointer, checkpoints_redis: redis.Redis) -> None:
    put_checkpoint(saver, "t-persist", messages=["hi"])
    assert checkpoints_redis.ttl(saver.thread_keys("t-persist")[0]) == -1
    with pytest.raises(ValueError, match="ttl"):
        RedisCheckpointer(checkpoints_redis, ttl=0)


# --- Redis Cluster hash tags ----------------------------------------------------------


@pytest.mark.parametrize(
    "thread_id", ["t1", "a{b}c", "{x}", "}{", "%7B", "", "üñî-çødé", "x" * 300]
)
def test_every_key_of_a_thread_is_in_one_slot(
    thread_id: str, saver: RedisCheckpointer, checkpoints_redis: redis.Redis
) -> None:
    conf = put_checkpoint(saver, thread_id, messages=["hi"])
    saver.put_writes(conf, [("messages", ["w"])], task_id="task")
    stored = [
        k for k in checkpoints_redis.scan_iter() if k != keys.CHECKPOINT_THREAD_INDEX_KEY.encode()
    ]
    assert len(stored) == 6
    assert {key_slot(k) for k in stored} == {key_slot(saver.thread_keys(thread_id)[0].encode())}
    assert saver.get_tuple(cfg(thread_id)).checkpoint["channel_values"] == {"messages": ["hi"]}


def test_tags_are_injective_and_spread_threads_over_slots() -> None:
    tags = {keys.checkpoint_hash_tag(t) for t in ["{a}", "%7Ba%7D", "a", "", "%"]}
    assert len(tags) == 5
    slots = {key_slot(RedisCheckpointer.thread_keys(f"thread-{i}")[0].encode()) for i in range(200)}
    assert len(slots) > 150


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid too."""
    for _ in range(200):
        port = free_port()
        if port <= 55535:
            return port
        with socket.socket() as sock:
            candidate = random.randint(20000, 55535)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise RuntimeError("no free port below 55536 for a Redis Cluster node")


def test_works_on_a_real_redis_cluster(redis_factory, tmp_path) -> None:
    server = redis_factory(
        port=_cluster_port(),
        appendonly=False,
        extra_args=[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(tmp_path / "nodes.conf"),
        ],
    )
    with redis.Redis(port=server.port) as admin:
        admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        for _ in range(100):
            if admin.execute_command("CLUSTER", "INFO").decode().find("cluster_state:ok") >= 0:
                break
            threading.Event().wait(0.05)
    cluster = redis.RedisCluster(host="127.0.0.1", port=server.port)
    try:
        saver = RedisCheckpointer(cluster)
        assert saver.cluster
        first = put_checkpoint(saver, "c{1}", messages=["a"])
        saver.put_writes(first, [("messages", ["w"])], task_id="task")
        put_checkpoint(saver, "c{1}", parent=first, messages=["a", "b"])
        assert saver.get_tuple(cfg("c{1}")).checkpoint["channel_values"] == {"messages": ["a", "b"]}
        assert len(list(saver.list(cfg("c{1}")))) == 2
        assert [t.thread_id for t in saver.list_threads()] == ["c{1}"]
        saver.copy_thread("c{1}", "c2")
        saver.prune(["c2"])
        assert len(list(saver.list(cfg("c2")))) == 1
        saver.delete_for_runs(["run-1"])  # every checkpoint of c2 goes: the thread goes
        assert saver.get_tuple(cfg("c2")) is None
        saver.delete_thread("c{1}")
        assert saver.get_tuple(cfg("c{1}")) is None
        assert saver.count_threads() == 0
    finally:
        cluster.close()


# --- concurrency ----------------------------------------------------------------------


async def test_concurrent_writers_on_one_thread() -> None:
    async with AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as saver:
        base = await saver.aput(
            cfg("busy"), {**empty_checkpoint(), "id": str(uuid6(clock_seq=-1))}, {"step": 0}, {}
        )
        # 50 tasks write pending writes on one checkpoint at once; the same (task, idx)
        # written twice keeps the first value (HSETNX), as LangGraph requires.
        await asyncio.gather(
            *(
                saver.aput_writes(base, [("a", i), ("b", -i)], task_id=f"task-{i:02}")
                for i in range(50)
            ),
            *(saver.aput_writes(base, [("a", "late")], task_id="task-00") for _ in range(10)),
        )
        tup = await saver.aget_tuple(base)
        assert len(tup.pending_writes) == 100
        assert ("task-00", "a", 0) in tup.pending_writes
        assert ("task-00", "a", "late") not in tup.pending_writes
        # 40 checkpoints put concurrently from 40 writers all land, newest first in list.
        ids = [str(uuid6(clock_seq=-1)) for _ in range(40)]
        await asyncio.gather(
            *(
                saver.aput(base, {**empty_checkpoint(), "id": cid}, {"step": n + 1}, {})
                for n, cid in enumerate(ids)
            )
        )
        listed = [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(cfg("busy"))]
        assert listed == sorted([*ids, base["configurable"]["checkpoint_id"]], reverse=True)


def test_concurrent_graph_runs_from_threads_keep_every_turn() -> None:
    """Sync writers in several OS threads on several conversations: no turn lost."""
    url = redis_clients.url_for("checkpoints")
    with RedisCheckpointer.from_url(url) as saver:
        graph = chat_graph(saver)

        def talk(thread_id: str) -> None:
            for turn in range(20):
                graph.invoke({"messages": [f"{thread_id} {turn}"]}, cfg(thread_id))

        workers = [threading.Thread(target=talk, args=(f"conv-{i}",)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for i in range(4):
            assert len(graph.get_state(cfg(f"conv-{i}")).values["messages"]) == 40
        assert saver.count_threads() == 4


# --- long threads ---------------------------------------------------------------------


async def test_a_500_turn_thread(checkpoints_redis: redis.Redis) -> None:
    async with AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as saver:
        graph = chat_graph(saver)
        for turn in range(500):
            await graph.ainvoke({"messages": [f"user {turn}"]}, cfg("long"))
        state = await graph.aget_state(cfg("long"))
        assert len(state.values["messages"]) == 1000
        assert state.values["messages"][-2:] == ["user 499", "reply 999"]
        newest = [t async for t in saver.alist(cfg("long"), limit=3)]
        assert [t.metadata["step"] for t in newest] == [
            newest[0].metadata["step"] - i for i in range(3)
        ]
        assert newest[0].config == state.config
        older = [t async for t in saver.alist(cfg("long"), before=newest[1].config, limit=2)]
        assert [t.metadata["step"] for t in older] == [
            newest[2].metadata["step"],
            newest[2].metadata["step"] - 1,
        ]
        everything = [t async for t in saver.alist(cfg("long"))]
        assert len(everything) == 500 * 4  # input, user, assistant + the first empty step
        ids = [t.config["configurable"]["checkpoint_id"] for t in everything]
        assert ids == sorted(ids, reverse=True)
        # Still six keys, whatever the length; each turn wrote only the blobs it changed.
        stored = {k.decode() for k in checkpoints_redis.scan_iter(match="checkpoint:{long}*")}
        assert stored <= set(saver.thread_keys("long"))
        history = [s async for s in graph.aget_state_history(cfg("long"), limit=5)]
        assert history[0].values == state.values


# --- bad data -------------------------------------------------------------------------


def test_a_corrupt_blob_raises_a_clear_error(saver: RedisCheckpointer, checkpoints_redis) -> None:
    conf = put_checkpoint(saver, "t-bad", messages=["fine"])
    cid = conf["configurable"]["checkpoint_id"]
    blobs = saver.thread_keys("t-bad")[2]
    (field,) = checkpoints_redis.hkeys(blobs)
    checkpoints_redis.hset(blobs, field, b"\x00\x07msgpack\xc1\xc1garbage")
    with pytest.raises(CheckpointDecodeError) as err:
        saver.get_tuple(cfg("t-bad"))
    message = str(err.value)
    assert "'t-bad'" in message and cid in message and "channel 'messages'" in message
    with pytest.raises(CheckpointDecodeError, match=cid):
        list(saver.list(cfg("t-bad")))
    # Nothing was deleted or rewritten.
    assert checkpoints_redis.hget(blobs, field) == b"\x00\x07msgpack\xc1\xc1garbage"


def test_a_truncated_record_raises_a_clear_error(
    saver: RedisCheckpointer, checkpoints_redis
) -> None:
    conf = put_checkpoint(saver, "t-cut", messages=["fine"])
    cid = conf["configurable"]["checkpoint_id"]
    cp_key = saver.thread_keys("t-cut")[1]
    (field,) = checkpoints_redis.hkeys(cp_key)
    checkpoints_redis.hset(cp_key, field, checkpoints_redis.hget(cp_key, field)[:-30])
    with pytest.raises(CheckpointDecodeError, match=f"Checkpoint {cid} of thread 't-cut'"):
        saver.get_tuple(cfg("t-cut"))


def test_namespace_with_nul_is_refused(saver: RedisCheckpointer) -> None:
    with pytest.raises(ValueError, match="NUL"):
        saver.get_tuple(cfg("t", ns="a\0b"))


# --- Redis going away -----------------------------------------------------------------


async def test_redis_stopped_mid_run_then_resumes(private_redis) -> None:
    server = private_redis
    stop_on = {"turn": 3}
    calls = {"n": 0}

    def maybe_stop(state: ChatState) -> None:
        calls["n"] += 1
        if calls["n"] == stop_on["turn"]:
            server.stop()

    saver = await create_redis_checkpointer()
    assert isinstance(saver, AsyncRedisCheckpointer)
    assert saver.client.connection_pool.connection_kwargs["db"] == keys.CHECKPOINTS_DB
    graph = chat_graph(saver, on_reply=maybe_stop)
    for turn in range(2):
        await graph.ainvoke({"messages": [f"user {turn}"]}, cfg("resume"))
    with pytest.raises(CheckpointerUnavailableError) as err:
        await graph.ainvoke({"messages": ["user 2"]}, cfg("resume"))
    assert f"127.0.0.1:{server.port}/1" in str(err.value) and "'resume'" in str(err.value)
    with pytest.raises(CheckpointerUnavailableError):
        await create_redis_checkpointer()  # the web path reports Redis down, no fallback

    server.start()
    redis_clients.reset()
    saver = await create_redis_checkpointer()
    graph = chat_graph(saver, on_reply=maybe_stop)
    state = await graph.aget_state(cfg("resume"))
    # What was committed before the stop is intact (the turn that failed may have left
    # its input checkpoint; it never left a half-written one).
    assert state.values["messages"][:4] == ["user 0", "reply 1", "user 1", "reply 3"]
    assert len(state.values["messages"]) in (4, 5)
    await graph.ainvoke({"messages": ["user 3"]}, cfg("resume"))
    state = await graph.aget_state(cfg("resume"))
    assert state.values["messages"][:4] == ["user 0", "reply 1", "user 1", "reply 3"]
    assert state.values["messages"][-2:][-1].startswith("reply ")
    assert "user 3" in state.values["messages"]


def test_sync_saver_reports_redis_down_clearly(redis_factory) -> None:
    server = redis_factory()
    with RedisCheckpointer.from_url(with_db(server.url, keys.CHECKPOINTS_DB)) as saver:
        conf = put_checkpoint(saver, "t-down", messages=["kept"])
        server.stop()
        with pytest.raises(CheckpointerUnavailableError, match="make redis") as err:
            put_checkpoint(saver, "t-down", parent=conf, messages=["lost"])
        assert isinstance(err.value, redis.exceptions.ConnectionError)
        server.start()
        assert saver.get_tuple(cfg("t-down")).checkpoint["channel_values"] == {"messages": ["kept"]}


# --- URLs and passwords ---------------------------------------------------------------


async def test_from_url_with_password(redis_factory) -> None:
    server = redis_factory()
    with redis.Redis(port=server.port) as admin:
        admin.config_set("requirepass", "s3cret-pw")
    url = f"redis://:s3cret-pw@127.0.0.1:{server.port}/{keys.CHECKPOINTS_DB}"
    with RedisCheckpointer.from_url(url) as saver:
        put_checkpoint(saver, "t-pw", messages=["sync"])
    async with AsyncRedisCheckpointer.from_url(url) as asaver:
        tup = await asaver.aget_tuple(cfg("t-pw"))
        assert tup.checkpoint["channel_values"] == {"messages": ["sync"]}
        assert "s3cret-pw" not in asaver.where()
    wrong = f"redis://:wrong-pw@127.0.0.1:{server.port}/{keys.CHECKPOINTS_DB}"
    async with AsyncRedisCheckpointer.from_url(wrong) as bad:
        with pytest.raises(redis.exceptions.ConnectionError) as err:
            await bad.aget_tuple(cfg("t-pw"))
        assert "wrong-pw" not in str(err.value)
    with redis.Redis(port=server.port, password="s3cret-pw", db=keys.CHECKPOINTS_DB) as raw:
        assert raw.zcard(keys.CHECKPOINT_THREAD_INDEX_KEY) == 1


# --- create_redis_checkpointer --------------------------------------------------------


async def test_create_uses_db_1_of_the_settings() -> None:
    saver = await create_redis_checkpointer()
    assert isinstance(saver, AsyncRedisCheckpointer)
    assert saver.client.connection_pool.connection_kwargs["db"] == keys.CHECKPOINTS_DB
    graph = chat_graph(saver)
    await graph.ainvoke({"messages": ["hi"]}, cfg("web"))
    assert (await graph.aget_state(cfg("web"))).values["messages"] == ["hi", "reply 1"]


async def test_cli_path_falls_back_loudly_and_web_path_raises(redis_factory, capsys) -> None:
    server = redis_factory()
    url = f"redis://:hidden-pw@127.0.0.1:{server.port}"
    server.stop()
    with override_settings(REDIS=redis_settings(url, connect_timeout=1)):
        with pytest.raises(CheckpointerUnavailableError, match=f"127.0.0.1:{server.port}"):
            await create_redis_checkpointer()
        saver = await create_redis_checkpointer(fallback=True)
        assert isinstance(saver, InMemorySaver)
    err = capsys.readouterr().err
    assert "WARNING" in err and f"redis://:***@127.0.0.1:{server.port}/1" in err
    assert "hidden-pw" not in err


async def test_setting_selects_the_official_saver_which_needs_modules() -> None:
    # The test Redis is plain Redis 7: the official saver cannot create its indexes.
    with (
        override_settings(CHECKPOINTER="official"),
        pytest.raises(RuntimeError, match="RediSearch"),
    ):
        await create_redis_checkpointer()
    with (
        override_settings(CHECKPOINTER="nonsense"),
        pytest.raises(ValueError, match="CHECKPOINTER"),
    ):
        await create_redis_checkpointer()


def test_thread_index_lists_threads_newest_first(saver: RedisCheckpointer) -> None:
    for name in ["one", "two", "three"]:
        put_checkpoint(saver, name, messages=[name])
        threading.Event().wait(0.005)  # the index is scored in milliseconds
    assert [t.thread_id for t in saver.list_threads()] == ["three", "two", "one"]
    stats = saver.thread_stats("two")
    assert stats.checkpoints == 1 and stats.bytes > 0 and stats.ttl_seconds is None
    saver.delete_thread("two")
    assert [t.thread_id for t in saver.list_threads()] == ["three", "one"]
    tid = str(uuid.uuid4())
    assert saver.get_tuple(cfg(tid)) is None


# --- DeltaChannel: the parent walk in one call ------------------------------------------


def _extend(state: list, writes: list) -> list:
    return [*state, *(x for w in writes for x in w)]


class DeltaState(TypedDict):
    messages: Annotated[list, DeltaChannel(_extend, snapshot_frequency=4)]
    other: Annotated[list, DeltaChannel(_extend, snapshot_frequency=7)]


def delta_graph(checkpointer: Any) -> Any:
    def agent(state: DeltaState) -> dict:
        return {"messages": [f"reply {len(state['messages'])}"], "other": [len(state["other"])]}

    def bookkeep(state: DeltaState) -> dict:
        return {"messages": [f"done {len(state['messages'])}"]}

    builder = StateGraph(DeltaState)
    builder.add_node("agent", agent)
    builder.add_node("bookkeep", bookkeep)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "bookkeep")
    builder.add_edge("bookkeep", END)
    return builder.compile(checkpointer=checkpointer)


async def test_delta_channels_replay_like_the_in_memory_saver() -> None:
    memory = InMemorySaver()
    async with AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as saver:
        ours, theirs = delta_graph(saver), delta_graph(memory)
        for turn in range(25):
            for graph in (ours, theirs):
                await graph.ainvoke({"messages": [f"user {turn}"], "other": []}, cfg("delta"))
        mine = (await ours.aget_state(cfg("delta"))).values
        assert mine == (await theirs.aget_state(cfg("delta"))).values
        assert len(mine["messages"]) == 75
        channels = ["messages", "other", "absent"]
        async for tup in saver.alist(cfg("delta"), limit=12):
            fast = await saver.aget_delta_channel_history(config=tup.config, channels=channels)
            slow = await BaseCheckpointSaver.aget_delta_channel_history(
                saver, config=tup.config, channels=channels
            )
            assert fast == slow
        assert await saver.aget_delta_channel_history(config=cfg("nope"), channels=channels) == {
            ch: {"writes": []} for ch in channels
        }


def test_delta_history_sync_matches_the_default_walk(saver: RedisCheckpointer) -> None:
    graph = delta_graph(saver)
    for turn in range(10):
        graph.invoke({"messages": [f"user {turn}"], "other": []}, cfg("delta-sync"))
    assert len(graph.get_state(cfg("delta-sync")).values["messages"]) == 30
    for tup in saver.list(cfg("delta-sync"), limit=8):
        fast = saver.get_delta_channel_history(config=tup.config, channels=["messages", "other"])
        slow = BaseCheckpointSaver.get_delta_channel_history(
            saver, config=tup.config, channels=["messages", "other"]
        )
        assert fast == slow


async def test_the_web_path_honours_checkpoint_ttl_seconds(settings, checkpoints_redis):
    settings.CHECKPOINT_TTL_SECONDS = 3600
    saver = await create_redis_checkpointer()
    assert saver.ttl == 3600
    settings.CHECKPOINT_TTL_SECONDS = None
    assert (await create_redis_checkpointer()).ttl is None  # the default: kept until pruned


def interrupting_graph(checkpointer: Any) -> Any:
    """A node that asks the user (``interrupt``) when its message says so."""
    from langgraph.types import interrupt

    def ask(state: ChatState) -> dict:
        if state["messages"][-1].startswith("ask"):
            return {"messages": [f"answered {interrupt('approve?')}"]}
        return {"messages": ["done"]}

    builder = StateGraph(ChatState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=checkpointer)


def interrupted_by_tuple(saver: BaseCheckpointSaver, config: dict) -> bool:
    """What ``has_interrupt`` answers, worked out the slow way: the whole tuple."""
    found = saver.get_tuple(config)
    return found is not None and any(w[1] == "__interrupt__" for w in found.pending_writes)


async def test_has_interrupt_answers_like_the_pending_writes(saver: RedisCheckpointer) -> None:
    """The check before every turn reads one small answer instead of the checkpoint; it
    must agree with the checkpoint's pending writes at every point of a conversation."""
    from langgraph.types import Command

    thread = f"interrupts-{uuid.uuid4().hex}"
    config = cfg(thread)
    async with AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as asaver:
        graph = interrupting_graph(saver)
        seen = []
        for step in ("hello", "ask now", Command(resume="yes"), "ask again", "moving on"):
            if isinstance(step, Command):
                graph.invoke(step, config)
            else:
                graph.invoke({"messages": [step]}, config)
            expected = interrupted_by_tuple(saver, config)
            assert saver.has_interrupt(config) is expected
            assert await asaver.ahas_interrupt(config) is expected
            seen.append(expected)
        # Asked, resumed, asked again; a new message while asked runs past the question
        # (the graph starts over from the new input), so nothing waits at the end.
        assert seen == [False, True, False, True, False]
        assert saver.has_interrupt(cfg(f"none-{uuid.uuid4().hex}")) is False
        assert saver.has_interrupt(cfg(thread, ns="other")) is False


# --- A turn's reads in one call (aread_turn) ---------------------------------------------


def evalsha_calls(client: redis.Redis) -> int:
    return client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


async def test_a_turns_reads_are_one_call_and_read_what_the_usual_reads_read(
    checkpoints_redis: redis.Redis,
) -> None:
    """aread_turn answers as ahas_interrupt, and the turn's aget_tuple of the latest
    checkpoint and aget_delta_channel_history of it then come from that one call, with
    what the usual reads return; each once."""
    async with (
        AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as saver,
        AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as other,
    ):
        graph = delta_graph(saver)
        for turn in range(9):
            await graph.ainvoke({"messages": [f"user {turn}"], "other": []}, cfg("turn"))
        channels = ["messages", "other"]
        await saver.aload_scripts()  # a first call's NOSCRIPT is not counted below
        expected = await other.aget_tuple(cfg("turn"))
        history = await other.aget_delta_channel_history(config=expected.config, channels=channels)

        calls = evalsha_calls(checkpoints_redis)
        assert await saver.aread_turn(cfg("turn"), channels) is False
        assert evalsha_calls(checkpoints_redis) == calls + 1
        found = await saver.aget_tuple(cfg("turn"))
        assert found == expected
        assert (
            await saver.aget_delta_channel_history(config=found.config, channels=channels)
            == history
        )
        assert evalsha_calls(checkpoints_redis) == calls + 1  # no more round trips
        assert await saver.aget_tuple(cfg("turn")) == expected  # used once: read again
        assert evalsha_calls(checkpoints_redis) == calls + 2

        # The graph's own turn starts from it, and continues the conversation.
        assert await saver.aread_turn(cfg("turn"), channels) is False
        state = await graph.ainvoke({"messages": ["user 9"], "other": []}, cfg("turn"))
        assert len(state["messages"]) == 30
        assert state == (await delta_graph(other).aget_state(cfg("turn"))).values


async def test_a_turns_reads_are_dropped_by_a_write_and_by_time(monkeypatch) -> None:
    from chat.checkpoint import aio

    async with AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as saver:
        graph = delta_graph(saver)
        await graph.ainvoke({"messages": ["one"], "other": []}, cfg("drop"))
        before = await saver.aget_tuple(cfg("drop"))
        await saver.aread_turn(cfg("drop"), ["messages", "other"])
        await graph.ainvoke({"messages": ["two"], "other": []}, cfg("drop"))  # writes
        after = await saver.aget_tuple(cfg("drop"))
        assert after.checkpoint["id"] != before.checkpoint["id"]
        assert len((await graph.aget_state(cfg("drop"))).values["messages"]) == 6

        await saver.aread_turn(cfg("drop"), ["messages", "other"])
        monkeypatch.setattr(aio, "TURN_READ_SECONDS", 0.0)  # too old to use
        assert saver._turns  # kept, but not used
        found = await saver.aget_tuple(cfg("drop"))
        assert found == await saver.aget_tuple(cfg("drop"))
        assert found.checkpoint["id"] == after.checkpoint["id"]

        await saver.aread_turn(cfg("drop"), ["messages"])
        await saver.adelete_thread("drop")
        assert not saver._turns and await saver.aget_tuple(cfg("drop")) is None


async def test_a_turns_reads_serve_only_its_task_and_go_with_a_write_or_its_end(
    checkpoints_redis: redis.Redis,
) -> None:
    """Another reader of the thread in the process (a page, a socket's history: another
    task) reads Redis; a write through the saver, or the turn's end, drops the read."""
    async with AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as saver:
        await saver.aload_scripts()
        graph = delta_graph(saver)
        await graph.ainvoke({"messages": ["one"], "other": []}, cfg("scope"))
        latest = await saver.aget_tuple(cfg("scope"))

        await saver.aread_turn(cfg("scope"), ["messages"])
        calls = evalsha_calls(checkpoints_redis)
        other_reader = saver.aget_tuple(cfg("scope"))  # a task not started by the turn's
        assert await asyncio.create_task(other_reader, context=contextvars.Context()) == latest
        assert evalsha_calls(checkpoints_redis) == calls + 1  # the other task read Redis
        assert await saver.aget_tuple(cfg("scope")) == latest  # this one did not
        assert evalsha_calls(checkpoints_redis) == calls + 1

        await saver.aread_turn(cfg("scope"), ["messages"])
        await saver.aput_writes(latest.config, [("other", ["x"])], "task-1")
        calls = evalsha_calls(checkpoints_redis)
        found = await saver.aget_tuple(cfg("scope"))
        assert evalsha_calls(checkpoints_redis) == calls + 1  # dropped by the write
        assert ("task-1", "other", ["x"]) in found.pending_writes

        await saver.aread_turn(cfg("scope"), ["messages"])
        saver.forget_turn("scope")
        calls = evalsha_calls(checkpoints_redis)
        await saver.aget_tuple(cfg("scope"))
        assert evalsha_calls(checkpoints_redis) == calls + 1


async def test_a_turns_reads_answer_interrupts_and_keep_nothing_for_a_new_thread(
    saver: RedisCheckpointer,
) -> None:
    from langgraph.types import Command

    thread = f"turn-interrupts-{uuid.uuid4().hex}"
    async with AsyncRedisCheckpointer.from_url(redis_clients.url_for("checkpoints")) as asaver:
        assert await asaver.aread_turn(cfg(thread), ["messages"]) is False
        assert await asaver.aget_tuple(cfg(thread)) is None  # known: no checkpoint yet
        graph = interrupting_graph(saver)
        for step in ("hello", "ask now", Command(resume="yes"), "ask again"):
            graph.invoke(step if isinstance(step, Command) else {"messages": [step]}, cfg(thread))
            expected = interrupted_by_tuple(saver, cfg(thread))
            assert await asaver.aread_turn(cfg(thread), []) is expected
            assert await asaver.aget_tuple(cfg(thread)) == saver.get_tuple(cfg(thread))
        assert await asaver.aread_turn(cfg(thread, ns="other"), []) is False
