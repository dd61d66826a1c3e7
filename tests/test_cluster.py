"""The whole db 0 side and the checkpoints on a real 3-master Redis Cluster (REDIS_CLUSTER).

The suite starts the cluster itself (agenticpal.redis_server.RedisClusterServers). Each
multi-key script or transaction must stay inside one hash slot: a thread's keys share
its hash tag, and what spans a thread and a user (ownership, the user's indexes, the
per-minute counter) is done one slot at a time.
"""

from __future__ import annotations

import pytest
import redis
from redis.cluster import key_slot

from agenticpal import redis_clients
from agenticpal import redis_keys as keys
from chat import pending, threads
from sessions_redis import store
from tests.chat_support import connected, receive_until, session_cookie, signed_in_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_clients_are_cluster_clients(redis_cluster):
    assert isinstance(redis_clients.get_client(), redis.RedisCluster)
    assert isinstance(redis_clients.get_client("checkpoints"), redis.RedisCluster)
    assert keys.cluster_mode()


def test_a_threads_db0_keys_share_one_slot(redis_cluster):
    thread = "t-slot"
    names = [
        keys.pending_message_key(thread),
        keys.run_lock_key(thread),
        keys.cancel_run_key(thread),
        keys.thread_events_key(thread),
        keys.thread_owner_key(thread),
        keys.action_key(f"{thread}:interrupt-1"),
        keys.action_log_key(thread),
    ]
    assert len({key_slot(name.encode()) for name in names}) == 1
    assert names[0] == "pending_msg:{t-slot}"


async def test_sign_in_chat_history_and_delete(redis_cluster):
    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    assert [r.session_id for r in await store.asessions_for("ada@example.com")] == [cookie]

    comm, history = await connected("t-cluster", cookie)
    assert history["messages"] == []
    await comm.send_json_to({"type": "message", "message": "Hello there"})
    seen = await receive_until(comm, "done")
    assert any(e["type"] == "token" for e in seen)
    await comm.disconnect()

    comm, history = await connected("t-cluster", cookie)  # history read back
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    await comm.disconnect()
    assert await threads.athreads_for("ada@example.com") == ["t-cluster"]

    response = await client.delete("/api/threads/t-cluster")
    assert response.status_code in (200, 204)
    assert await threads.athreads_for("ada@example.com") == []
    aio = redis_clients.get_async_client()
    assert not await aio.exists(keys.thread_owner_key("t-cluster"))
    assert not await aio.exists(keys.thread_events_key("t-cluster"))

    assert await store.adelete_all_for("ada@example.com") == 1
    assert await store.asessions_for("ada@example.com") == []


async def test_someone_elses_thread_and_the_rate_limit(redis_cluster):
    assert await threads.aclaim("ada@example.com", "t-owned")
    assert not await threads.aclaim("bob@example.com", "t-owned")
    message = pending.PendingMessage("m-1", "hi", "bob@example.com")
    with pytest.raises(pending.Refused) as refused:
        await pending.asubmit("t-owned", message, pending.new_token())
    assert refused.value.reason == "not_owner"

    # The per-minute counter is in Cy's slot, the queue in the thread's: still one limit.
    assert await threads.aclaim("cy@example.com", "t-cy")
    for n in range(3):
        message = pending.PendingMessage(f"m-{n}", "hi", "cy@example.com")
        await pending.asubmit("t-cy", message, "tok", per_minute=3)
    message = pending.PendingMessage("m-4", "hi", "cy@example.com")
    with pytest.raises(pending.Refused) as refused:
        await pending.asubmit("t-cy", message, "tok", per_minute=3)
    assert refused.value.reason == "rate_limited"
    queue = await redis_clients.get_async_client().lrange(keys.pending_message_key("t-cy"), 0, -1)
    assert len(queue) == 3


