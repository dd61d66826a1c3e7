"""chat.graph, the offline model and the date/time tool: multi-turn context from Redis
checkpoints, the tool path end to end, model configuration errors, Redis down."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agenticpal import redis_keys as keys
from chat import graph as chat_graph
from chat import history
from chat.checkpoint import CheckpointerUnavailableError
from chat.graph import (
    build_graph,
    get_checkpointer,
    make_model,
    model_display_name,
    route_start,
    run_config,
    settle_turn,
    stream_turn,
)
from chat.offline_model import DISPLAY_NAME, OfflineChatModel, plan_reply, words
from chat.runner import Runner
from chat.tools import current_datetime, format_now
from tests.chat_support import events_until

EMAIL = "ada@example.com"


@pytest.fixture(autouse=True)
def fast_model():
    with override_settings(AGENTICPAL_OFFLINE_WORD_DELAY=0):
        yield


async def ask(runner: Runner, thread_id: str, text: str, after: str = "0-0", **kw) -> list[dict]:
    await runner.submit(thread_id, text, EMAIL, **kw)
    return await events_until(thread_id, "done", after=after)


# --- the offline model --------------------------------------------------------------


def test_words_keep_the_spacing_so_tokens_join_back():
    text = "Hello,  **Ada**!\nHow are you?"
    assert "".join(words(text)) == text
    assert words("   ") == []


def test_the_offline_model_writes_at_a_reading_pace_by_default(settings):
    """Unset, the offline model writes about 12 words a second: a reply takes long enough
    to be read as it comes and to be stopped in the middle (tests set their own pace)."""
    del settings.AGENTICPAL_OFFLINE_WORD_DELAY
    assert make_model().word_delay == chat_graph.DEFAULT_WORD_DELAY
    assert 1 / 15 <= chat_graph.DEFAULT_WORD_DELAY <= 1 / 8


def test_plan_reply_is_deterministic_and_answers_from_the_conversation():
    said = [
        HumanMessage("My name is Grace Hopper"),
        AIMessage("ok"),
        HumanMessage("what is my name?"),
    ]
    assert plan_reply(said).text == plan_reply(said).text
    assert "Grace Hopper" in plan_reply(said).text
    assert "not told me your name" in plan_reply([HumanMessage("who am I?")]).text


def test_time_questions_call_the_tool_only_when_it_is_bound():
    question = [HumanMessage("what time is it in Asia/Tokyo?")]
    call = plan_reply(question, ["current_datetime"]).tool_calls[0]
    assert call["name"] == "current_datetime" and call["args"] == {"timezone": "Asia/Tokyo"}
    assert plan_reply(question, []).tool_calls == []
    answered = [
        *question,
        AIMessage("", tool_calls=[call]),
        ToolMessage("Monday", tool_call_id=call["id"]),
    ]
    assert plan_reply(answered).text == "It is **Monday**."


async def test_the_model_streams_word_by_word():
    model = OfflineChatModel()
    chunks = [c.content async for c in model.astream([HumanMessage("hello there")]) if c.content]
    assert len(chunks) > 5 and all(len(c.split()) == 1 for c in chunks)
    assert "".join(chunks) == (await model.ainvoke([HumanMessage("hello there")])).content


def test_the_default_model_is_the_offline_one_and_says_so():
    with override_settings(AGENTICPAL_MODEL=""):
        assert isinstance(make_model(), OfflineChatModel)
        assert model_display_name() == DISPLAY_NAME
        assert "offline" in DISPLAY_NAME


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("no-such-provider:some-model", "provider:model"),
        ("openai:gpt-4.1-mini", "agenticpal[openai]"),
    ],
)
def test_a_model_that_cannot_be_loaded_is_an_actionable_error(name, says):
    with override_settings(AGENTICPAL_MODEL=name), pytest.raises(ImproperlyConfigured) as info:
        make_model()
    assert name in str(info.value) and says in str(info.value)
    assert "unset AGENTICPAL_MODEL" in str(info.value) or "unset it" in str(info.value)


# --- the tool -----------------------------------------------------------------------


def test_current_datetime_uses_the_timezone_argument_then_the_users_then_the_servers():
    paris = current_datetime.invoke({"timezone": "Europe/Paris"}, {"configurable": {}})
    assert "(Europe/Paris, UTC+0" in paris
    tokyo = current_datetime.invoke({}, {"configurable": {"timezone": "Asia/Tokyo"}})
    assert "(Asia/Tokyo, UTC+09:00)" in tokyo
    with override_settings(TIME_ZONE="America/New_York"):
        assert "America/New_York" in current_datetime.invoke({}, {"configurable": {}})
    assert "Unknown timezone" in current_datetime.invoke({"timezone": "Mars/Base"}, {})


def test_format_now():
    moment = datetime(2026, 3, 8, 9, 5, tzinfo=UTC)
    assert format_now(ZoneInfo("UTC"), moment) == "Sunday 8 March 2026, 09:05 (UTC, UTC+00:00)"


# --- the graph through the runner, on the Redis checkpointer --------------------------


async def test_multi_turn_context_comes_from_the_checkpoint_even_after_a_restart():
    runner = Runner()
    first = await ask(runner, "g-ctx", "My name is Grace Hopper")
    assert "Grace Hopper" in first[-1]["content"]
    second = await ask(runner, "g-ctx", "I like compilers", after=first[-1]["id"])
    await runner.drain()

    chat_graph.reset()  # a new process: nothing cached, only Redis remembers
    restarted = Runner()
    name = await ask(restarted, "g-ctx", "what is my name?", after=second[-1]["id"])
    assert "Grace Hopper" in name[-1]["content"]
    recap = await ask(restarted, "g-ctx", "what did I say earlier?", after=name[-1]["id"])
    assert "I like compilers" in recap[-1]["content"]
    await restarted.drain()
    users = [m["content"] for m in await history.get_history("g-ctx") if m["role"] == "user"]
    assert users == [
        "My name is Grace Hopper",
        "I like compilers",
        "what is my name?",
        "what did I say earlier?",
    ]


def test_a_recap_ends_with_one_full_stop() -> None:
    said = [HumanMessage("Hello, my name is Ada."), HumanMessage("What did I tell you earlier?")]
    assert plan_reply(said).text == "You told me earlier that “Hello, my name is Ada.”"
    said = [HumanMessage("I like compilers"), HumanMessage("What did I tell you earlier?")]
    assert plan_reply(said).text == "You told me earlier that “I like compilers”."


async def test_the_tool_path_runs_end_to_end_in_the_users_timezone():
    runner = Runner()
    seen = await ask(runner, "g-tool", "what time is it?", timezone="Asia/Tokyo")
    await runner.drain()
    tools = [e for e in seen if e["type"] == "tool"]
    assert len(tools) == 1 and tools[0]["name"] == "current_datetime"
    assert "(Asia/Tokyo, UTC+09:00)" in tools[0]["output"]
    assert tools[0]["output"] in seen[-1]["content"]
    kinds = [e["type"] for e in seen]
    assert kinds.index("tool") < kinds.index("token")  # the answer is written from the result
    conversation = await history.get_history("g-tool")
    assert [m["role"] for m in conversation] == ["user", "tool", "assistant"]
    assert conversation[1]["name"] == "current_datetime"


async def test_a_timezone_named_in_the_question_wins():
    runner = Runner()
    seen = await ask(runner, "g-tz", "what time is it in America/New_York?", timezone="Asia/Tokyo")
    await runner.drain()
    assert "America/New_York" in next(e for e in seen if e["type"] == "tool")["output"]


# --- graph building blocks ----------------------------------------------------------------


def test_route_start():
    call = {"name": "current_datetime", "args": {}, "id": "c1"}
    assert route_start({"messages": [HumanMessage("hi")]}) == "agent"
    sends = route_start({"messages": [HumanMessage("hi"), AIMessage("", tool_calls=[call])]})
    assert [(s.node, s.arg[0]["id"]) for s in sends] == [("tools", "c1")]  # a task per call
    assert route_start({"messages": [HumanMessage("hi"), AIMessage("hello")]}) == "__end__"
    assert route_start({"messages": []}) == "__end__"


async def test_running_an_answered_message_again_changes_nothing():
    graph = build_graph(model=OfflineChatModel(), checkpointer=await get_checkpointer())
    config = run_config("g-again")
    first = [kind async for kind, _ in stream_turn(graph, config, "m1", "hello")]
    again = [kind async for kind, _ in stream_turn(graph, config, "m1", "hello")]
    assert "token" in first and again == []
    assert [m["role"] for m in await history.get_history("g-again")] == ["user", "assistant"]


async def test_settle_turn_removes_unanswered_tool_calls_and_keeps_the_partial_reply():
    graph = build_graph(model=OfflineChatModel(), checkpointer=await get_checkpointer())
    config = run_config("g-settle")
    call = {"name": "current_datetime", "args": {}, "id": "c1"}
    await graph.aupdate_state(
        config,
        {"messages": [HumanMessage("what time?", id="m1"), AIMessage("", tool_calls=[call])]},
        as_node="agent",
    )
    await settle_turn(graph, config, "m1", stopped_text="Let me")
    assert await history.get_history("g-settle") == [
        {"role": "user", "content": "what time?"},
        {"role": "assistant", "content": "Let me", "stopped": True},
    ]
    await settle_turn(graph, config, "m1", stopped_text=None)
    assert await history.get_history("g-settle") == []
    await settle_turn(graph, config, "not-there", stopped_text=None)  # harmless


# --- Redis down: an error, never a silent in-memory fallback on the web path --------------


async def test_redis_down_is_an_error_on_the_web_path(private_redis):
    private_redis.stop()
    chat_graph.reset()
    with pytest.raises(CheckpointerUnavailableError) as info:
        await get_checkpointer()
    assert isinstance(info.value, redis.exceptions.ConnectionError)  # -> 503 / close 1011
    with pytest.raises(redis.exceptions.ConnectionError):
        await history.get_history("g-down")


# --- the conversation stored as deltas ------------------------------------------------------


async def test_a_conversation_stored_before_the_delta_channel_goes_on():
    """A thread written by the old graph (``add_messages``: the whole list in every
    checkpoint) is read, answered and extended by the delta-channel graph."""
    from langgraph.graph import MessagesState, StateGraph

    saver = await get_checkpointer()
    config = run_config("g-old-format")
    old = StateGraph(MessagesState)
    old.add_node("agent", lambda state: {"messages": [AIMessage("Hello Ann", id="a1")]})
    old.add_edge("__start__", "agent")
    await old.compile(checkpointer=saver).ainvoke(
        {"messages": [HumanMessage("My name is Ann", id="h1")]}, config
    )
    assert [m["content"] for m in await history.get_history("g-old-format")] == [
        "My name is Ann",
        "Hello Ann",
    ]
    graph = build_graph(model=OfflineChatModel(), checkpointer=saver)
    async for _ in stream_turn(graph, config, "h2", "What is my name?"):
        pass
    texts = [m["content"] for m in await history.get_history("g-old-format")]
    assert texts[:2] == ["My name is Ann", "Hello Ann"] and "Ann" in texts[-1]
    assert len(texts) == 4


async def test_each_turn_stores_only_what_it_added(checkpoints_redis):
    """Redis bytes per turn stay flat as the conversation grows (they grew with its
    length when every checkpoint held the whole list)."""
    graph = build_graph(model=OfflineChatModel(), checkpointer=await get_checkpointer())
    config = run_config("g-linear")
    tag = keys.checkpoint_hash_tag("g-linear")

    def used() -> int:
        return sum(
            checkpoints_redis.memory_usage(k, samples=0) or 0
            for k in checkpoints_redis.scan_iter(match=f"{keys.CHECKPOINT_PREFIX}{tag}*")
        )

    sizes = []
    for turn in range(60):
        before = used()
        text = f"Message number {turn}: " + "words " * 40
        async for _ in stream_turn(graph, config, f"m{turn}", text):
            pass
        sizes.append(used() - before)
    early, late = sum(sizes[5:10]) / 5, sum(sizes[55:60]) / 5
    assert late <= 1.5 * early, (early, late, sizes)
    messages = await history.get_history("g-linear")
    assert len([m for m in messages if m["role"] == "user"]) == 60


async def test_a_threads_history_writes_are_decoded_once_per_saver(monkeypatch):
    """Every turn reads the conversation's writes since the last snapshot again; each
    stored write is decoded once, later reads reuse it (same messages either way)."""
    runner = Runner()
    first = await ask(runner, "g-memo", "My name is Grace Hopper")
    await ask(runner, "g-memo", "I like compilers", after=first[-1]["id"])
    await runner.drain()
    saver = await chat_graph.get_checkpointer()
    config = {"configurable": {"thread_id": "g-memo", "checkpoint_ns": ""}}
    cold = type(saver)(saver.client)  # a new saver: nothing decoded yet
    history_of = cold.aget_delta_channel_history  # the DeltaChannel's read
    latest = await cold.aget_tuple(config)
    calls = []
    original = cold.serde.loads_typed
    monkeypatch.setattr(cold.serde, "loads_typed", lambda data: calls.append(1) or original(data))
    first_read = await history_of(config=latest.config, channels=["messages"])
    decoded_first = len(calls)
    again = await history_of(config=latest.config, channels=["messages"])
    assert decoded_first >= 4 and len(calls) == decoded_first  # nothing decoded again
    assert [v for _, _, v in again["messages"]["writes"]] == [
        v for _, _, v in first_read["messages"]["writes"]
    ]
