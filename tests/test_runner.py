"""chat.runner: durable queue, one run per thread across runners and event loops, order,
crash recovery without duplicates, cancel and model errors — real Redis, real graph."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
from django.conf import settings
from django.test import override_settings
from langchain_core.messages import AIMessage, HumanMessage

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_async_client
from agenticpal.redis_clients import get_client as sessions_redis_client
from chat import history, threads
from chat.graph import build_graph, get_checkpointer, run_config, stream_turn
from chat.offline_model import OfflineChatModel
from chat.pending import PendingMessage
from chat.runner import InvalidMessage, Runner
from tests.chat_support import (
    ScriptedModel,
    all_events,
    assert_runs_do_not_overlap,
    events_until,
    eventually,
    runner_with,
)

EMAIL = "ada@example.com"

pytestmark = pytest.mark.usefixtures("fast_model")


@pytest.fixture
def fast_model():
    with override_settings(AGENTICPAL_OFFLINE_WORD_DELAY=0):
        yield


async def idle(runner: Runner, thread_id: str, sessions_redis, wait: float = 10) -> None:
    """Wait until the thread's queue is empty and its lock free, then drain the runner."""
    busy = (keys.pending_message_key(thread_id), keys.run_lock_key(thread_id))
    await eventually(lambda: not sessions_redis.exists(*busy), wait)
    await runner.drain()


