"""The approval scenario of ``bench/workspace.py``: cards on screen, actions exactly once.

Each action is a chat message ("create a task: bench task <n>") run by the real runner
(Redis queue, lock, checkpoints) against the stub Google. Card latency: from the moment
the checkpointer stores the run's interrupt (``aput_writes`` with ``__interrupt__``) to
the ``approval`` event reaching a subscriber of the thread's channel-layer group, the
path a websocket takes. Then the action is approved, and at a random step boundary the
worker "dies" (an exception nothing catches): before the action's record, after it,
after Google answered, after the record says done, or after the checkpoint but before
the decision is acknowledged. As a crashed process's would, the run lock expires (here:
is deleted) and a fresh runner takes the queued decision over. In the end every task
must exist in Google exactly once: ``duplicated`` and ``lost`` count the others.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BOUNDARIES = ["before_record", "after_record", "after_google", "after_done", "before_ack", None]


class Crash(BaseException):
    """A worker dying at a step boundary (a BaseException: nothing on the way catches it)."""


@dataclass
class Outcome:
    card_ms: list[float] = field(default_factory=list)
    crashes: dict[str, int] = field(default_factory=dict)
    actions: int = 0
    duplicated: int = 0
    lost: int = 0

    def p(self, q: float) -> float:
        ordered = sorted(self.card_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(
    email: str, count: int, workers: int, seed: int, titles_in_google: Callable[[], Any]
) -> Outcome:
    from channels.layers import get_channel_layer
    from langgraph.config import get_config

    from agenticpal import redis_keys as keys
    from agenticpal.redis_clients import get_async_client
    from chat import events, pending
    from chat import runner as runner_module
    from chat.graph import get_checkpointer
    from workspace import actions

    outcome = Outcome()
    rng = random.Random(seed)
    interrupted_at: dict[str, float] = {}
    crash_at: dict[str, str | None] = {}  # thread -> boundary still to crash at

    saver = await get_checkpointer()
    put_writes = saver.aput_writes

    async def timed_put_writes(config, writes, task_id, task_path=""):
        result = await put_writes(config, writes, task_id, task_path)
        if any(channel == "__interrupt__" for channel, _ in writes):
            interrupted_at.setdefault(config["configurable"]["thread_id"], time.perf_counter())
        return result

    saver.aput_writes = timed_put_writes

    def crash_if_due(thread_id: str, step: str) -> None:
        if crash_at.get(thread_id) == step:
            crash_at[thread_id] = None
            raise Crash(step)

    def fault(step: str) -> None:
        crash_if_due(get_config()["configurable"]["thread_id"], step)

    actions.fault = fault
    ack = pending.aack_and_next

    async def crashing_ack(thread_id, token, message=None, raw=None, **kwargs):
        if message is not None:
            crash_if_due(thread_id, "before_ack")
        return await ack(thread_id, token, message, raw, **kwargs)

    finish = pending.afinish

    async def crashing_finish(thread_id, token, message, raw, done_event):
        # A run that ends well acknowledges its message with its "done" in one call.
        crash_if_due(thread_id, "before_ack")
        return await finish(thread_id, token, message, raw, done_event)

    runner_module.pending.aack_and_next = crashing_ack
    runner_module.pending.afinish = crashing_finish
    layer = get_channel_layer()
    redis = get_async_client()

    async def one(n: int, runner: runner_module.Runner) -> None:
        thread_id = f"bench-approve-{seed}-{n}"
        channel = await layer.new_channel()
        await layer.group_add(events.group_name(thread_id), channel)

        async def until(kind: str, wait: float = 60) -> dict:
            seen: list[str] = []
            try:
                async with asyncio.timeout(wait):
                    while True:
                        message = await layer.receive(channel)
                        if message.get("type") != "chat.event":
                            continue  # layer.resubscribed: this bench reads live only
                        event = message["event"]
                        seen.append(
                            f"{event['type']}: {event.get('reason') or event.get('output', '')}"
                        )
                        if event["type"] == kind:
                            return event
            except TimeoutError:
                raise TimeoutError(
                    f"{thread_id}: no {kind} event within {wait} s; saw {seen}"
                ) from None

        await runner.submit(thread_id, f"create a task: bench task {n}", email)
        card = await until("approval")
        # The card can arrive before the interrupt's writes are stored (LangGraph
        # stores them in the background): then it took no time after them.
        now = time.perf_counter()
        outcome.card_ms.append(max(0.0, now - interrupted_at.get(thread_id, now)) * 1000)
        await until("done")
        boundary = rng.choice(BOUNDARIES)
        crash_at[thread_id] = boundary
        await runner.decide(thread_id, {card["interrupt_id"]: {"type": "approve"}}, email)
        if boundary is None:
            await until("done")
        else:
            # The worker died: its lock expires (deleted here, not waited for) and a
            # fresh runner, as another process would, runs the queued decision again.
            deadline = time.monotonic() + 60
            while crash_at[thread_id] is not None:  # set by the fault hook
                if time.monotonic() > deadline:  # a boundary the run no longer passes
                    raise TimeoutError(f"{thread_id}: the run never reached {boundary}")
                await asyncio.sleep(0.01)
            outcome.crashes[boundary] = outcome.crashes.get(boundary, 0) + 1
            await asyncio.sleep(0.05)  # the dying run lets go of what it holds
            await redis.delete(keys.run_lock_key(thread_id))
            await runner_module.Runner().recover(thread_id)
            while await redis.exists(keys.pending_message_key(thread_id)):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await layer.group_discard(events.group_name(thread_id), channel)

    runner = runner_module.Runner()
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            await one(queue.pop(0), runner)

    # A crashed run's task ends with Crash, by design: not worth a traceback (for the
    # rest of the loop's life: the tasks are collected later).
    asyncio.get_running_loop().set_exception_handler(_quiet_crashes)
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        actions.fault = None
        runner_module.pending.aack_and_next = ack
        runner_module.pending.afinish = finish
        saver.aput_writes = put_writes
    titles = await titles_in_google()
    outcome.actions = count
    for n in range(count):
        found = titles.count(f"bench task {n}")
        outcome.duplicated += max(0, found - 1)
        outcome.lost += found == 0
    return outcome


def _quiet_crashes(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    if not isinstance(context.get("exception"), Crash):
        loop.default_exception_handler(context)
