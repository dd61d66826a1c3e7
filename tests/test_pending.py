"""chat.pending: the durable queue, the run lock and the cancel flag, on real Redis."""

from __future__ import annotations

import pytest

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_client
from chat import pending
from chat.pending import PendingMessage


def message(n: int, text: str = "") -> PendingMessage:
    text = text or f"message {n}"
    return PendingMessage(f"m{n}", text, "ada@example.com", "Europe/Paris", "2026-01-01T00:00:00Z")


async def push(thread_id: str, msg: PendingMessage, token: str) -> bytes | None:
    return await pending.asubmit(thread_id, msg, token)


def queued(thread_id: str) -> list[str]:
    raws = get_client("sessions").lrange(keys.pending_message_key(thread_id), 0, -1)
    return [PendingMessage.decode(raw).message_id for raw in raws]


def lock_owner(thread_id: str) -> str | None:
    value = get_client("sessions").get(keys.run_lock_key(thread_id))
    return value.decode() if value else None


def test_message_round_trips_through_json():
    original = PendingMessage("id-1", "héllo ✓ “quoted”", "ada@example.com", "Asia/Tokyo")
    raw = original.encode()
    assert PendingMessage.decode(raw) == original
    assert PendingMessage.decode(raw.decode()) == original
    # Unknown fields from a newer writer are ignored, missing optional ones defaulted.
    assert (
        PendingMessage.decode(b'{"message_id":"x","text":"t","user_email":"e","new":1}').text == "t"
    )


async def test_pushed_message_is_stored_before_anything_runs(sessions_redis):
    assert await push("q1", message(1), "token-a") == message(1).encode()  # lock + head
    stored = sessions_redis.lrange(keys.pending_message_key("q1"), 0, -1)
    assert [PendingMessage.decode(raw) for raw in stored] == [message(1)]
    assert sessions_redis.get(keys.run_lock_key("q1")) == b"token-a"
    assert 0 < sessions_redis.pttl(keys.run_lock_key("q1")) <= keys.RUN_LOCK_TTL_MS


async def test_only_the_first_pusher_gets_the_lock_and_order_is_kept():
    assert await push("q2", message(1), "token-a")
    assert not await push("q2", message(2), "token-b")
    assert not await push("q2", message(3), "token-c")
    assert queued("q2") == ["m1", "m2", "m3"]
    assert lock_owner("q2") == "token-a"
    assert pending.is_busy("q2") and await pending.ais_busy("q2")
    assert pending.has_pending("q2") and await pending.ahas_pending("q2")
    assert not pending.is_busy("q-none") and not await pending.ahas_pending("q-none")


async def test_a_submit_that_takes_the_lock_hands_over_the_oldest_message(sessions_redis):
    """A message left by a dead worker (its lock expired) is still the head: the run the
    next submit starts answers it first."""
    await push("q-left", message(1), "dead-worker")
    sessions_redis.delete(keys.run_lock_key("q-left"))  # the lock expired with the worker
    assert await push("q-left", message(2), "tok") == message(1).encode()
    assert queued("q-left") == ["m1", "m2"] and lock_owner("q-left") == "tok"


async def test_ack_and_next_walks_the_queue_then_releases_the_lock(sessions_redis):
    await push("q3", message(1), "tok")
    await push("q3", message(2), "other")
    status, raw = await pending.aack_and_next("q3", "tok")  # peek the head
    assert status == "next" and PendingMessage.decode(raw) == message(1)
    status, raw2 = await pending.aack_and_next("q3", "tok", message(1), raw)
    assert status == "next" and PendingMessage.decode(raw2).message_id == "m2"
    assert status == "next" and len(queued("q3")) == 1
    status, raw3 = await pending.aack_and_next("q3", "tok", message(2), raw2)
    assert (status, raw3) == ("released", None)
    assert sessions_redis.exists(keys.pending_message_key("q3"), keys.run_lock_key("q3")) == 0


async def test_a_push_during_a_run_is_seen_by_the_holder():
    """No gap between "queue empty" and "lock released": the holder sees every push."""
    await push("q4", message(1), "tok")
    status, raw = await pending.aack_and_next("q4", "tok")
    assert not await push("q4", message(2), "late")  # the lock is still held
    status, raw = await pending.aack_and_next("q4", "tok", message(1), raw)
    assert status == "next" and PendingMessage.decode(raw).message_id == "m2"


async def test_a_lost_lock_is_reported_and_the_queue_is_left_alone(sessions_redis):
    await push("q5", message(1), "tok")
    await push("q5", message(2), "x")
    sessions_redis.set(keys.run_lock_key("q5"), "someone-else")
    assert await pending.aack_and_next("q5", "tok") == ("lost", None)
    assert await pending.arenew("q5", "tok") == (False, None)
    assert len(queued("q5")) == 2


