"""Retention (``CHECKPOINT_KEEP_LATEST``): threads keep their newest checkpoints only.

Against the real Redis the suite starts: a trimmed ``DeltaChannel`` conversation still
reads back whole at every kept checkpoint, time travel and forks from a kept checkpoint
work, the thread's keys hold nothing the removed checkpoints alone used, and the web
path trims at the end of each turn when the setting is set (and not otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from langchain_core.messages import AIMessage, HumanMessage

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_async_client
from chat import admin_service, history, retention
from chat.checkpoint import AsyncRedisCheckpointer, RedisCheckpointer
from chat.checkpoint.base import KINDS
from chat.graph import build_graph
from chat.messages import MESSAGES, message_text, messages_channel, needs_history
from chat.offline_model import OfflineChatModel
from tests.chat_support import eventually, runner_with
from tests.test_admin_conversations import chat
from tests.test_checkpoint import _cluster_port

EMAIL = "ann@example.com"


def cfg(thread_id: str, checkpoint_id: str | None = None) -> dict:
    conf = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def cid(snapshot: Any) -> str:
    return snapshot.config["configurable"]["checkpoint_id"]


def states(cp: RedisCheckpointer, thread_id: str) -> dict[str, list]:
    """Every checkpoint's messages as LangGraph reads them (newest first)."""
    graph = admin_service.reader_graph(cp)
    return {cid(s): s.values.get(MESSAGES, []) for s in graph.get_state_history(cfg(thread_id))}


def layout(client: redis.Redis, thread_id: str) -> dict[str, Any]:
    """What the thread's six keys hold (names only, and the runs)."""
    idx, cp, blobs, writes, wix, runs = (keys.checkpoint_thread_key(thread_id, k) for k in KINDS)
    return {
        "members": set(client.zrange(idx, 0, -1)),
        "records": client.hgetall(cp),
        "blobs": set(client.hkeys(blobs)),
        "writes": set(client.hkeys(writes)),
        "wix": set(client.zrange(wix, 0, -1)),
        "runs": set(client.hkeys(runs)),
    }


def assert_tidy(client: redis.Redis, thread_id: str) -> None:
    """Blobs are exactly those the records name, writes belong to a record, and each run
    entry names a run that still has a checkpoint."""
    saver = RedisCheckpointer(client)
    data = layout(client, thread_id)
    assert data["members"] == set(data["records"])
    named, run_ids = set(), set()
    for member, rec in data["records"].items():
        refs, _ = saver._split_record(rec)
        named |= {member.split(b"\0")[0] + b"\0" + r for r in refs}
        ns, checkpoint_id = member.decode().split("\0", 1)
        run = saver._record_metadata(thread_id, ns, checkpoint_id, rec).get("run_id")
        if run:
            run_ids.add(str(run).encode())
    assert data["blobs"] == named
    assert data["writes"] == data["wix"]
    assert all(w.rsplit(b"\0", 2)[0] in data["members"] for w in data["writes"])
    assert data["runs"] == run_ids


NOTES = ["My name is Ann", *(f"Note number {i}" for i in range(1, 21))]


@pytest.fixture
def long_thread(checkpoints_redis) -> dict[str, list]:
    """A 21-turn conversation (the name is only in the first turn) and its states."""
    chat("t-long", *NOTES)
    before = states(admin_service.saver(), "t-long")
    assert len(before) > 60
    assert_tidy(checkpoints_redis, "t-long")  # the invariant holds before trimming too
    return before


