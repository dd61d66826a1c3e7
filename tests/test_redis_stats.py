"""``manage.py redis_stats``: counts per prefix (SCAN), session TTLs, memory,
persistence and eviction warnings, read from a real server."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agenticpal import redis_keys as keys
from sessions_redis.backend import SessionStore


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("redis_stats", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def populated(sessions_redis, checkpoints_redis):
    for ttl in (600, 7200, 2 * 86400, None):
        session = SessionStore()
        session["k"] = "v"
        if ttl:
            session.set_expiry(ttl)
        session.save()
    sessions_redis.set(keys.oauth_state_key("s1"), "x", ex=600)
    sessions_redis.set(keys.credentials_key("a@example.com"), "x" * 1000)
    sessions_redis.set("somebody-elses-key", "x")
    checkpoints_redis.hset(keys.checkpoint_thread_key("t1", "cp"), mapping={"a": "b"})
    checkpoints_redis.set(keys.CHECKPOINT_THREAD_INDEX_KEY, "x")
    yield
    sessions_redis.config_set("maxmemory-policy", "noeviction")
    sessions_redis.config_set("maxmemory", 0)


def test_counts_per_prefix_ttl_buckets_memory_and_persistence(populated, sessions_redis):
    report = json.loads(run("--json")[0])
    sessions, checkpoints = report["dbs"]
    assert sessions["purpose"] == "sessions" and sessions["keys"] == 7
    assert sessions["prefixes"][keys.SESSION_PREFIX]["keys"] == 4
    assert sessions["prefixes"][keys.OAUTH_STATE_PREFIX]["keys"] == 1
    assert sessions["prefixes"][keys.CREDENTIALS_PREFIX]["bytes"] > 1000
    assert sessions["prefixes"]["(other)"]["keys"] == 1
    assert checkpoints["prefixes"][keys.CHECKPOINT_PREFIX]["keys"] == 2
    assert checkpoints["bytes"] > 0
    assert report["session_ttls"] == {
        "< 1 hour": 1,
        "1 hour - 1 day": 1,
        "1 - 3 days": 1,
        "3 - 7 days": 1,
    }
    [server] = report["servers"]  # db 0 and db 1 share the test server
    assert server["used_memory"] > 0
    assert server["maxmemory_policy"] == "noeviction"
    assert server["aof_enabled"] is False and server["rdb_save"] == ""
    # The test server persists nothing: that is worth a warning.
    assert len(report["warnings"]) == 1 and "persists nothing" in report["warnings"][0]


def test_text_report(populated):
    out, err = run()
    assert "sessions (redis://127.0.0.1:" in out
    assert "session:*" in out and "checkpoint:*" in out
    assert "sessions by remaining TTL:" in out and "maxmemory-policy   noeviction" in out
    assert err.startswith("WARNING: ") and "persists nothing" in err


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_allkeys_policies_warn_about_sessions_and_checkpoints(populated, sessions_redis, policy):
    sessions_redis.config_set("maxmemory", 512 * 1024 * 1024)
    sessions_redis.config_set("maxmemory-policy", policy)
    _, err = run()
    assert f"maxmemory-policy {policy}" in err
    assert "sessions and checkpoints" in err and "maxmemory is 512.0 MiB" in err


def test_volatile_policy_warns_about_sessions_with_a_ttl(populated, sessions_redis):
    sessions_redis.config_set("maxmemory-policy", "volatile-lru")
    _, err = run()
    assert "can evict live sessions (4 carry a TTL" in err
    assert "maxmemory is 0" in err


def test_volatile_policy_without_sessions_is_quiet(sessions_redis):
    sessions_redis.config_set("maxmemory-policy", "volatile-ttl")
    sessions_redis.config_set("appendonly", "yes")
    try:
        _, err = run()
    finally:
        sessions_redis.config_set("maxmemory-policy", "noeviction")
        sessions_redis.config_set("appendonly", "no")
    assert err == ""


def test_redis_down_is_a_clear_error(redis_factory, settings):
    from tests.conftest import redis_settings

    server = redis_factory()
    settings.REDIS = redis_settings(server.url)["REDIS"]
    server.stop()
    with pytest.raises(CommandError, match=r"did not answer.*make redis"):
        run()