async def test_renew_extends_the_lock_and_reports_the_cancel_flag(sessions_redis):
    await push("q6", message(1), "tok")
    sessions_redis.pexpire(keys.run_lock_key("q6"), 500)
    assert await pending.arenew("q6", "tok") == (True, None)
    assert sessions_redis.pttl(keys.run_lock_key("q6")) > 1_000
    assert await pending.acancel("q6")
    assert await pending.arenew("q6", "tok") == (True, "m1")
    assert 0 < sessions_redis.ttl(keys.cancel_run_key("q6")) <= keys.CANCEL_FLAG_TTL_SECONDS


async def test_acknowledging_the_cancelled_message_clears_its_flag(sessions_redis):
    await push("q7", message(1), "tok")
    _, raw = await pending.aack_and_next("q7", "tok")
    await pending.acancel("q7")
    await pending.aack_and_next("q7", "tok", message(1), raw)
    assert sessions_redis.exists(keys.cancel_run_key("q7")) == 0


async def test_cancel_without_a_run_does_nothing(sessions_redis):
    assert not await pending.acancel("q8")
    assert sessions_redis.exists(keys.cancel_run_key("q8")) == 0


@pytest.mark.parametrize("held", [False, True])
async def test_try_lock_pending(sessions_redis, held):
    assert await pending.atry_lock_pending("q9", "tok") == 0  # nothing waiting
    await push("q9", message(1), "dead")
    if not held:
        sessions_redis.delete(keys.run_lock_key("q9"))  # the dead worker's lock expired
        assert await pending.atry_lock_pending("q9", "tok") == 1
        assert lock_owner("q9") == "tok"
    else:
        waited = await pending.atry_lock_pending("q9", "tok")
        assert -keys.RUN_LOCK_TTL_MS <= waited < 0  # minus the ms left on the holder's lock
        assert lock_owner("q9") == "dead"


async def test_drop_empties_the_queue_and_flags_a_running_message(sessions_redis):
    await push("q10", message(1), "tok")
    await push("q10", message(2), "x")
    assert await pending.adrop("q10")
    assert queued("q10") == [] and not pending.has_pending("q10")
    assert await pending.arenew("q10", "tok") == (True, "*")
    assert not await pending.adrop("q11")  # nothing running there
    await push("q12", message(1), "tok")
    assert pending.drop("q12") and queued("q12") == []  # the sync twin (admin, commands)


# --- limits: one user cannot fill Redis ----------------------------------------------------------


async def test_a_full_queue_refuses_and_writes_nothing(sessions_redis):
    for n in range(3):
        await pending.asubmit("q-full", message(n), "tok", max_queued=3)
    with pytest.raises(pending.Refused) as refused:
        await pending.asubmit("q-full", message(9), "tok", max_queued=3)
    assert (refused.value.reason, refused.value.limit) == ("queue_full", 3)
    assert queued("q-full") == ["m0", "m1", "m2"]


async def test_the_rate_limit_counts_a_users_messages_across_threads(sessions_redis):
    for n in range(4):
        await pending.asubmit(f"q-rate-{n}", message(n), "tok", per_minute=4)
    with pytest.raises(pending.Refused) as refused:
        await pending.asubmit("q-rate-9", message(9), "tok", per_minute=4)
    assert refused.value.reason == "rate_limited"
    assert queued("q-rate-9") == []
    counters = list(sessions_redis.scan_iter(match="rate:messages:*"))
    assert len(counters) == 1 and 0 < sessions_redis.ttl(counters[0]) <= 120


async def test_a_submit_run_twice_by_a_retry_queues_once_and_keeps_its_lock(sessions_redis):
    """redis-py retries a command whose reply timed out: the script may run twice with
    the same message and token. The second run queues nothing and reports the lock the
    first run took as the caller's (else the caller would wait for its own lock)."""
    first = await pending.asubmit("q-twice", message(1), "tok-1")
    again = await pending.asubmit("q-twice", message(1), "tok-1")
    assert first == again == message(1).encode()  # the lock, and the head to run first
    assert queued("q-twice") == ["m1"]


async def test_finish_publishes_done_and_acknowledges_in_one_call(sessions_redis):
    """A message's end: ``done`` goes to the stream and the group and the message is
    acknowledged (the next one handed over, or the lock released) in one script call; a
    late cancel flag for the finished message is cleared with it."""
    from channels.layers import get_channel_layer

    from chat import events

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.group_name("fin"), channel)
    await push("fin", message(1), "tok")
    await push("fin", message(2), "other")
    _, raw = await pending.aack_and_next("fin", "tok")
    sessions_redis.set(keys.cancel_run_key("fin"), "m1", ex=60)  # Stop came too late
    done = {"type": "done", "message_id": "m1", "content": "réponse", "status": "idle"}
    status, raw2 = await pending.afinish("fin", "tok", message(1), raw, done)
    assert status == "next" and PendingMessage.decode(raw2).message_id == "m2"
    received = (await layer.receive(channel))["event"]
    assert {k: v for k, v in received.items() if k != "id"} == done
    assert events.validate_event_id(received["id"])
    assert [e["id"] for e in await events.read_since("fin", "0-0")] == [received["id"]]
    assert queued("fin") == ["m2"] and lock_owner("fin") == "tok"
    assert not sessions_redis.exists(keys.cancel_run_key("fin"))
    assert 0 < sessions_redis.ttl(keys.thread_events_key("fin")) <= keys.THREAD_EVENTS_TTL_SECONDS
    status, raw3 = await pending.afinish(
        "fin", "tok", message(2), raw2, {**done, "message_id": "m2"}
    )
    assert (status, raw3) == ("released", None)
    assert not sessions_redis.exists(keys.pending_message_key("fin"), keys.run_lock_key("fin"))


