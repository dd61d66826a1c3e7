"""``SessionManager``: the seed's async API, on the same records as Django's backend."""

import json

import pytest

from agenticpal import redis_keys as keys
from sessions_redis.backend import SessionStore
from sessions_redis.manager import SessionManager


async def test_ping_create_get_delete_disconnect(redis_server, sessions_redis):
    manager = SessionManager(redis_server.url)  # its own client, closed by disconnect()
    assert await manager.ping()
    session = await manager.create_session("a@example.com")
    assert len(session.session_id) == 43
    data = json.loads(sessions_redis.get(keys.session_key(session.session_id)))
    assert data["user_email"] == "a@example.com"
    assert list(data)[:6] == [
        "session_id",
        "user_email",
        "created_at",
        "last_accessed",
        "credentials",
        "thread_ids",
    ]
    assert 604790 < sessions_redis.ttl(keys.session_key(session.session_id)) <= 604800

    sessions_redis.expire(keys.session_key(session.session_id), 10)
    retrieved = await manager.get_session(session.session_id)
    assert retrieved.user_email == "a@example.com"
    assert sessions_redis.ttl(keys.session_key(session.session_id)) > 604790  # renewed

    assert await manager.delete_session(session.session_id)
    assert await manager.get_session(session.session_id) is None
    assert not await manager.delete_session(session.session_id)
    assert sessions_redis.smembers(keys.user_sessions_key("a@example.com")) == set()
    await manager.disconnect()
    await manager.disconnect()  # idempotent


async def test_ping_is_false_with_a_reason_when_redis_is_down(redis_factory):
    server = redis_factory()
    manager = SessionManager(server.url)
    assert await manager.ping()
    server.stop()
    assert not await manager.ping()
    assert manager.last_error is not None
    await manager.disconnect()


async def test_add_thread_list_sessions_and_delete_all_for(sessions_redis):
    manager = SessionManager()  # the project's client
    first = await manager.create_session("a@example.com")
    second = await manager.create_session("a@example.com")
    other = await manager.create_session("b@example.com")
    assert await manager.add_thread(first.session_id, "thread-1")
    assert await manager.add_thread(first.session_id, "thread-1")  # idempotent
    assert not await manager.add_thread("N" * 43, "thread-1")
    assert (await manager.get_session(first.session_id)).thread_ids == ["thread-1"]

    listed = await manager.list_sessions_for("a@example.com")
    assert {s.session_id for s in listed} == {first.session_id, second.session_id}
    assert await manager.delete_all_for("a@example.com") == 2
    assert await manager.list_sessions_for("a@example.com") == []
    assert await manager.get_session(other.session_id) is not None


async def test_list_sessions_for_prunes_expired_ids(sessions_redis):
    manager = SessionManager()
    live = await manager.create_session("a@example.com")
    gone = await manager.create_session("a@example.com")
    sessions_redis.delete(keys.session_key(gone.session_id))  # as if it expired
    assert [s.session_id for s in await manager.list_sessions_for("a@example.com")] == [
        live.session_id
    ]
    assert sessions_redis.smembers(keys.user_sessions_key("a@example.com")) == {
        live.session_id.encode()
    }


async def test_set_credentials(sessions_redis):
    manager = SessionManager()
    session = await manager.create_session("a@example.com")
    reference = {"ref": "credentials:a@example.com", "scopes": ["gmail"]}
    assert await manager.set_credentials(session.session_id, reference)
    assert (await manager.get_session(session.session_id)).credentials["scopes"] == ["gmail"]


@pytest.mark.parametrize("value", [b"{broken", b'{"session_id": "x"}'])
async def test_unreadable_record_is_no_session(sessions_redis, caplog, value):
    sessions_redis.set(keys.session_key("B" * 43), value)
    assert await SessionManager().get_session("B" * 43) is None
    assert "unreadable" in caplog.text


async def test_a_manager_session_is_a_django_session_and_back(sessions_redis):
    manager = SessionManager()
    session = await manager.create_session("a@example.com")
    django_side = SessionStore(session.session_id)
    await django_side.aset("k", "v")
    await django_side.asave()
    again = await manager.get_session(session.session_id)
    assert again.django == {"k": "v"} and again.user_email == "a@example.com"


async def test_a_session_record_refuses_raw_google_secrets():
    manager = SessionManager()
    with pytest.raises(ValueError, match="reference"):
        await manager.create_session("a@example.com", {"token": "ya29.x", "scopes": []})
    session = await manager.create_session("a@example.com")
    with pytest.raises(ValueError, match="refresh_token"):
        await manager.set_credentials(session.session_id, {"refresh_token": "1//x"})
    reference = {"ref": "credentials:a@example.com", "scopes": ["openid"]}
    assert await manager.set_credentials(session.session_id, reference)
    assert (await manager.get_session(session.session_id)).credentials == reference
