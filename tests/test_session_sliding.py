"""Sliding expiry: every read renews the TTL and keeps ``last_accessed`` fresh, in ONE
Redis round trip per read request (counted with MONITOR on the test server)."""

import json
import uuid

import pytest
from django.http import JsonResponse
from django.test import override_settings
from django.urls import path

from agenticpal import redis_keys as keys
from sessions_redis.backend import SessionStore


def write_view(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"]})


def read_view(request):
    return JsonResponse({"visits": request.session.get("visits")})


urlpatterns = [path("write", write_view), path("read", read_view)]


def commands_sent_during(client, action) -> list[str]:
    """Every command clients sent to Redis while ``action`` ran (not those run by Lua)."""
    marker = f"end-{uuid.uuid4()}"
    commands = []
    # Two idle pooled connections: MONITOR takes one, the request the other, so no
    # connection handshake (HELLO, PING) lands inside the measured window.
    pool = client.connection_pool
    warm = [pool.get_connection(), pool.get_connection()]
    for connection in warm:
        pool.release(connection)
    with client.monitor() as monitor:
        action()
        client.echo(marker)
        while True:
            entry = monitor.next_command()
            if marker in entry["command"]:
                return commands
            if entry["client_type"] != "lua":
                commands.append(entry["command"])


@pytest.mark.urls(__name__)
def test_a_read_request_is_one_round_trip(client, sessions_redis):
    assert client.get("/write").json() == {"visits": 1}
    client.get("/read")  # the server has now seen the script once (EVALSHA hits)
    commands = commands_sent_during(sessions_redis, lambda: client.get("/read"))
    assert len(commands) == 1, commands
    assert commands[0].startswith("EVALSHA")


@pytest.mark.urls(__name__)
def test_a_write_request_is_two_round_trips(client, sessions_redis):
    client.get("/write")
    commands = commands_sent_during(sessions_redis, lambda: client.get("/write"))
    assert [c.split()[0] for c in commands] == ["EVALSHA", "EVALSHA"], commands


@pytest.mark.urls(__name__)
def test_ttl_grows_back_after_a_request(client, sessions_redis):
    client.get("/write")
    key = keys.session_key(client.cookies["sessionid"].value)
    sessions_redis.expire(key, 100)
    assert client.get("/read").json() == {"visits": 1}
    assert 604790 < sessions_redis.ttl(key) <= 604800


def _age_last_accessed(sessions_redis, key, value="2020-01-01T00:00:00Z"):
    data = json.loads(sessions_redis.get(key))
    data["last_accessed"] = value
    sessions_redis.set(key, json.dumps(data), keepttl=True)
    return data


def test_stale_last_accessed_is_refreshed_on_read(sessions_redis):
    session = SessionStore()
    session["a"] = 1
    session.save()
    key = keys.session_key(session.session_key)
    before = _age_last_accessed(sessions_redis, key)
    SessionStore(session.session_key).load()
    after = json.loads(sessions_redis.get(key))
    assert after["last_accessed"] > "2026-01-01T00:00:00Z"
    assert after["last_accessed"].endswith("Z")
    assert {k: v for k, v in after.items() if k != "last_accessed"} == {
        k: v for k, v in before.items() if k != "last_accessed"
    }


def test_fresh_last_accessed_is_not_rewritten(sessions_redis):
    session = SessionStore()
    session.save()
    key = keys.session_key(session.session_key)
    # Within the resolution: the stored value is left alone (no rewrite per request).
    sessions_redis.set(key, sessions_redis.get(key).replace(b'"django":{}', b'"django":{} '))
    raw = sessions_redis.get(key)
    SessionStore(session.session_key).load()
    assert sessions_redis.get(key) == raw


@override_settings(SESSION_LAST_ACCESSED_RESOLUTION=0)
def test_resolution_zero_refreshes_every_second(sessions_redis):
    session = SessionStore()
    session.save()
    key = keys.session_key(session.session_key)
    _age_last_accessed(sessions_redis, key, "2026-01-01T00:00:00Z")
    SessionStore(session.session_key).load()
    assert json.loads(sessions_redis.get(key))["last_accessed"] > "2026-01-01T00:00:00Z"


def test_record_from_the_seed_code_with_spaces_is_refreshed_too(sessions_redis):
    session_id = "s" * 43
    key = keys.session_key(session_id)
    seed = {
        "session_id": session_id,
        "user_email": "a@example.com",
        "created_at": "2020-01-01T00:00:00Z",
        "last_accessed": "2020-01-01T00:00:00Z",
        "credentials": None,
        "thread_ids": [],
    }
    sessions_redis.set(key, json.dumps(seed), ex=100)
    assert SessionStore(session_id).load() == {}
    after = json.loads(sessions_redis.get(key))
    assert after["last_accessed"] > "2026-01-01T00:00:00Z"
    assert after["created_at"] == "2020-01-01T00:00:00Z"
    assert sessions_redis.ttl(key) > 604000


async def test_an_async_read_is_one_round_trip(sessions_redis):
    session = SessionStore()
    session["a"] = 1
    await session.asave()
    assert await SessionStore(session.session_key).aget("a") == 1  # warms the async pool
    marker = f"end-{uuid.uuid4()}"
    with sessions_redis.monitor() as monitor:
        assert await SessionStore(session.session_key).aget("a") == 1
        # The marker goes over the async client: same connection order as the read.
        await SessionStore(session.session_key).aexists(marker)
        commands = []
        while marker not in (entry := monitor.next_command())["command"]:
            if entry["client_type"] != "lua":
                commands.append(entry["command"])
    assert [c.split()[0] for c in commands] == ["EVALSHA"], commands


@pytest.mark.urls(__name__)
def test_a_read_request_slides_the_cookie_too(client):
    client.get("/write")
    key = client.cookies["sessionid"].value
    response = client.get("/read")
    cookie = response.cookies["sessionid"]
    assert cookie.value == key
    assert int(cookie["max-age"]) == 604800


@pytest.mark.urls(__name__)
def test_no_cookie_for_a_request_that_never_touched_a_session(client):
    response = client.get("/read")
    assert "sessionid" not in response.cookies


@pytest.mark.urls(__name__)
@override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=True)
def test_expire_at_browser_close_cookie_has_no_max_age(client, sessions_redis):
    response = client.get("/write")
    assert response.cookies["sessionid"]["max-age"] == ""
    assert "sessionid" not in client.get("/read").cookies  # nothing to slide
    key = keys.session_key(client.cookies["sessionid"].value)
    assert sessions_redis.ttl(key) > 604000  # the server side still expires


@pytest.mark.urls(__name__)
def test_a_hand_edited_record_is_a_fresh_session_not_a_500(client, sessions_redis, caplog):
    client.get("/write")
    old = client.cookies["sessionid"].value
    sessions_redis.set(keys.session_key(old), b'{"session_id": "truncated', keepttl=True)
    response = client.get("/write")
    assert response.status_code == 200 and response.json() == {"visits": 1}
    assert client.cookies["sessionid"].value != old
    assert "unreadable" in caplog.text
