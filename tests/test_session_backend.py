"""The Django SessionStore: SessionBase's contract, sync and async, on a real Redis."""

import json
import logging
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.test import override_settings
from django.utils import timezone

from agenticpal import redis_keys as keys
from sessions_redis import store
from sessions_redis.backend import SessionStore


def stored(sessions_redis, session_key):
    raw = sessions_redis.get(keys.session_key(session_key))
    return None if raw is None else json.loads(raw)


def test_save_writes_the_seed_record_with_django_data_nested(sessions_redis):
    session = SessionStore()
    session["cart"] = [1, 2]
    session.save()
    assert len(session.session_key) == 43
    data = stored(sessions_redis, session.session_key)
    assert data["session_id"] == session.session_key
    assert data["django"] == {"cart": [1, 2]}
    assert data["user_email"] is None and data["thread_ids"] == [] and data["credentials"] is None
    assert 604790 < sessions_redis.ttl(keys.session_key(session.session_key)) <= 604800


def test_load_exists_delete(sessions_redis):
    session = SessionStore()
    session["a"] = 1
    session.save()
    again = SessionStore(session.session_key)
    assert again["a"] == 1
    assert again.exists(session.session_key)
    again.delete()
    assert not session.exists(session.session_key)
    assert stored(sessions_redis, session.session_key) is None


async def test_async_twins(sessions_redis):
    session = SessionStore()
    await session.aset("a", 1)
    await session.asave()
    key = session.session_key
    again = SessionStore(key)
    assert await again.aget("a") == 1
    assert await again.aexists(key)
    await again.aset("b", 2)
    await again.asave()
    assert stored(sessions_redis, key)["django"] == {"a": 1, "b": 2}
    await again.acycle_key()
    assert again.session_key != key and not await again.aexists(key)
    assert stored(sessions_redis, again.session_key)["django"] == {"a": 1, "b": 2}
    await again.adelete()
    assert not await again.aexists(again.session_key)


def test_missing_session_loads_empty_and_gets_a_new_key():
    missing = "A" * 43
    session = SessionStore(missing)
    assert session.load() == {}
    assert session.session_key is None
    session["x"] = 1
    session.save()
    assert session.session_key not in (None, missing)


def test_must_create_never_overwrites(sessions_redis):
    first = SessionStore()
    first["owner"] = "first"
    first.save()
    intruder = SessionStore()
    intruder._session_key = first.session_key
    intruder["owner"] = "intruder"
    with pytest.raises(CreateError):
        intruder.save(must_create=True)
    assert stored(sessions_redis, first.session_key)["django"] == {"owner": "first"}


def test_save_of_a_session_deleted_meanwhile_raises_update_error():
    session = SessionStore()
    session["a"] = 1
    session.save()
    other = SessionStore(session.session_key)
    assert other["a"] == 1
    session.delete()
    other["a"] = 2
    with pytest.raises(UpdateError):
        other.save()


def test_cycle_key_keeps_data_and_drops_the_old_key(sessions_redis):
    session = SessionStore()
    session["a"] = 1
    session.save()
    old = session.session_key
    session.cycle_key()
    assert session.session_key != old
    assert stored(sessions_redis, old) is None
    assert stored(sessions_redis, session.session_key)["django"] == {"a": 1}


def test_set_expiry_seconds_is_the_redis_ttl_and_slides(sessions_redis):
    session = SessionStore()
    session.set_expiry(300)
    session.save()
    key = keys.session_key(session.session_key)
    assert 290 < sessions_redis.ttl(key) <= 300
    sessions_redis.expire(key, 10)
    SessionStore(session.session_key).load()
    assert 290 < sessions_redis.ttl(key) <= 300


def test_set_expiry_date_is_absolute_and_not_renewed_by_reads(sessions_redis):
    session = SessionStore()
    session.set_expiry(timezone.now() + timedelta(seconds=120))
    session.save()
    key = keys.session_key(session.session_key)
    assert 110 < sessions_redis.ttl(key) <= 120
    sessions_redis.expire(key, 50)
    again = SessionStore(session.session_key)
    again.load()
    assert 40 < sessions_redis.ttl(key) <= 50


@override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=True)
def test_expire_at_browser_close_keeps_the_default_ttl_in_redis(sessions_redis):
    session = SessionStore()
    session["a"] = 1
    session.save()
    assert session.get_expire_at_browser_close()
    assert sessions_redis.ttl(keys.session_key(session.session_key)) > 600000


@override_settings(SESSION_TTL_SECONDS=1234)
def test_default_ttl_is_session_ttl_seconds(sessions_redis):
    session = SessionStore()
    session["a"] = 1
    session.save()
    assert 1224 < sessions_redis.ttl(keys.session_key(session.session_key)) <= 1234
    sessions_redis.expire(keys.session_key(session.session_key), 5)
    SessionStore(session.session_key).load()
    assert sessions_redis.ttl(keys.session_key(session.session_key)) > 1224


@pytest.mark.parametrize("cookie", ["short", "x" * 44, "a" * 42 + "!", "../" * 15])
def test_malformed_cookie_gives_a_fresh_session_and_a_security_log(cookie, caplog):
    with caplog.at_level(logging.WARNING, logger="django.security.SuspiciousSession"):
        session = SessionStore(cookie)
    assert session.session_key is None
    assert session.load() == {}
    assert any("Malformed session cookie" in r.message for r in caplog.records)


