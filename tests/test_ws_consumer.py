"""The chat websocket through the real ASGI stack (origin check, sessions, auth) and real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from agenticpal import redis_keys as keys
from chat import events
from tests.chat_support import (
    communicator,
    connected,
    receive,
    receive_until,
    session_cookie,
    signed_in_client,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def close_code(comm) -> int:
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def test_anonymous_socket_is_closed_with_4401():
    comm = communicator("t-anon")
    ok, _ = await comm.connect()
    assert ok  # accepted first so a browser sees the close code, then closed
    assert await close_code(comm) == 4401


async def test_foreign_origin_is_refused():
    client = await signed_in_client("ada@example.com")
    comm = communicator("t-origin", session_cookie(client), origin="http://evil.example")
    ok, _ = await comm.connect()
    assert not ok


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://localhost", "localhost", True),
        ("http://localhost:8000", "localhost:8000", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://localhost", "localhost", True),  # TLS proxy: https page, Host as sent
        ("https://localhost", "localhost:443", True),
        ("http://localhost:80", "localhost", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("HTTP://LOCALHOST:8000", "LocalHost:8000", True),
        ("http://localhost:9999", "localhost:8000", False),  # another port, another site
        ("http://localhost:9999", "localhost", False),
        ("http://localhost", "localhost:8000", False),
        ("https://localhost", "localhost:80", False),
        ("http://127.0.0.1:8000", "localhost:8000", False),
        ("http://evil.example", "evil.example", False),  # not in ALLOWED_HOSTS
        ("http://evil.example:8000", "localhost:8000", False),
        ("null", "localhost", False),  # sandboxed iframes, file:// pages
        ("ftp://localhost", "localhost", False),
        ("http://localhost:99999", "localhost", False),
        ("http://localhost", "localhost:bad", False),
        (None, "localhost", False),
        ("http://localhost", None, False),
    ],
)
def test_origin_must_be_the_host_port_included(origin, host, allowed):
    from agenticpal.asgi import origin_allowed

    assert origin_allowed(origin, host) is allowed


@override_settings(CSRF_TRUSTED_ORIGINS=["https://chat.example.com", "https://*.apps.example.com"])
def test_trusted_origins_pass_when_a_proxy_rewrites_host():
    from agenticpal.asgi import origin_allowed

    assert origin_allowed("https://chat.example.com", "app:8000")
    assert origin_allowed("https://eu.apps.example.com", "app:8000")
    assert not origin_allowed("http://chat.example.com", "app:8000")  # scheme counts here
    assert not origin_allowed("https://chat.example.com:8443", "app:8000")
    assert not origin_allowed("https://evil.example.com", "app:8000")


async def test_another_port_of_the_same_host_is_refused_at_the_handshake(caplog):
    from agenticpal.asgi import application

    client = await signed_in_client("ada@example.com")
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_cookie(client)}".encode()

    def handshake(origin: bytes) -> WebsocketCommunicator:
        headers = [(b"origin", origin), (b"host", b"localhost:8000"), (b"cookie", cookie)]
        return WebsocketCommunicator(application, "/ws/chat/t-port/", headers=headers)

    refused = handshake(b"http://localhost:9999")
    ok, _ = await refused.connect()
    assert not ok
    assert any("Websocket refused" in r.getMessage() for r in caplog.records)
    accepted = handshake(b"http://localhost:8000")
    ok, _ = await accepted.connect()
    assert ok
    await accepted.disconnect()


async def test_thread_of_another_user_is_closed_with_4403_and_reveals_nothing():
    ada = await signed_in_client("ada@example.com")
    bob = await signed_in_client("bob@example.com")
    comm, _ = await connected("t-private", session_cookie(ada))
    await comm.send_json_to({"type": "message", "message": "my secret plan"})
    await receive_until(comm, "done")
    await comm.disconnect()

    intruder = communicator("t-private", session_cookie(bob))
    ok, _ = await intruder.connect()
    assert ok
    output = await intruder.receive_output(timeout=5)
    assert output == {"type": "websocket.close", "code": 4403, "reason": "Forbidden."}


async def test_new_thread_is_claimed_and_listed_for_the_user(sessions_redis):
    client = await signed_in_client("ada@example.com")
    comm, first = await connected("t-new", session_cookie(client))
    assert first == {"type": "history", "thread_id": "t-new", "messages": [], "approvals": []}
    await comm.disconnect()
    record = json.loads(sessions_redis.get(keys.session_key(session_cookie(client))))
    assert record["thread_ids"] == ["t-new"]
    response = await client.get("/api/threads")
    assert [t["id"] for t in response.json()["threads"]] == ["t-new"]


async def test_a_new_thread_joins_the_session_without_reading_it_again(sessions_redis):
    """The socket loaded the session (its sliding-TTL read): adding the new thread to its
    ``thread_ids`` is the compare-and-set write alone, no GET first; a session changed
    in between is read again and loses nothing."""
    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    comm, _ = await connected("t-warm", cookie)  # pools and scripts warm
    await comm.disconnect()
    seen = []

    session_key = keys.session_key(cookie)
    end = f"end-of-test-{uuid.uuid4().hex}"

    def watch(monitor) -> None:
        for command in monitor.listen():
            if command["client_type"] == "lua":
                continue
            if command["command"] == f"ECHO {end}":
                return
            seen.append(command["command"])

    with sessions_redis.monitor() as monitor:
        watcher = asyncio.get_running_loop().run_in_executor(None, watch, monitor)
        comm, _ = await connected("t-one-read", cookie)
        await comm.disconnect()
        sessions_redis.echo(end)
        await asyncio.wait_for(watcher, 10)
    assert f"GET {session_key}" not in seen, seen
    assert sum(session_key in command for command in seen) == 2, seen  # the load, the write
    record = json.loads(sessions_redis.get(keys.session_key(cookie)))
    assert record["thread_ids"] == ["t-warm", "t-one-read"]

    from sessions_redis import store

    stale = sessions_redis.get(keys.session_key(cookie))
    assert await store.aadd_thread_id(cookie, "t-meanwhile")
    assert await store.aadd_thread_id(cookie, "t-stale", loaded=stale)
    record = json.loads(sessions_redis.get(keys.session_key(cookie)))
    assert record["thread_ids"] == ["t-warm", "t-one-read", "t-meanwhile", "t-stale"]


async def test_tokens_stream_and_history_comes_back_on_reconnect():
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-stream", session_cookie(client))
    await comm.send_json_to({"type": "message", "message": "hello there"})
    events = await receive_until(comm, "done")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "user" and events[0]["text"] == "hello there"
    assert "token" in kinds
    tokens = "".join(e["text"] for e in events if e["type"] == "token")
    done = events[-1]
    assert tokens.strip() == done["content"].strip()
    assert all(e["id"] for e in events)  # stream ids, usable for SSE resume
    await comm.disconnect()

    again, first = await connected("t-stream", session_cookie(client))
    roles = [(m["role"], m["content"]) for m in first["messages"] if m["role"] != "tool"]
    assert roles[0] == ("user", "hello there")
    assert roles[-1] == ("assistant", done["content"])
    await again.disconnect()


async def test_two_tabs_of_one_thread_both_see_the_stream():
    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    tab1, _ = await connected("t-tabs", cookie)
    tab2, _ = await connected("t-tabs", cookie)
    await tab1.send_json_to({"type": "message", "message": "both of you"})
    seen1, seen2 = await asyncio.gather(receive_until(tab1, "done"), receive_until(tab2, "done"))
    assert seen1 == seen2
    assert any(e["type"] == "token" for e in seen2)
    await tab1.disconnect()
    await tab2.disconnect()


@pytest.mark.parametrize(
    ("frame", "reason_has"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "JSON object"),
        ('{"type": "shout"}', "Unknown frame type"),
        ('{"message": "no type"}', "Unknown frame type"),
        ('{"type": "message", "message": ""}', "empty"),
        ('{"type": "message", "message": "   \\n "}', "empty"),
        ('{"type": "message", "message": 42}', "string"),
        (json.dumps({"type": "message", "message": "x" * (16 * 1024 + 1)}), "16 KB"),
        (json.dumps({"type": "message", "message": "é" * (8 * 1024 + 1)}), "16 KB"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(frame, reason_has):
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-bad", session_cookie(client))
    await comm.send_to(text_data=frame)
    event = await receive(comm)
    assert event["type"] == "error"
    assert reason_has in event["reason"]
    await comm.send_json_to({"type": "ping"})
    assert await receive(comm) == {"type": "pong"}
    await comm.disconnect()


async def test_binary_frame_gets_an_error():
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-bin", session_cookie(client))
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await receive(comm))["type"] == "error"
    await comm.disconnect()


async def test_message_of_exactly_16_kb_is_accepted():
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-16k", session_cookie(client))
    await comm.send_json_to({"type": "message", "message": "y" * (16 * 1024)})
    events = await receive_until(comm, "done", wait=30)
    assert events[0]["type"] == "user"
    await comm.disconnect()


async def test_second_message_during_a_run_is_queued_and_run_next():
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-queue", session_cookie(client))
    await comm.send_json_to({"type": "message", "message": "first question"})
    await comm.send_json_to({"type": "message", "message": "second question"})
    first = await receive_until(comm, "done", wait=20)
    second = await receive_until(comm, "done", wait=20)
    ids_first = {e["message_id"] for e in first if "message_id" in e}
    ids_second = {e["message_id"] for e in second if "message_id" in e}
    # One run after the other: no event of the second run inside the first.
    assert len(ids_first) == 1 and len(ids_second) == 1 and ids_first != ids_second
    texts = [e["text"] for e in first + second if e["type"] == "user"]
    assert texts == ["first question", "second question"]
    await comm.disconnect()

    again, history = await connected("t-queue", session_cookie(client))
    users = [m["content"] for m in history["messages"] if m["role"] == "user"]
    assert users == ["first question", "second question"]
    await again.disconnect()


async def test_redis_going_down_closes_the_socket_with_1011(private_redis):
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-down", session_cookie(client))
    private_redis.stop()
    await comm.send_json_to({"type": "ping"})
    output = await comm.receive_output(timeout=10)
    assert output["type"] == "websocket.close"
    assert output["code"] == 1011
    assert "Redis" in output["reason"]
    assert len(output["reason"].encode()) <= 123


async def test_events_missed_while_the_subscription_was_down_come_as_soon_as_it_is_back(
    private_redis,
):
    """Redis drops the channel layer's subscriber connection (as in a restart); an event
    stored meanwhile (appended to the thread's stream, its live publish lost) reaches
    the tab as soon as the subscription is confirmed again, not at the next ping."""
    import redis

    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-resub", session_cookie(client))
    missed = {"type": "token", "text": "missed while away", "message_id": "m1"}
    with redis.Redis.from_url(private_redis.url) as admin:
        admin.xadd(keys.thread_events_key("t-resub"), {"e": json.dumps(missed)})
        assert admin.client_kill_filter(_type="pubsub") >= 1
    event = await receive(comm, wait=5)  # no ping sent
    assert event["type"] == "token" and event["text"] == "missed while away", event
    assert event["id"]
    await comm.send_json_to({"type": "ping"})  # the ping's catch-up does not send it again
    assert await receive(comm) == {"type": "pong"}
    await comm.disconnect()


async def test_a_catch_up_that_fails_after_a_resubscribe_is_made_whole_by_the_next_ping(
    private_redis, monkeypatch
):
    """Redis confirms the subscription but does not answer the read yet (still loading
    its data): the next ping catches up every event, not only those older than its
    usual second. (The missed event's id is a minute ahead, so only that catch-up sends
    it.)"""
    import time

    import redis

    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-resub-fail", session_cookie(client))
    failed = asyncio.Event()
    read_since = events.read_since

    async def loading_once(*args, **kwargs):
        if not failed.is_set():
            failed.set()
            raise redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory")
        return await read_since(*args, **kwargs)

    monkeypatch.setattr(events, "read_since", loading_once)
    missed = {"type": "token", "text": "missed while loading", "message_id": "m1"}
    ahead = f"{int(time.time() * 1000) + 60_000}-0"
    with redis.Redis.from_url(private_redis.url) as admin:
        admin.xadd(keys.thread_events_key("t-resub-fail"), {"e": json.dumps(missed)}, id=ahead)
        assert admin.client_kill_filter(_type="pubsub") >= 1
    await asyncio.wait_for(failed.wait(), 5)
    await comm.send_json_to({"type": "ping"})
    event = await receive(comm)
    assert event["text"] == "missed while loading" and event["id"] == ahead, event
    assert await receive(comm) == {"type": "pong"}
    await comm.disconnect()


async def test_a_session_unreadable_at_open_is_a_1011_close_not_a_sign_in(private_redis):
    """Redis down while the socket's session is read: the user is not taken for
    anonymous (4401 "Sign in first") but the error reaches the consumer, which closes
    with 1011 and a reason. (With one Redis, the channel layer fails first; on a Redis
    Cluster the session's node can be down while the layer's is up.)"""
    from chat.consumers import ChatConsumer
    from sessions_redis.websocket import AuthMiddlewareStack

    client = await signed_in_client("ada@example.com")
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    private_redis.stop()
    headers = [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_cookie(client)}".encode())]
    scope = {"type": "websocket", "path": "/ws/chat/x/", "headers": headers}
    await AuthMiddlewareStack(inner)(scope, None, None)
    assert "redis_error" in seen and not seen["user"].is_authenticated
    private_redis.start()

    comm = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/t-down-open/")
    comm.scope.update(user=seen["user"], redis_error=seen["redis_error"],
                      url_route={"kwargs": {"thread_id": "t-down-open"}})  # fmt: skip
    ok, _ = await comm.connect()
    assert ok
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close" and output["code"] == 1011, output
    assert "Redis" in output["reason"]


async def test_the_session_is_read_on_the_event_loop(monkeypatch):
    """Opening a socket reads the session with the async client; the sync read (a worker
    thread, Channels' own way) is not used."""
    from sessions_redis.backend import SessionStore

    client = await signed_in_client("ada@example.com")

    def no_sync_read(self):
        raise AssertionError("the session was read with the sync client")

    monkeypatch.setattr(SessionStore, "load", no_sync_read)
    comm, history = await connected("t-async-session", session_cookie(client))
    assert history["type"] == "history"
    await comm.disconnect()
    comm = communicator("t-async-anon")  # no session at all: anonymous, no thread either
    ok, _ = await comm.connect()
    assert ok and await close_code(comm) == 4401


# --- the user behind a socket: one kept database connection, Django's checks each time ---


def _on_lookup_thread(fn):
    """Run ``fn`` on the websocket sign-in thread (whose connection is the one kept)."""
    from sessions_redis.websocket import _LOOKUPS

    return _LOOKUPS.submit(fn).result(timeout=10)


def _closes_on_lookup_thread(monkeypatch) -> list[str]:
    """The aliases of the database connections closed on the sign-in thread from now on
    (recorded: the test database is in memory, where Django ignores a close)."""
    import threading

    from django.db import connections

    wrapper = type(connections["default"])
    closed, close = [], wrapper.close

    def recording(self):
        if threading.current_thread().name.startswith("websocket-sign-in"):
            closed.append(self.alias)
        return close(self)

    monkeypatch.setattr(wrapper, "close", recording)
    return closed


async def test_sockets_opened_one_after_another_share_one_database_connection(monkeypatch):
    import time

    from django.db import connections

    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    comm, _ = await connected("t-conn-0", cookie)  # the thread's connection, if it had none
    await comm.disconnect()
    _on_lookup_thread(lambda: setattr(connections["default"], "close_at", time.monotonic() + 60))
    closed = _closes_on_lookup_thread(monkeypatch)
    for n in range(1, 6):
        comm, history = await connected(f"t-conn-{n}", cookie)
        assert history["type"] == "history"
        await comm.disconnect()
    assert closed == []  # Channels' database_sync_to_async closed it before and after each
    assert _on_lookup_thread(lambda: connections["default"].connection is not None)


async def test_a_user_deactivated_meanwhile_is_refused_on_the_next_socket():
    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    comm, _ = await connected("t-active", cookie)
    await comm.disconnect()
    from django.contrib.auth import get_user_model

    await get_user_model().objects.filter(username="ada").aupdate(is_active=False)
    comm = communicator("t-active", cookie)
    ok, _ = await comm.connect()
    assert ok and await close_code(comm) == 4401


async def test_a_changed_password_flushes_the_session_and_refuses_the_socket():
    from django.contrib.auth import get_user_model

    from sessions_redis.backend import SessionStore

    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    user = await get_user_model().objects.aget(username="ada")
    user.set_password("a new one")
    await user.asave()
    comm = communicator("t-password", cookie)
    ok, _ = await comm.connect()
    assert ok and await close_code(comm) == 4401
    assert not await SessionStore().aexists(cookie)  # flushed, as Channels' get_user does


async def test_a_lookup_failing_on_a_dropped_connection_is_tried_once_more(monkeypatch):
    """A database restart breaks the kept connection: the connections are closed and the
    lookup runs again (the test database is in memory, where Django ignores a close, so
    the failure is simulated); a second failure is the database's and propagates."""
    from django.db import OperationalError

    from sessions_redis import websocket

    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    checked, failures = websocket._checked_user, []

    def failing_once(session):
        if not failures:
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return checked(session)

    monkeypatch.setattr(websocket, "_checked_user", failing_once)
    comm, history = await connected("t-dropped", cookie)
    assert history["type"] == "history" and failures == [1]
    await comm.disconnect()

    def failing(session):
        raise OperationalError("the database is down")

    monkeypatch.setattr(websocket, "_checked_user", failing)
    from sessions_redis.backend import SessionStore

    session = SessionStore(cookie)
    await session.aload()
    with pytest.raises(OperationalError):
        _on_lookup_thread(lambda: websocket.session_user(session))


async def test_a_kept_connection_is_closed_after_its_time_and_the_next_one_kept(monkeypatch):
    """Past its time the kept connection is closed (Django's own age check) before the
    lookup; the one the lookup opens gets :data:`KEEP_CONNECTION_SECONDS` from then."""
    import time

    from django.db import connections

    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    comm, _ = await connected("t-age-0", cookie)
    await comm.disconnect()
    closed = _closes_on_lookup_thread(monkeypatch)
    _on_lookup_thread(lambda: setattr(connections["default"], "close_at", time.monotonic() + 60))
    comm, _ = await connected("t-age-1", cookie)  # within its time: not closed
    await comm.disconnect()
    assert closed == []
    _on_lookup_thread(lambda: setattr(connections["default"], "close_at", time.monotonic() - 1))
    comm, _ = await connected("t-age-2", cookie)
    await comm.disconnect()
    assert closed == ["default"]
    assert _on_lookup_thread(lambda: connections["default"].close_at) > time.monotonic() + 50


def test_a_worker_stopping_closes_the_kept_connection(monkeypatch):
    from sessions_redis import websocket

    closed = _closes_on_lookup_thread(monkeypatch)
    websocket.close_connections()
    assert "default" in closed


async def test_a_session_made_before_a_secret_key_rotation_still_opens_sockets():
    """``SECRET_KEY_FALLBACKS``: the session's hash, made with the old key, is accepted
    (the next page cycles it, as Django does); one made with neither key is not."""
    from django.contrib.auth import HASH_SESSION_KEY

    from sessions_redis.backend import SessionStore

    old_key = settings.SECRET_KEY
    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    with override_settings(SECRET_KEY="a-new-key-" + "x" * 50, SECRET_KEY_FALLBACKS=[old_key]):
        comm, history = await connected("t-rotated", cookie)
        assert history["type"] == "history"
        await comm.disconnect()
    session = SessionStore(cookie)
    await session.aset(HASH_SESSION_KEY, "0" * 64)
    await session.asave()
    comm = communicator("t-forged-hash", cookie)
    ok, _ = await comm.connect()
    assert ok and await close_code(comm) == 4401


async def test_a_new_chat_opens_without_reading_back_a_history(monkeypatch):
    """The claim just found no checkpoints: the socket's ``history`` is empty without
    another read; a chat that has some reads them back as always."""
    from chat import history

    client = await signed_in_client("ada@example.com")
    cookie = session_cookie(client)
    comm, _ = await connected("t-new-chat", cookie)
    await comm.send_json_to({"type": "message", "message": "first words"})
    await receive_until(comm, "done", wait=30)
    await comm.disconnect()

    reads = []
    real = history.get_history

    async def counted(thread_id):
        reads.append(thread_id)
        return await real(thread_id)

    monkeypatch.setattr(history, "get_history", counted)
    comm, fresh = await connected("t-new-chat-2", cookie)
    assert fresh["messages"] == [] and fresh["approvals"] == [] and reads == []
    await comm.disconnect()
    comm, again = await connected("t-new-chat", cookie)
    assert reads == ["t-new-chat"]
    assert [m["content"] for m in again["messages"] if m["role"] == "user"] == ["first words"]
    await comm.disconnect()


# --- the hot path: no aclose_old_connections() per forwarded event ---


async def test_events_are_forwarded_without_closing_old_db_connections(monkeypatch):
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("s-hot", session_cookie(client))
    calls = []

    async def counting() -> None:
        calls.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counting)
    for n in range(5):
        await events.publish("s-hot", {"type": "token", "text": f"w{n} "})
    got = [(await receive(comm))["text"] for _ in range(5)]
    assert got == [f"w{n} " for n in range(5)]
    await comm.send_json_to({"type": "nonsense"})
    assert (await receive(comm))["type"] == "error"  # frames still reach their handlers
    assert calls == []
    await comm.disconnect()


async def test_a_published_event_reaches_the_socket_and_the_stream_with_one_id():
    """One script call appends and fans out: the tab and a resuming reader (SSE) get
    the same event under the same stream id."""
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("s-one", session_cookie(client))
    published = await events.publish("s-one", {"type": "tool", "message_id": "m", "x": [1, "é"]})
    got = await receive(comm)
    assert got == published and got["id"]
    assert await events.read_since("s-one", "0-0") == [got]
    await comm.disconnect()


async def test_a_message_resent_with_its_id_makes_one_turn(sessions_redis):
    """The page resends an unacknowledged message after a reconnect: one turn, one answer."""
    client = await signed_in_client("ada@example.com")
    socket, _ = await connected("w-resend", session_cookie(client))
    frame = {"type": "message", "message": "hello", "id": "client-msg-1"}
    await socket.send_json_to(frame)
    seen = await receive_until(socket, "done")
    assert seen[0] == {**seen[0], "type": "user", "message_id": "client-msg-1"}
    await socket.send_json_to(frame)  # the same message again
    await receive_until(socket, "done")
    messages = (await client.get("/api/threads/w-resend")).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    await socket.disconnect()
