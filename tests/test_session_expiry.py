"""An expiry in the past ends the session at once (Django's contract): the save keeps no
record, a later load is empty; sync and async, for seconds and for dates."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.http import JsonResponse
from django.urls import path
from django.utils import timezone

from agenticpal import redis_keys as keys
from sessions_redis import store
from sessions_redis.backend import SessionStore


def _past(kind: str):
    return {
        "seconds": -10,
        "timedelta": -timedelta(seconds=10),  # set_expiry turns it into a past date
        "datetime": timezone.now() - timedelta(seconds=10),
    }[kind]


KINDS = ["seconds", "timedelta", "datetime"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_session_saved_with_a_past_expiry_keeps_no_record(sessions_redis, kind):
    session = SessionStore()
    session["foo"] = "bar"
    session.set_expiry(_past(kind))
    session.save()
    key = session.session_key
    assert sessions_redis.keys(f"{keys.SESSION_PREFIX}*") == []
    again = SessionStore(key)
    assert "foo" not in again
    assert again.load() == {}


@pytest.mark.parametrize("kind", KINDS)
def test_an_existing_session_given_a_past_expiry_is_deleted_on_save(sessions_redis, kind):
    session = SessionStore()
    session.set_user_email("ada@example.com")
    session["foo"] = "bar"
    session.save()
    key = session.session_key
    assert sessions_redis.exists(keys.session_key(key))

    same = SessionStore(key)
    assert same["foo"] == "bar"
    same.set_expiry(_past(kind))
    same.save()
    assert sessions_redis.exists(keys.session_key(key)) == 0
    assert sessions_redis.smembers(keys.user_sessions_key("ada@example.com")) == set()
    assert SessionStore(key).load() == {}
    assert store.sessions_for("ada@example.com") == []


@pytest.mark.parametrize("kind", KINDS)
async def test_async_past_expiry_is_gone_at_once(sessions_redis, kind):
    fresh = SessionStore()
    await fresh.aset("foo", "bar")
    await fresh.aset_expiry(_past(kind))
    await fresh.asave()
    assert sessions_redis.keys(f"{keys.SESSION_PREFIX}*") == []
    assert await SessionStore(fresh.session_key).aload() == {}

    existing = SessionStore()
    await existing.aset("foo", "bar")
    await existing.asave()
    key = existing.session_key
    same = SessionStore(key)
    assert await same.aget("foo") == "bar"
    await same.aset_expiry(_past(kind))
    await same.asave()
    assert sessions_redis.exists(keys.session_key(key)) == 0
    loaded = SessionStore(key)
    assert await loaded.aload() == {}
    assert loaded.session_key is None


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_stored_record_whose_expiry_passed_reads_as_no_session(sessions_redis, use_async):
    """Written by another path (or under another clock): the record's own expiry wins."""
    past_date = (timezone.now() - timedelta(seconds=5)).isoformat()
    for expiry in (past_date, -5):
        session = SessionStore()
        session["foo"] = "bar"
        session.save()
        redis_key = keys.session_key(session.session_key)
        record = json.loads(sessions_redis.get(redis_key))
        record["django"]["_session_expiry"] = expiry
        sessions_redis.set(redis_key, json.dumps(record), ex=3600)
        again = SessionStore(session.session_key)
        assert (await again.aload() if use_async else again.load()) == {}
        assert again.session_key is None
        if expiry == -5:  # the read script deletes it; a date expires by its own TTL
            assert sessions_redis.exists(redis_key) == 0


def test_a_future_expiry_still_works(sessions_redis):
    session = SessionStore()
    session["foo"] = "bar"
    session.set_expiry(timezone.now() + timedelta(seconds=60))
    session.save()
    assert SessionStore(session.session_key)["foo"] == "bar"
    session.set_expiry(0)  # "until the browser closes": not an expiry in the past
    session.save()
    assert SessionStore(session.session_key)["foo"] == "bar"


def start(request):
    request.session["foo"] = "bar"
    return JsonResponse({"ok": True})


def end_now(request):
    request.session.set_expiry(-10)
    return JsonResponse({"ok": True})


def read(request):
    return JsonResponse({"foo": request.session.get("foo")})


urlpatterns = [path("start", start), path("end-now", end_now), path("read", read)]


@pytest.mark.urls(__name__)
def test_through_the_middleware_the_cookie_and_the_record_go(client, sessions_redis):
    client.get("/start")
    key = client.cookies["sessionid"].value
    assert sessions_redis.exists(keys.session_key(key))
    response = client.get("/end-now")
    assert response.status_code == 200
    assert int(response.cookies["sessionid"]["max-age"]) <= 0  # the browser drops it
    assert sessions_redis.exists(keys.session_key(key)) == 0
    assert client.get("/read").json() == {"foo": None}