async def test_finish_without_the_lock_or_on_a_deleted_thread_changes_nothing(sessions_redis):
    """Lock lost (another process runs the message now) or the thread being deleted
    (the drop flag): no ``done`` is published and the message stays queued."""
    done = {"type": "done", "message_id": "m1", "content": "x", "status": "idle"}
    await push("fin-lost", message(1), "tok")
    _, raw = await pending.aack_and_next("fin-lost", "tok")
    sessions_redis.set(keys.run_lock_key("fin-lost"), "recovered-elsewhere")
    assert await pending.afinish("fin-lost", "tok", message(1), raw, done) == ("lost", None)
    assert queued("fin-lost") == ["m1"] and lock_owner("fin-lost") == "recovered-elsewhere"
    assert not sessions_redis.exists(keys.thread_events_key("fin-lost"))

    await push("fin-gone", message(1), "tok")
    _, raw = await pending.aack_and_next("fin-gone", "tok")
    assert await pending.adrop("fin-gone")  # deleting the thread flags its run
    assert await pending.afinish("fin-gone", "tok", message(1), raw, done) == ("discarded", None)
    assert not sessions_redis.exists(keys.thread_events_key("fin-gone"))
    assert lock_owner("fin-gone") == "tok"  # the run cleans up, then releases it


async def test_finish_takes_three_round_trips_when_the_layer_cannot_take_bytes(sessions_redis):
    """The channel layer on another server (here: the same one under another name): the
    same end in three steps (lock and flag, publish, acknowledge)."""
    import asyncio

    from channels.layers import get_channel_layer
    from django.conf import settings
    from django.test import override_settings

    from agenticpal.config import channel_layers
    from chat import events

    layers = channel_layers(settings.REDIS)
    host = layers["default"]["CONFIG"]["hosts"][0]
    host["address"] = host["address"].replace("127.0.0.1", "localhost")
    done = {"type": "done", "message_id": "m1", "content": "x", "status": "idle"}
    with override_settings(CHANNEL_LAYERS=layers):
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(events.group_name("fin-2"), channel)
        await push("fin-2", message(1), "tok")
        _, raw = await pending.aack_and_next("fin-2", "tok")
        assert await pending.afinish("fin-2", "tok", message(1), raw, done) == ("released", None)
        received = (await asyncio.wait_for(layer.receive(channel), 5))["event"]
        assert received["type"] == "done" and queued("fin-2") == []
        await push("fin-3", message(1), "tok")
        _, raw = await pending.aack_and_next("fin-3", "tok")
        assert await pending.adrop("fin-3")
        assert await pending.afinish("fin-3", "tok", message(1), raw, done) == ("discarded", None)
        await layer.flush()


async def test_finish_run_twice_by_a_retry_publishes_once(sessions_redis):
    """redis-py sends a script again when its reply timed out: the second run finds the
    message acknowledged and publishes no second ``done``; it hands over the same next
    message, or says the queue was released even if another run holds the lock now."""
    done = {"type": "done", "message_id": "m1", "content": "x", "status": "idle"}
    await push("fin-twice", message(1), "tok")
    await push("fin-twice", message(2), "other")
    _, raw = await pending.aack_and_next("fin-twice", "tok")
    first = await pending.afinish("fin-twice", "tok", message(1), raw, done)
    again = await pending.afinish("fin-twice", "tok", message(1), raw, done)
    assert first == again and first[0] == "next"
    assert sessions_redis.xlen(keys.thread_events_key("fin-twice")) == 1
    assert queued("fin-twice") == ["m2"] and lock_owner("fin-twice") == "tok"

    _, raw2 = first
    done2 = {**done, "message_id": "m2"}
    assert await pending.afinish("fin-twice", "tok", message(2), raw2, done2) == ("released", None)
    await push("fin-twice", message(3), "someone-else")  # a new run took the lock meanwhile
    assert await pending.afinish("fin-twice", "tok", message(2), raw2, done2) == ("released", None)
    assert sessions_redis.xlen(keys.thread_events_key("fin-twice")) == 2
    assert lock_owner("fin-twice") == "someone-else"