def roles(messages: list[dict]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


async def test_empty_message_is_refused_and_nothing_is_queued(sessions_redis):
    runner = Runner()
    with pytest.raises(InvalidMessage):
        await runner.submit("r-empty", "  \n ", EMAIL)
    assert sessions_redis.exists(keys.pending_message_key("r-empty")) == 0


async def test_message_is_durable_before_the_run_and_removed_after_it(sessions_redis):
    gate = asyncio.Event()
    runner = runner_with(ScriptedModel(gate=gate))
    mid = await runner.submit("r-durable", "hello", EMAIL, timezone="Asia/Tokyo")

    queued = sessions_redis.lrange(keys.pending_message_key("r-durable"), 0, -1)
    assert len(queued) == 1
    stored = PendingMessage.decode(queued[0])
    assert (stored.message_id, stored.text, stored.user_email) == (mid, "hello", EMAIL)
    assert stored.timezone == "Asia/Tokyo"
    assert sessions_redis.exists(keys.run_lock_key("r-durable"))

    await events_until("r-durable", "user")  # the run has started: still queued
    assert sessions_redis.llen(keys.pending_message_key("r-durable")) == 1
    gate.set()
    seen = await events_until("r-durable", "done")
    await idle(runner, "r-durable", sessions_redis)
    assert seen[0]["type"] == "user" and seen[-1]["message_id"] == mid
    conversation = await history.get_history("r-durable")
    assert conversation[0] == {"role": "user", "content": "hello"}
    assert conversation[-1] == {"role": "assistant", "content": seen[-1]["content"]}


async def test_unknown_timezone_is_dropped_not_stored(sessions_redis):
    runner = runner_with(ScriptedModel(gate=asyncio.Event()))
    await runner.submit("r-tz", "hi", EMAIL, timezone="Mars/Olympus")
    raw = sessions_redis.lindex(keys.pending_message_key("r-tz"), 0)
    assert PendingMessage.decode(raw).timezone == ""
    await runner.aclose()


async def test_tokens_stream_as_they_come():
    runner = runner_with(ScriptedModel(word_delay=0.01))  # a model that writes, not a burst
    await runner.submit("r-words", "hello there", EMAIL)
    seen = await events_until("r-words", "done")
    tokens = [e["text"] for e in seen if e["type"] == "token"]
    assert len(tokens) > 2  # words are joined per CHAT_TOKEN_WINDOW_SECONDS
    assert len(tokens[0].split()) == 1  # the first word goes out at once
    assert "".join(tokens) == seen[-1]["content"]
    await runner.drain()


async def test_second_message_is_queued_and_runs_next_in_order(sessions_redis):
    gate = asyncio.Event()
    model = ScriptedModel(gate=gate)
    runner = runner_with(model)
    first = await runner.submit("r-order", "first", EMAIL)
    second = await runner.submit("r-order", "second", EMAIL)
    third = await runner.submit("r-order", "third", EMAIL)
    queued = sessions_redis.lrange(keys.pending_message_key("r-order"), 0, -1)
    assert [PendingMessage.decode(r).message_id for r in queued] == [first, second, third]
    await events_until("r-order", "user")
    gate.set()
    seen = await events_until("r-order", "done", count=3)
    await idle(runner, "r-order", sessions_redis)
    assert assert_runs_do_not_overlap(seen) == [first, second, third]
    users = [m["content"] for m in await history.get_history("r-order") if m["role"] == "user"]
    assert users == ["first", "second", "third"]
    assert model.calls == ["first", "second", "third"]


async def test_a_second_runner_never_runs_a_thread_held_by_another(sessions_redis):
    """Two runners are two processes: only the lock holder runs, the other's message too."""
    gate = asyncio.Event()
    model_a, model_b = ScriptedModel(gate=gate), ScriptedModel()
    a, b = runner_with(model_a), runner_with(model_b)
    await a.submit("r-two", "from a", EMAIL)
    await events_until("r-two", "user")
    await b.submit("r-two", "from b", EMAIL)
    assert not await b.recover("r-two")
    gate.set()
    seen = await events_until("r-two", "done", count=2)
    await idle(a, "r-two", sessions_redis)
    await b.drain()
    assert len(assert_runs_do_not_overlap(seen)) == 2
    assert model_a.calls == ["from a", "from b"] and model_b.calls == []


def _submit_from_another_loop(thread_id: str, texts: list[str], started: threading.Event) -> None:
    """A second "process": its own event loop, Redis pools, channel layer and runner."""

    async def main() -> None:
        runner = Runner()
        started.set()
        for text in texts:
            await runner.submit(thread_id, text, EMAIL)
            await asyncio.sleep(0.003)
        queue = keys.pending_message_key(thread_id)
        await eventually(lambda: not sessions_redis_client().exists(queue), 30)
        await runner.drain()
        await get_async_client("sessions").aclose()
        await get_async_client("checkpoints").aclose()

    asyncio.run(main())


async def test_two_event_loops_share_one_thread_without_overlapping_runs(sessions_redis):
    here = [f"here {n}" for n in range(6)]
    there = [f"there {n}" for n in range(6)]
    started = threading.Event()
    other = threading.Thread(target=_submit_from_another_loop, args=("r-loops", there, started))
    other.start()
    runner = Runner()
    started.wait(5)
    for text in here:
        await runner.submit("r-loops", text, EMAIL)
        await asyncio.sleep(0.003)
    seen = await events_until("r-loops", "done", count=12, wait=30)
    await asyncio.to_thread(other.join, 30)
    await idle(runner, "r-loops", sessions_redis)
    assert len(assert_runs_do_not_overlap(seen)) == 12
    conversation = await history.get_history("r-loops")
    users = [m["content"] for m in conversation if m["role"] == "user"]
    assert sorted(users) == sorted(here + there)  # each once
    assert [m["role"] for m in conversation] == ["user", "assistant"] * 12
    assert [u for u in users if u.startswith("here")] == here  # each sender's order kept
    assert [u for u in users if u.startswith("there")] == there


# --- crash recovery ---------------------------------------------------------------------


async def leave_as_a_dead_worker(sessions_redis, thread_id: str, text: str, lock_ms: int) -> str:
    """Queue a message as a worker that then died: its lock runs out in ``lock_ms``."""
    msg = PendingMessage(f"dead-{thread_id}", text, EMAIL)
    sessions_redis.rpush(keys.pending_message_key(thread_id), msg.encode())
    if lock_ms:
        sessions_redis.set(keys.run_lock_key(thread_id), "dead-worker", px=lock_ms)
    return msg.message_id


@pytest.mark.parametrize("died", ["before the run", "after the checkpoint", "mid tool call"])
async def test_a_dead_workers_message_is_recovered_once_without_duplicates(sessions_redis, died):
    thread_id = "r-crash"
    text = "what time is it?"
    mid = await leave_as_a_dead_worker(sessions_redis, thread_id, text, lock_ms=300)
    graph = build_graph(model=OfflineChatModel(), checkpointer=await get_checkpointer())
    config = run_config(thread_id)
    if died == "after the checkpoint":  # the answer is in, only the ack was missing
        async for _ in stream_turn(graph, config, mid, text):
            pass
    elif died == "mid tool call":  # the model asked for a tool; the worker died there
        call = {"name": "current_datetime", "args": {}, "id": "call-1"}
        await graph.aupdate_state(
            config,
            {"messages": [HumanMessage(text, id=mid), AIMessage("", tool_calls=[call])]},
            as_node="agent",
        )

    a, b = Runner(), Runner()  # two processes notice (socket connects)
    assert not await a.recover(thread_id)  # the dead lock still holds for a moment
    assert not await b.recover(thread_id)
    seen = await events_until(thread_id, "done")
    await idle(a, thread_id, sessions_redis)
    await b.drain()

    users = [e for e in await all_events(thread_id) if e["type"] == "user"]
    assert [e["message_id"] for e in users] == [mid]  # recovered once
    conversation = await history.get_history(thread_id)
    assert [m["role"] for m in conversation] == ["user", "tool", "assistant"]
    assert conversation[0]["content"] == text
    assert conversation[-1]["content"] == seen[-1]["content"]


async def test_the_next_submit_runs_a_dead_workers_message_first(sessions_redis):
    dead = await leave_as_a_dead_worker(sessions_redis, "r-next", "left behind", lock_ms=0)
    runner = Runner()
    new = await runner.submit("r-next", "new one", EMAIL)
    seen = await events_until("r-next", "done", count=2)
    await idle(runner, "r-next", sessions_redis)
    assert assert_runs_do_not_overlap(seen) == [dead, new]


async def test_a_run_that_loses_its_lock_stops_and_leaves_the_message(sessions_redis):
    gate = asyncio.Event()
    runner = runner_with(ScriptedModel(gate=gate))
    await runner.submit("r-lost", "hello", EMAIL)
    await events_until("r-lost", "user")
    sessions_redis.set(keys.run_lock_key("r-lost"), "another-worker", px=60_000)
    await eventually(lambda: "r-lost" not in runner._runs, 5)
    types = [e["type"] for e in await all_events("r-lost")]
    assert "done" not in types and "error" not in types
    assert sessions_redis.llen(keys.pending_message_key("r-lost")) == 1  # not acknowledged
    gate.set()
    await runner.drain()


# --- cancel and errors ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["same runner", "another runner"])
async def test_cancel_stops_the_run_keeps_the_partial_reply_and_the_queue_moves_on(
    sessions_redis, where
):
    runner = runner_with(ScriptedModel(word_delay=0.1))
    mid = await runner.submit("r-stop", "tell me a long story", EMAIL)
    await events_until("r-stop", "token", count=2)
    stopper = runner if where == "same runner" else Runner()
    assert await stopper.cancel("r-stop")
    seen = await events_until("r-stop", "cancelled", wait=5)
    cancelled = seen[-1]
    assert cancelled["message_id"] == mid
    tokens = "".join(e["text"] for e in seen if e["type"] == "token")
    assert cancelled["content"] == tokens and tokens
    assert "done" not in [e["type"] for e in seen]

    await runner.submit("r-stop", "and now?", EMAIL)
    await events_until("r-stop", "done", after=cancelled["id"])
    await idle(runner, "r-stop", sessions_redis)
    await stopper.drain()
    conversation = await history.get_history("r-stop")
    assert conversation[:2] == [
        {"role": "user", "content": "tell me a long story"},
        {"role": "assistant", "content": tokens, "stopped": True},
    ]
    assert [m["role"] for m in conversation[2:]] == ["user", "assistant"]
    assert sessions_redis.exists(keys.cancel_run_key("r-stop")) == 0


async def test_while_a_reply_streams_its_events_keep_the_lock_and_carry_a_stop(sessions_redis):
    """Each published event extends the run's lock and reads the cancel flag in its own
    round trip: with the keeper asleep (a long interval) the lock stays fresh and a Stop
    ends the run at the next token event."""
    runner = runner_with(ScriptedModel(word_delay=0.05))
    runner._renew_interval = 30.0  # the keeper would not act within this test
    lock = keys.run_lock_key("r-renew")
    mid = await runner.submit("r-renew", "tell me a long story", EMAIL)
    await events_until("r-renew", "token", count=3)
    sessions_redis.pexpire(lock, 2_000)  # as if the last renewal were long ago
    # The next token event renews it (the reply streams for seconds more).
    await eventually(lambda: sessions_redis.pttl(lock) > keys.RUN_LOCK_TTL_MS - 2_000, 5)
    assert await Runner().cancel("r-renew")  # another process's Stop: only the flag
    asked = time.monotonic()
    seen = await events_until("r-renew", "cancelled", wait=10)
    # Far sooner than the keeper's 30 s: the next token event (~100 ms) carried it.
    assert time.monotonic() - asked < 3.0, "the Stop waited for the keeper"
    assert seen[-1]["message_id"] == mid
    await runner.drain()


async def test_cancel_with_nothing_running_is_harmless():
    assert not await Runner().cancel("r-nothing")


async def test_model_error_is_an_error_event_and_the_conversation_stays_consistent(
    sessions_redis,
):
    good = Runner()
    await good.submit("r-fail", "My name is Ada", EMAIL)
    await events_until("r-fail", "done")
    await idle(good, "r-fail", sessions_redis)
    before = await history.get_history("r-fail")

    failing = runner_with(ScriptedModel(fail_after=2))
    mid = await failing.submit("r-fail", "tell me something", EMAIL)
    seen = await events_until("r-fail", "error")
    await idle(failing, "r-fail", sessions_redis)
    error = seen[-1]
    assert error["message_id"] == mid
    assert (
        error["reason"].startswith("The assistant could not answer")
        and "send it again" in error["reason"]
    )
    assert "exploded" not in error["reason"]  # the technical detail is for the log
    assert error["text"] == "tell me something"  # the page puts it back in the composer
    assert await history.get_history("r-fail") == before  # the failed turn left no trace

    await good.submit("r-fail", "what is my name?", EMAIL)
    seen = await events_until("r-fail", "done", after=error["id"])
    await idle(good, "r-fail", sessions_redis)
    assert "Ada" in seen[-1]["content"]
    assert [m["role"] for m in await history.get_history("r-fail")] == ["user", "assistant"] * 2


async def test_a_misconfigured_model_is_an_error_event_not_a_stuck_queue(sessions_redis):
    with override_settings(AGENTICPAL_MODEL="no-such-provider:some-model"):
        runner = Runner()
        await runner.submit("r-conf", "hello", EMAIL)
        seen = await events_until("r-conf", "error")
        await idle(runner, "r-conf", sessions_redis)
    reason = seen[-1]["reason"]
    assert reason.startswith("The assistant is not available: the administrator must configure")
    assert "AGENTICPAL_MODEL" not in reason and "no-such-provider" not in reason
    assert await history.get_history("r-conf") == []


async def test_delete_thread_stops_the_run_and_removes_everything(
    sessions_redis, checkpoints_redis
):
    from chat import runner as runner_module

    await runner_module.submit("r-del", "first", EMAIL)
    done = await events_until("r-del", "done")
    gate = asyncio.Event()
    await runner_module.drain()
    model = ScriptedModel(gate=gate)
    blocked = runner_with(model)  # another process, in the middle of a run
    blocked._renew_interval = 0.05
    await blocked.submit("r-del", "second", EMAIL)
    await blocked.submit("r-del", "third", EMAIL)
    await events_until("r-del", "user", after=done[-1]["id"])
    await eventually(lambda: model.calls)
    await threads.adelete("r-del")
    # the other process sees the flag at its next lock renewal
    await eventually(lambda: "r-del" not in blocked._runs)
    gate.set()
    await blocked.drain()
    assert await history.get_history("r-del") == []
    assert sessions_redis.exists(keys.pending_message_key("r-del")) == 0
    assert sessions_redis.exists(keys.thread_events_key("r-del")) == 0
    assert not [k for k in checkpoints_redis.scan_iter(match="*r-del*")]


@pytest.mark.parametrize("meanwhile", ["deleted", "lock taken"])
async def test_the_end_of_a_run_checks_the_lock_and_the_thread_once_more(
    sessions_redis, checkpoints_redis, monkeypatch, meanwhile
):
    """The thread deleted, or its lock taken, after the graph's last event and before
    ``done``: no ``done`` goes out. Deleted: what the run wrote is removed and the lock
    released; taken: the message stays queued for the lock's holder."""
    from chat import pending

    async def meanwhile_before_done(graph, thread_id):  # the step just before the end
        if meanwhile == "deleted":
            await threads.adelete(thread_id)
        else:
            sessions_redis.set(keys.run_lock_key(thread_id), "another-worker", px=60_000)

    monkeypatch.setattr("chat.runner.atrim_after_turn", meanwhile_before_done)
    runner = runner_with(ScriptedModel())
    runner._renew_interval = 30.0  # only the end's own check can see it
    await runner.submit("r-end", "hello", EMAIL)
    await eventually(lambda: "r-end" not in runner._runs, 10)
    await runner.drain()
    types = [e["type"] for e in await pending.events.read_since("r-end", "0-0")]
    assert "done" not in types
    if meanwhile == "deleted":
        assert types == []  # the stream went with the thread
        assert not sessions_redis.exists(keys.run_lock_key("r-end"))
        assert not [k for k in checkpoints_redis.scan_iter(match="*r-end*")]
    else:
        assert "token" in types
        assert sessions_redis.llen(keys.pending_message_key("r-end")) == 1
        assert sessions_redis.get(keys.run_lock_key("r-end")) == b"another-worker"


async def test_model_error_on_the_first_turn_leaves_an_empty_conversation(sessions_redis):
    failing = runner_with(ScriptedModel(fail_after=0))
    await failing.submit("r-fail-first", "hello", EMAIL)
    await events_until("r-fail-first", "error")
    await idle(failing, "r-fail-first", sessions_redis)
    assert await history.get_history("r-fail-first") == []
    good = Runner()
    seen = await events_until_done_after_submit(good, "r-fail-first", "hello again")
    await idle(good, "r-fail-first", sessions_redis)
    assert seen[-1]["type"] == "done"
    assert [m["role"] for m in await history.get_history("r-fail-first")] == ["user", "assistant"]


async def events_until_done_after_submit(runner: Runner, thread_id: str, text: str) -> list[dict]:
    after = (await all_events(thread_id))[-1]["id"]
    await runner.submit(thread_id, text, EMAIL)
    return await events_until(thread_id, "done", after=after)


# --- the outbox: user first, the first token at once, then one event per window ---


def ms(event: dict) -> int:
    """When the event was stored (its stream id's milliseconds)."""
    return int(event["id"].split("-")[0])


def with_window(model: ScriptedModel, window: float) -> Runner:
    runner = runner_with(model)
    runner._token_window = window
    return runner


async def test_first_token_at_once_then_one_event_per_window():
    window = settings.CHAT_TOKEN_WINDOW_SECONDS  # the default the server runs with
    runner = runner_with(ScriptedModel(word_delay=0.01))  # ~10 words per 100 ms
    await runner.submit("s-window", "tell me a long story", EMAIL)
    seen = await events_until("s-window", "done")
    await runner.drain()
    kinds = [e["type"] for e in seen]
    assert kinds[0] == "user" and kinds[-1] == "done"
    tokens = [e for e in seen if e["type"] == "token"]
    assert len(tokens[0]["text"].split()) == 1  # not held back for the window
    assert any(len(t["text"].split()) > 1 for t in tokens)  # later words joined
    gaps = [ms(b) - ms(a) for a, b in itertools.pairwise(tokens[1:])]
    # One event per window (ms clock, some jitter); the last one goes out with the end.
    assert gaps[:-1] and min(gaps[:-1]) >= window * 1000 - 10
    assert "".join(t["text"] for t in tokens) == seen[-1]["content"]
    assert all(t["message_id"] == seen[0]["message_id"] for t in tokens)


async def test_without_a_window_every_word_is_an_event():
    runner = with_window(ScriptedModel(word_delay=0.01), 0)
    await runner.submit("s-words", "hello there", EMAIL)
    seen = await events_until("s-words", "done")
    await runner.drain()
    tokens = [e["text"] for e in seen if e["type"] == "token"]
    assert len(tokens) > 5 and all(len(t.split()) == 1 for t in tokens)
    assert "".join(tokens) == seen[-1]["content"]


async def test_the_end_is_not_held_back_by_the_window():
    """A long window: the first word goes out, the rest with the close, then done."""
    runner = with_window(ScriptedModel(word_delay=0.01), 30)
    await runner.submit("s-close", "hello there", EMAIL)
    seen = await events_until("s-close", "done", wait=5)
    await runner.drain()
    tokens = [e["text"] for e in seen if e["type"] == "token"]
    assert len(tokens) == 2 and len(tokens[0].split()) == 1
    assert "".join(tokens) == seen[-1]["content"]


async def test_a_stop_during_the_window_flushes_the_words_before_cancelled():
    gate = asyncio.Event()
    runner = with_window(ScriptedModel(word_delay=0.02, gate=gate), 30)
    await runner.submit("s-stop", "tell me a long story", EMAIL)
    await events_until("s-stop", "user")
    gate.set()
    await events_until("s-stop", "token")
    await asyncio.sleep(0.2)  # more words arrive, held for the window
    await runner.cancel("s-stop")
    seen = await events_until("s-stop", "cancelled", wait=5)
    await runner.drain()
    tokens = "".join(e["text"] for e in seen if e["type"] == "token")
    assert len(tokens.split()) > 2
    assert seen[-1]["content"] == tokens


@pytest.mark.parametrize("window", [0, 0.05])
async def test_tool_events_keep_their_place_among_tokens(window):
    runner = with_window(ScriptedModel(word_delay=0.01), window)
    await runner.submit("s-tool", "what time is it?", EMAIL)
    seen = await events_until("s-tool", "done")
    await runner.drain()
    kinds = [e["type"] for e in seen]
    assert "tool" in kinds, kinds
    assert kinds[0] == "user" and kinds[-1] == "done"
    final = [e["text"] for e in seen[kinds.index("tool") + 1 :] if e["type"] == "token"]
    assert "".join(final) == seen[-1]["content"]


async def test_many_replies_at_once_share_the_processs_token_event_rate(settings):
    """Four replies streaming at once in one process with a budget of 10 token events a
    second: each one's window widens to 4 / 10 s (the first word still at once)."""
    settings.CHAT_TOKEN_EVENTS_PER_SECOND = 10
    runner = runner_with(ScriptedModel(word_delay=0.04))  # a reply lasts about 2 s
    threads = [f"s-rate-{i}" for i in range(4)]
    for thread in threads:
        await runner.submit(thread, "tell me a long story", EMAIL)
    for thread in threads:
        seen = await events_until(thread, "done", wait=20)
        tokens = [e for e in seen if e["type"] == "token"]
        assert len(tokens[0]["text"].split()) == 1  # the first word at once
        gaps = [ms(b) - ms(a) for a, b in itertools.pairwise(tokens[1:])]
        # While four (or, as the first ends, three) stream: one event per 400 (300) ms;
        # the last one goes out with the end.
        assert gaps[:-1] and min(gaps[:-1]) >= 290, gaps
        assert "".join(t["text"] for t in tokens) == seen[-1]["content"]
    # One reply alone is back to CHAT_TOKEN_WINDOW_SECONDS.
    await eventually(lambda: not runner._runs, 5)
    after = (await all_events(threads[0]))[-1]["id"]
    await runner.submit(threads[0], "tell me a long story", EMAIL)
    seen = await events_until(threads[0], "done", after=after, wait=20)
    tokens = [e for e in seen if e["type"] == "token"]
    gaps = [ms(b) - ms(a) for a, b in itertools.pairwise(tokens[1:])]
    assert gaps[:-1] and max(gaps[:-1]) < 390, gaps
    await runner.drain()


# --- Redis going away mid-run: the owner of the lock tries again --------------------------------


async def test_a_run_that_redis_failed_is_answered_once_redis_is_back(redis_factory):
    from tests.conftest import use_redis

    server = redis_factory(appendonly=True)
    with use_redis(server):
        gate = asyncio.Event()
        model = ScriptedModel(gate=gate)
        worker = runner_with(model)
        await worker.submit("r-heal", "hello after the storm", EMAIL)
        await eventually(lambda: model.calls)  # the run is inside the model
        server.stop()  # Redis goes away mid-run (graceful: its AOF keeps the queue)
        gate.set()  # the run ends and fails to write its checkpoint
        await asyncio.sleep(4)  # longer than the clients' own retries (1.5-3 s)
        server.start()
        # Nobody connects, nothing else is sent: the lock's owner tries again by itself.
        seen = await events_until("r-heal", "done", wait=30)
        assert [e["type"] for e in seen].count("done") == 1
        await worker.drain()
        conversation = await history.get_history("r-heal")
        assert [m["role"] for m in conversation] == ["user", "assistant"]
        assert sessions_redis_client("sessions").llen(keys.pending_message_key("r-heal")) == 0


async def test_the_same_message_id_sent_twice_makes_one_turn(sessions_redis):
    worker = runner_with(ScriptedModel())
    assert await worker.submit("r-twice", "hi", EMAIL, message_id="client-1") == "client-1"
    await worker.drain()
    await worker.submit("r-twice", "hi", EMAIL, message_id="client-1")  # a resend
    await worker.drain()
    assert [m["role"] for m in await history.get_history("r-twice")] == ["user", "assistant"]
    with pytest.raises(InvalidMessage, match="message id"):
        await worker.submit("r-twice", "hi", EMAIL, message_id="bad id!")


async def test_limits_reach_the_user_as_a_sentence(settings, sessions_redis):
    settings.CHAT_MAX_QUEUED_MESSAGES = 2
    gate = asyncio.Event()
    worker = runner_with(ScriptedModel(gate=gate))
    await worker.submit("r-limit", "one", EMAIL)
    await worker.submit("r-limit", "two", EMAIL)
    with pytest.raises(InvalidMessage, match="already has 2 messages waiting") as refused:
        await worker.submit("r-limit", "three", EMAIL)
    assert refused.value.status == 429
    gate.set()
    await worker.drain()