def test_trim_keeps_every_kept_checkpoint_whole(long_thread, checkpoints_redis):
    cp = admin_service.saver()
    newest = sorted(long_thread, reverse=True)[:7]
    assert retention.trim(cp, "t-long", 7) == len(long_thread) - 7

    after = states(cp, "t-long")
    assert list(after) == newest
    assert after == {i: long_thread[i] for i in newest}
    oldest = after[newest[-1]]
    assert message_text(oldest[0]) == "My name is Ann" and len(oldest) > 30
    assert len(after[newest[0]]) == 2 * len(NOTES)
    # The oldest kept checkpoint stands alone; the later ones still replay from it.
    assert not needs_history(cp.get_tuple(cfg("t-long", newest[-1])))
    assert needs_history(cp.get_tuple(cfg("t-long", newest[0])))
    assert_tidy(checkpoints_redis, "t-long")

    detail = admin_service.conversation_detail("t-long")
    assert [v.checkpoint_id for v in detail.history] == newest
    assert [m.text for m in detail.history[-1].messages] == [message_text(m) for m in oldest]
    assert retention.trim(cp, "t-long", 7) == 0  # nothing older left: no change

    (reply,) = chat("t-long", "What is my name?")  # the chat goes on, whole
    assert "Ann" in reply
    again = states(cp, "t-long")
    assert retention.trim(cp, "t-long", 3) == len(again) - 3  # a trim after a trim
    assert states(cp, "t-long") == {i: again[i] for i in sorted(again, reverse=True)[:3]}
    assert_tidy(checkpoints_redis, "t-long")


async def _ask(thread_id: str, text: str, checkpoint_id: str | None = None) -> str:
    saver = AsyncRedisCheckpointer(get_async_client("checkpoints"))
    graph = build_graph(model=OfflineChatModel(word_delay=0), checkpointer=saver)
    state = await graph.ainvoke({"messages": [HumanMessage(text)]}, cfg(thread_id, checkpoint_id))
    return state["messages"][-1].content


def test_time_travel_and_fork_from_a_kept_checkpoint(long_thread):
    cp = admin_service.saver()
    retention.trim(cp, "t-long", 9)
    kept = states(cp, "t-long")
    # A checkpoint between two turns (its last message is a reply), not the latest.
    turn_end = next(
        i for i in sorted(kept) if isinstance((kept[i] or [None])[-1], AIMessage) and i != max(kept)
    )
    # Time travel: a turn from that checkpoint branches off it, with the whole past.
    reply = asyncio.run(_ask("t-long", "What is my name?", turn_end))
    assert "Ann" in reply
    latest = cid(cp.get_tuple(cfg("t-long")))
    chain = [cid(t) for t in admin_service.lineage(cp, "t-long", latest)]
    assert turn_end in chain and chain[0] == min(kept)  # back to the oldest kept, no further
    branch = states(cp, "t-long")[latest]
    assert branch[: len(kept[turn_end])] == kept[turn_end]
    assert message_text(branch[-2]) == "What is my name?"

    forked = admin_service.fork("t-long", turn_end, owner=EMAIL)
    assert next(iter(states(cp, forked).values())) == kept[turn_end]
    (answer,) = chat(forked, "What is my name?")
    assert "Ann" in answer


def test_runs_of_removed_checkpoints_go_the_others_stay(checkpoints_redis):
    async def turns() -> None:
        saver = AsyncRedisCheckpointer(get_async_client("checkpoints"))
        graph = build_graph(model=OfflineChatModel(word_delay=0), checkpointer=saver)
        for text in NOTES[:6]:
            config = {**cfg("t-runs"), "metadata": {"run_id": str(uuid.uuid4())}}
            await graph.ainvoke({"messages": [HumanMessage(text)]}, config)

    asyncio.run(turns())
    cp = admin_service.saver()
    assert cp.thread_stats("t-runs").runs == 6
    retention.trim(cp, "t-runs", 4)
    stats = cp.thread_stats("t-runs")
    assert stats.checkpoints == 4 and 1 <= stats.runs < 6
    assert_tidy(checkpoints_redis, "t-runs")


def test_nothing_to_trim_changes_nothing(checkpoints_redis):
    chat("t-short", "Hi")
    cp = admin_service.saver()
    count = cp.thread_stats("t-short").checkpoints
    before = layout(checkpoints_redis, "t-short")
    assert retention.trim(cp, "t-short", count) == 0
    assert retention.trim(cp, "t-unknown", 1) == 0
    assert layout(checkpoints_redis, "t-short") == before


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_keep_must_be_a_whole_number_of_at_least_one(bad):
    with pytest.raises(ValueError, match="keep must be a whole number >= 1"):
        admin_service.saver().trim("t", bad)