def test_flush_starts_an_anonymous_record(sessions_redis):
    session = SessionStore()
    session.set_user_email("a@example.com")
    session["a"] = 1
    session.save()
    old = session.session_key
    session.flush()
    session["b"] = 2
    session.save()
    assert stored(sessions_redis, old) is None
    assert stored(sessions_redis, session.session_key)["user_email"] is None
    assert sessions_redis.smembers(keys.user_sessions_key("a@example.com")) == set()


def test_clear_expired_prunes_the_user_index(sessions_redis):
    session = SessionStore()
    session.set_user_email("a@example.com")
    session.save()
    index = keys.user_sessions_key("a@example.com")
    sessions_redis.sadd(index, "gone" * 10)
    SessionStore.clear_expired()
    assert sessions_redis.smembers(index) == {session.session_key.encode()}


async def test_aclear_expired_prunes_the_user_index(sessions_redis):
    index = keys.user_sessions_key("a@example.com")
    sessions_redis.sadd(index, "gone" * 10)
    await SessionStore.aclear_expired()
    assert sessions_redis.exists(index) == 0


def test_well_formed_unknown_key_gives_a_fresh_session_and_a_security_log(sessions_redis, caplog):
    forged = "F" * 43
    with caplog.at_level(logging.INFO, logger="django.security.SuspiciousSession"):
        session = SessionStore(forged)
        assert session.load() == {}
    assert session.session_key is None
    assert any("no stored session" in r.message for r in caplog.records)
    session["a"] = 1
    session.save()
    assert session.session_key != forged
    assert stored(sessions_redis, forged) is None


@pytest.mark.parametrize(
    "value",
    [
        b"{not json",
        b'"just a string"',
        b'{"session_id": "x", "django": {"_auth_user_id": "1"}}',
        b'{"session_id": "x", "user_email": 1, "created_at": "", "last_accessed": "",'
        b' "credentials": null, "thread_ids": "t1"}',
    ],
)
@pytest.mark.parametrize("use_async", [False, True])
async def test_hand_edited_record_reads_as_no_session_and_is_logged(
    sessions_redis, caplog, value, use_async
):
    key = "E" * 43
    sessions_redis.set(keys.session_key(key), value, ex=100)
    session = SessionStore(key)
    with caplog.at_level(logging.WARNING, logger="sessions_redis"):
        data = await session.aload() if use_async else session.load()
    assert data == {}
    assert session.session_key is None
    assert any("unreadable" in r.message for r in caplog.records)
    # The broken record is left for an operator to look at; a save makes a new session.
    session["a"] = 1
    if use_async:
        await session.asave()
    else:
        session.save()
    assert session.session_key != key
    assert sessions_redis.exists(keys.session_key(key))


def test_unknown_fields_survive_a_django_save(sessions_redis):
    session = SessionStore()
    session["a"] = 1
    session.save()
    raw = stored(sessions_redis, session.session_key)
    raw["added_by_v2"] = {"x": [1, 2]}
    sessions_redis.set(keys.session_key(session.session_key), json.dumps(raw), keepttl=True)
    again = SessionStore(session.session_key)
    again["a"] = 2
    again.save()
    data = stored(sessions_redis, session.session_key)
    assert data["added_by_v2"] == {"x": [1, 2]} and data["django"] == {"a": 2}


async def test_async_round_trip_of_a_large_non_ascii_session(sessions_redis):
    session = SessionStore()
    await session.aset("notes", "é" * 100_000)  # beyond redis-py's 6000-byte packing cutoff
    await session.aset("n", 1.5)
    await session.asave()
    again = SessionStore(session.session_key)
    assert await again.aget("notes") == "é" * 100_000
    assert await again.aget("n") == 1.5
    assert stored(sessions_redis, session.session_key)["django"]["n"] == 1.5


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_key_of_another_type_reads_as_no_session_and_is_logged(
    sessions_redis, caplog, use_async
):
    """A hash (or list...) at ``session:<id>`` is no session, not a WRONGTYPE 500."""
    key = "W" * 43
    sessions_redis.hset(keys.session_key(key), "django", "{}")
    session = SessionStore(key)
    with caplog.at_level(logging.WARNING, logger="sessions_redis"):
        data = await session.aload() if use_async else session.load()
    assert data == {}
    assert session.session_key is None
    [line] = [r.getMessage() for r in caplog.records if "not a string" in r.getMessage()]
    assert "WWWWWWWWWW…" in line and key not in line  # the id, redacted to its prefix
    session["a"] = 1
    if use_async:
        await session.asave()
    else:
        session.save()
    assert session.session_key != key
    assert sessions_redis.type(keys.session_key(key)) == b"hash"  # left for an operator
    # The thread-list update of that id is refused the same way.
    assert not store.add_thread_id(key, "t1")
    assert not await store.aadd_thread_id(key, "t1")


def test_log_lines_name_a_session_by_its_prefix_only(sessions_redis, caplog):
    key = "U" * 43
    sessions_redis.set(keys.session_key(key), b"{not json", ex=100)
    with caplog.at_level(logging.WARNING, logger="sessions_redis"):
        SessionStore(key).load()
        assert store.update(key, lambda record: None) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("UUUUUUUUUU…" in m for m in messages)
    assert not any(key in m for m in messages)


@pytest.mark.django_db
def test_a_cookie_naming_a_key_of_another_type_gets_a_page_not_a_500(client, sessions_redis):
    key = "H" * 43
    sessions_redis.hset(keys.session_key(key), "x", "1")
    client.cookies["sessionid"] = key
    for url in ("/", "/login/"):
        assert client.get(url).status_code in (200, 302)