def test_redis_check_stats_and_the_admin_listing(redis_cluster):
    from io import StringIO

    from django.core.management import call_command

    from agenticpal.redis_admin import scan_page

    out = StringIO()
    call_command("redis_check", stdout=out)
    assert "✓ Deleted test session" in out.getvalue()

    client = redis_clients.get_client()
    for n in range(30):  # spread over the three primaries
        store.write(f"s{n:03}", b'{"user_email": null}', expected=store.CREATE, ttl=60)
    client.set(keys.checkpoint_thread_key("t-1", "meta"), b"x")
    out = StringIO()
    call_command("redis_stats", "--json", stdout=out)
    import json

    report = json.loads(out.getvalue())
    by_purpose = {db["purpose"]: db for db in report["dbs"]}
    assert by_purpose["sessions"]["prefixes"][keys.SESSION_PREFIX]["keys"] == 30
    assert by_purpose["checkpoints"]["keys"] == 1
    assert len(report["servers"]) == 3

    names, cursor, pages = [], 0, 0
    while True:
        page, cursor = scan_page(client, keys.SESSION_PREFIX, cursor, 7)
        names += page
        pages += 1
        if cursor == 0:
            break
    assert sorted(names) == [f"s{n:03}" for n in range(30)]
    assert pages >= 3


def _node_port(name: str) -> int:
    client = redis_clients.get_client()
    return client.nodes_manager.get_node_from_slot(key_slot(name.encode())).port


def _user_key_ports(email: str, session_id: str) -> set[int]:
    import time

    minute = int(time.time() // 60)
    names = [
        keys.session_key(session_id),
        keys.user_sessions_key(email),
        keys.user_threads_key(email),
        keys.credentials_key(email),
        *(keys.message_rate_key(email, m) for m in (minute, minute + 1, minute + 2)),
    ]
    return {_node_port(name) for name in names}


async def test_a_node_down_fails_its_slots_only_and_heals(redis_cluster):
    """Thread A's slot is on a node that stops: A's page is a 503 and its socket closes
    with 1011 and a reason; thread B (and the user's own keys) on the others go on; A
    works again once the node is back, without a restart."""
    first = redis_cluster.nodes[0].port  # the channel layer's node: stays up
    for attempt in range(200):
        email = f"user{attempt}@example.com"
        client = await signed_in_client(email)
        busy = _user_key_ports(email, session_cookie(client)) | {first}
        if len(busy) < 3:
            break
    down = next(node for node in redis_cluster.nodes if node.port not in busy)
    a = next(
        f"t-a{n}" for n in range(500) if _node_port(keys.thread_owner_key(f"t-a{n}")) == down.port
    )
    b = next(
        f"t-b{n}"
        for n in range(500)
        if _node_port(keys.thread_owner_key(f"t-b{n}")) in busy
        and _node_port(keys.checkpoint_thread_key(f"t-b{n}", "meta")) in busy
    )
    cookie = session_cookie(client)
    comm, _ = await connected(a, cookie)  # A works while everything is up
    await comm.disconnect()

    down.stop()
    try:
        response = await client.get(f"/chat/{a}/")
        assert response.status_code == 503
        from tests.chat_support import communicator

        comm = communicator(a, cookie)
        ok, _ = await comm.connect()
        assert ok
        output = await comm.receive_output(timeout=20)
        assert output["type"] == "websocket.close" and output["code"] == 1011, output
        assert output.get("reason")

        comm, _ = await connected(b, cookie)  # B's node is up: B chats
        await comm.send_json_to({"type": "message", "message": "still here?"})
        assert (await receive_until(comm, "done", wait=30))[-1]["type"] == "done"
        await comm.disconnect()
    finally:
        down.start()

    async def a_works() -> None:
        comm, _ = await connected(a, cookie)
        await comm.disconnect()

    import asyncio

    for _ in range(100):  # the client re-reads the topology on its next request
        try:
            await a_works()
            break
        except (TimeoutError, AssertionError):
            await asyncio.sleep(0.2)
    else:
        await a_works()
    assert (await client.get(f"/chat/{a}/")).status_code == 200


def test_credentials_are_saved_read_and_rotated(redis_cluster):
    """Google credentials (encrypted) and `rotate_credentials_key` (WATCH + MULTI on one
    key at a time) on the cluster."""
    from tests.test_credentials_encryption import NEW, OLD, load_with, rotate_with, save_with

    save_with([OLD])
    save_with([OLD], email="bob@example.com")
    assert "Re-encrypted 2 credential(s); 0 unreadable." in rotate_with([NEW, OLD])
    assert load_with([NEW]).refresh_token
    assert load_with([NEW], "bob@example.com").refresh_token