def test_trim_on_a_redis_cluster(redis_factory, tmp_path) -> None:
    """The trim script touches one thread's keys only: one slot."""
    server = redis_factory(
        port=_cluster_port(),
        appendonly=False,
        extra_args=["--cluster-enabled", "yes", "--cluster-config-file", str(tmp_path / "n")],
    )
    with redis.Redis(port=server.port) as admin:
        admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        for _ in range(100):
            if b"cluster_state:ok" in admin.execute_command("CLUSTER", "INFO"):
                break
            threading.Event().wait(0.05)

    async def run() -> tuple[list, list, int]:
        client = aioredis.RedisCluster(host="127.0.0.1", port=server.port)
        try:
            saver = AsyncRedisCheckpointer(client)
            graph = build_graph(model=OfflineChatModel(word_delay=0), checkpointer=saver)
            for text in NOTES[:4]:
                await graph.ainvoke({"messages": [HumanMessage(text)]}, cfg("c{1}"))
            before = [s async for s in graph.aget_state_history(cfg("c{1}"))]
            removed = await saver.atrim("c{1}", 2, channels={MESSAGES: messages_channel()})
            after = [s async for s in graph.aget_state_history(cfg("c{1}"))]
            return before, after, removed
        finally:
            await client.aclose()

    before, after, removed = asyncio.run(run())
    assert removed == len(before) - 2 and len(after) == 2
    assert [(cid(s), s.values) for s in after] == [(cid(s), s.values) for s in before[:2]]


# --- the web path ---------------------------------------------------------------------


async def _turns(thread_id: str, *texts: str, sessions_redis) -> None:
    """Each message through the chat engine (queue, run lock, graph, ``done``), in turn."""
    runner = runner_with(OfflineChatModel(word_delay=0))
    busy = (keys.pending_message_key(thread_id), keys.run_lock_key(thread_id))
    for text in texts:
        await runner.submit(thread_id, text, EMAIL)
        await eventually(lambda: not sessions_redis.exists(*busy))
    await runner.drain()


async def test_the_end_of_a_turn_trims_to_the_setting(settings, sessions_redis):
    settings.CHECKPOINT_KEEP_LATEST = 3
    cp = admin_service.saver()
    await _turns("w-trim", "My name is Ann", sessions_redis=sessions_redis)
    assert cp.thread_stats("w-trim").checkpoints == 3
    await _turns("w-trim", "Hello", "What is my name?", sessions_redis=sessions_redis)
    assert cp.thread_stats("w-trim").checkpoints == 3
    conversation = await history.get_history("w-trim")
    assert [m["content"] for m in conversation if m["role"] == "user"] == [
        "My name is Ann",
        "Hello",
        "What is my name?",
    ]
    assert "Ann" in conversation[-1]["content"]


async def test_no_setting_no_trim(settings, sessions_redis):
    settings.CHECKPOINT_KEEP_LATEST = None
    await _turns("w-keep", "Hi", "Hello", sessions_redis=sessions_redis)
    assert admin_service.saver().thread_stats("w-keep").checkpoints > 3


async def test_a_failed_trim_is_logged_and_the_turn_is_answered(settings, sessions_redis, caplog):
    settings.CHECKPOINT_KEEP_LATEST = 0  # not a valid count: the trim fails
    with caplog.at_level(logging.WARNING, logger="chat.retention"):
        await _turns("w-bad", "Hi", "Hello", sessions_redis=sessions_redis)
    assert "Could not trim thread w-bad" in caplog.text
    conversation = await history.get_history("w-bad")
    assert [m["role"] for m in conversation] == ["user", "assistant", "user", "assistant"]
    assert admin_service.saver().thread_stats("w-bad").checkpoints > 3
