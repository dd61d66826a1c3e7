"""``manage.py prune_checkpoints``: idle conversations go, live ones stay (real Redis db 0/1)."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agenticpal import redis_keys as keys
from chat import admin_service, threads
from tests.test_admin_conversations import chat, start_thread

DAY_MS = 86_400_000


def age(checkpoints_redis, thread_id: str, days: float) -> None:
    """Pretend ``thread_id`` was last active ``days`` ago (its score in the thread index)."""
    when = int(time.time() * 1000 - days * DAY_MS)
    assert checkpoints_redis.zadd(keys.CHECKPOINT_THREAD_INDEX_KEY, {thread_id: when}, xx=True) == 0
    assert checkpoints_redis.zscore(keys.CHECKPOINT_THREAD_INDEX_KEY, thread_id) == when


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_checkpoints", *args, stdout=out)
    return out.getvalue()


def checkpoints_of(thread_id: str) -> int:
    return admin_service.saver().thread_stats(thread_id).checkpoints


@pytest.fixture
def threads_old_and_new(checkpoints_redis):
    start_thread("ann@example.com", "t-old", "My name is Ann", "Hello again")
    start_thread("bob@example.com", "t-older", "Hi")
    start_thread("ann@example.com", "t-new", "Hi")
    age(checkpoints_redis, "t-old", 40)
    age(checkpoints_redis, "t-older", 90)
    return checkpoints_redis


def test_dry_run_prints_and_removes_nothing(threads_old_and_new):
    before = {t: checkpoints_of(t) for t in ("t-old", "t-older", "t-new")}
    out = prune("--older-than", "30d", "--dry-run")
    assert "would delete t-older (owner bob@example.com" in out
    assert "would delete t-old (owner ann@example.com" in out
    assert out.index("t-older") < out.index("t-old ")  # oldest first
    assert "t-new" not in out
    assert "2 thread(s) would be deleted" in out
    assert {t: checkpoints_of(t) for t in before} == before


def test_delete_idle_threads(threads_old_and_new):
    removed = checkpoints_of("t-old") + checkpoints_of("t-older")
    out = prune("--older-than", "30d")
    assert f"2 thread(s) deleted, {removed} checkpoint(s) removed" in out
    assert checkpoints_of("t-old") == checkpoints_of("t-older") == 0
    assert checkpoints_of("t-new") > 0
    cp = admin_service.saver()
    assert [i.thread_id for i in cp.list_threads()] == ["t-new"]
    assert threads.owner_of("t-old") is None and threads.threads_for("ann@example.com") == ["t-new"]
    assert "0 thread(s) deleted" in prune("--older-than", "30d")  # idempotent


def test_older_than_is_respected(threads_old_and_new):
    out = prune("--older-than", "60d")
    assert "t-older" in out and "t-old " not in out
    assert checkpoints_of("t-old") > 0 and checkpoints_of("t-older") == 0


def test_keep_latest_trims_history_and_the_chat_goes_on(threads_old_and_new):
    before = checkpoints_of("t-old")
    out = prune("--older-than", "30d", "--keep-latest")
    assert "trim t-old (owner ann@example.com" in out and f"{before - 1} checkpoint(s)" in out
    assert checkpoints_of("t-old") == 1 and checkpoints_of("t-older") == 1
    detail = admin_service.conversation_detail("t-old")
    assert [m.text for m in detail.history[0].messages if m.role == "user"] == [
        "My name is Ann",
        "Hello again",
    ]
    (reply,) = chat("t-old", "What is my name?")
    assert "Ann" in reply
    again = prune("--older-than", "30d", "--keep-latest")  # t-old is active, t-older trimmed
    assert "0 thread(s) trimmed" in again and "; 0 skipped" in again


def test_live_threads_are_skipped(threads_old_and_new, sessions_redis):
    sessions_redis.set(keys.run_lock_key("t-old"), "worker-1", px=5000)
    sessions_redis.rpush(keys.pending_message_key("t-older"), "queued")
    out = prune("--older-than", "30d")
    assert "skipped t-old (owner ann@example.com" in out and "a reply is being generated" in out
    assert "skipped t-older" in out and "a message is waiting" in out
    assert "0 thread(s) deleted" in out and "2 skipped" in out
    assert checkpoints_of("t-old") > 0 and checkpoints_of("t-older") > 0


def test_a_thread_that_becomes_active_during_the_run_is_left_alone(threads_old_and_new):
    results = admin_service.prune(timedelta(days=30))
    first = next(results)
    assert first.thread_id == "t-older" and not first.skipped
    chat("t-old", "I am back")  # the owner writes while the prune is under way
    second = next(results)
    assert second.thread_id == "t-old" and second.skipped == "active again"
    assert list(results) == []
    assert checkpoints_of("t-old") > 0


@pytest.mark.parametrize("bad", ["30", "d", "30 days", "-1d", "1.5d", ""])
def test_bad_age_is_a_clear_error(bad):
    with pytest.raises(CommandError, match=r"--older-than: .* e\.g\. 30d"):
        prune(f"--older-than={bad}")


def test_redis_down_is_one_actionable_line(redis_factory):
    from tests.conftest import use_redis

    server = redis_factory()
    with use_redis(server):
        server.stop()
        with pytest.raises(CommandError, match="did not answer"):
            prune("--older-than", "30d")


def test_threads_that_expired_leave_the_index(checkpoints_redis, settings):
    """With CHECKPOINT_TTL_SECONDS, Redis drops idle conversations; prune tidies the index."""
    settings.CHECKPOINT_TTL_SECONDS = 60
    saver = admin_service.saver()
    assert saver.ttl == 60
    chat("t-expiring", "Hi")
    assert [i.thread_id for i in saver.list_threads()] == ["t-expiring"]
    for key in checkpoints_redis.scan_iter(match="*t-expiring*"):
        checkpoints_redis.delete(key)  # what the TTL does, without waiting a minute
    out = prune("--older-than", "30d")
    assert "1 expired thread(s) left the thread index" in out
    assert [i.thread_id for i in saver.list_threads()] == []


def test_keep_latest_with_a_count_keeps_that_many(threads_old_and_new):
    before, new_before = checkpoints_of("t-old"), checkpoints_of("t-new")
    assert before > 5
    out = prune("--older-than", "30d", "--keep-latest", "5", "--dry-run")
    assert "would trim t-old (owner ann@example.com" in out and "kept the latest 5" in out
    assert checkpoints_of("t-old") == before
    out = prune("--older-than", "30d", "--keep-latest", "5")
    assert f"{before - 5} checkpoint(s), kept the latest 5" in out
    assert checkpoints_of("t-old") == 5 and checkpoints_of("t-older") == 3
    assert checkpoints_of("t-new") == new_before  # not idle: untouched
    detail = admin_service.conversation_detail("t-old")
    assert len(detail.history) == 5
    oldest = [m.text for m in detail.history[-1].messages if m.role == "user"]
    assert oldest[0] == "My name is Ann"  # the oldest kept checkpoint is whole
    (reply,) = chat("t-old", "What is my name?")
    assert "Ann" in reply


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_keep_latest_count_must_be_positive(bad):
    with pytest.raises(CommandError, match="keep-latest"):
        prune("--older-than", "30d", "--keep-latest", bad)


def test_the_setting_trims_every_thread_when_the_flag_is_absent(threads_old_and_new, settings):
    settings.CHECKPOINT_KEEP_LATEST = 2
    chat("t-new", "Hello again", "And again")
    new_before = checkpoints_of("t-new")
    out = prune("--older-than", "30d", "--dry-run")
    assert "2 thread(s) would be deleted" in out
    assert "CHECKPOINT_KEEP_LATEST=2: trimming every thread to its latest 2" in out
    assert "would trim t-new (owner ann@example.com" in out and "would trim t-old" not in out
    assert checkpoints_of("t-new") == new_before

    out = prune("--older-than", "30d")
    assert "2 thread(s) deleted" in out  # idle threads still go as before
    assert "trim t-new (owner ann@example.com, last active" in out
    assert f"{new_before - 2} checkpoint(s), kept the latest 2" in out
    assert "CHECKPOINT_KEEP_LATEST=2: 1 thread(s) trimmed to their latest 2" in out
    assert checkpoints_of("t-new") == 2
    assert checkpoints_of("t-old") == checkpoints_of("t-older") == 0
    detail = admin_service.conversation_detail("t-new")
    assert [m.text for m in detail.history[-1].messages if m.role == "user"] == [
        "Hi",
        "Hello again",
        "And again",
    ]
    again = prune("--older-than", "30d")
    assert "CHECKPOINT_KEEP_LATEST=2: 0 thread(s) trimmed" in again


def test_the_flag_wins_over_the_setting(threads_old_and_new, settings):
    settings.CHECKPOINT_KEEP_LATEST = 2
    new_before = checkpoints_of("t-new")
    out = prune("--older-than", "30d", "--keep-latest", "4")
    assert "CHECKPOINT_KEEP_LATEST" not in out
    assert checkpoints_of("t-old") == 4 and checkpoints_of("t-new") == new_before


def test_without_the_setting_nothing_else_is_trimmed(threads_old_and_new, settings):
    settings.CHECKPOINT_KEEP_LATEST = None
    new_before = checkpoints_of("t-new")
    out = prune("--older-than", "30d")
    assert "CHECKPOINT_KEEP_LATEST" not in out
    assert checkpoints_of("t-new") == new_before


def test_a_busy_thread_is_not_trimmed_by_the_setting(threads_old_and_new, settings):
    settings.CHECKPOINT_KEEP_LATEST = 1
    from agenticpal.redis_clients import get_client

    get_client("sessions").set(keys.run_lock_key("t-new"), "worker-1", px=5000)
    before = checkpoints_of("t-new")
    out = prune("--older-than", "30d")
    assert "skipped t-new (owner ann@example.com" in out and "a reply is being generated" in out
    assert checkpoints_of("t-new") == before
