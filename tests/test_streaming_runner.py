"""chat.runner's outbox: ``user`` first, the first token at once, then the words of each
50 ms window joined into one event, nothing lost or reordered, a stop flushes at once —
real Redis, real graph (the events are read back from the thread's stream)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from chat.runner import Runner
from tests.chat_support import ScriptedModel, events_until, runner_with

EMAIL = "ada@example.com"


def ms(event: dict) -> int:
    """When the event was stored (its stream id's milliseconds)."""
    return int(event["id"].split("-")[0])


def with_window(model: ScriptedModel, window: float) -> Runner:
    runner = runner_with(model)
    runner._token_window = window
    return runner


async def test_first_token_at_once_then_one_event_per_window():
    runner = runner_with(ScriptedModel(word_delay=0.01))  # ~5 words per 50 ms
    await runner.submit("s-window", "tell me a long story", EMAIL)
    seen = await events_until("s-window", "done")
    await runner.drain()
    kinds = [e["type"] for e in seen]
    assert kinds[0] == "user" and kinds[-1] == "done"
    tokens = [e for e in seen if e["type"] == "token"]
    assert len(tokens[0]["text"].split()) == 1  # not held back for the window
    assert any(len(t["text"].split()) > 1 for t in tokens)  # later words joined
    gaps = [ms(b) - ms(a) for a, b in itertools.pairwise(tokens[1:])]
    # One event per ~50 ms (ms clock, some jitter); the last one goes out with the end.
    assert gaps[:-1] and min(gaps[:-1]) >= 40
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
