"""``manage.py sessions list|show|revoke`` against a real Redis db 0."""

from __future__ import annotations

from io import StringIO

import pytest
import responses
from django.core.management import CommandError, call_command

from agenticpal import redis_keys as keys
from sessions_redis import admin_service
from tests.test_admin_credentials import store_credentials
from tests.test_admin_sessions import seed_many, seed_session
from workspace.oauth import REVOKE_URI


def run(*args: str) -> str:
    out = StringIO()
    call_command("sessions", *args, stdout=out)
    return out.getvalue()


def test_list_empty_one_and_pages(sessions_redis):
    assert "0 session(s)" in run("list")
    session_id = seed_session(sessions_redis, thread_ids=["t1"])
    out = run("list")
    assert admin_service.short_id(session_id) in out and session_id not in out
    assert "ann@example.com" in out and "1 session(s)" in out

    seed_many(sessions_redis, 1000)
    out = run("list", "--limit", "100")
    assert "next page: manage.py sessions list --cursor" in out
    cursor = out.rsplit("--cursor ", 1)[1].split()[0]
    assert "session(s)" in run("list", "--cursor", cursor, "--limit", "100")


def test_list_one_user(sessions_redis):
    seed_many(sessions_redis, 200)
    mine = [seed_session(sessions_redis, "zed@example.com") for _ in range(2)]
    out = run("list", "--user", "zed@example.com")
    assert "2 session(s)" in out
    assert all(admin_service.short_id(s) in out for s in mine)


def test_show_by_prefix_redacts(sessions_redis):
    session_id = seed_session(
        sessions_redis,
        credentials={"token": "ya29.secret", "refresh_token": "1//secret", "scopes": ["gmail"]},
    )
    out = run("show", session_id[:12])
    assert "ann@example.com" in out and "gmail" in out
    assert "ya29.secret" not in out and "1//secret" not in out and session_id not in out
    assert "[redacted]" in out


def test_show_unknown_or_ambiguous_is_a_clear_error(sessions_redis):
    with pytest.raises(CommandError, match="No live session starts with"):
        run("show", "nothere")
    sessions_redis.set(keys.session_key("abcd1xxxxxxxx"), b"{}")
    sessions_redis.set(keys.session_key("abcd2xxxxxxxx"), b"{}")
    with pytest.raises(CommandError, match="matches 2 sessions"):
        run("show", "abcd")


def test_revoke_one_session(sessions_redis):
    session_id = seed_session(sessions_redis)
    other = seed_session(sessions_redis)
    assert "Deleted session" in run("revoke", session_id)
    assert not sessions_redis.exists(keys.session_key(session_id))
    assert sessions_redis.exists(keys.session_key(other))


def test_revoke_a_user_everywhere_keeps_their_google_grant(sessions_redis):
    mine = [seed_session(sessions_redis, "bob@example.com") for _ in range(3)]
    store_credentials("bob@example.com")
    out = run("revoke", "--user", "bob@example.com")
    assert "3 session(s) deleted" in out
    assert not any(sessions_redis.exists(keys.session_key(s)) for s in mine)
    assert sessions_redis.exists(keys.credentials_key("bob@example.com"))  # revoke_google ends it


@responses.activate
def test_revoke_google_revokes_the_grant_and_deletes_the_tokens(sessions_redis):
    responses.post(REVOKE_URI, status=200)
    store_credentials("bob@example.com")
    out = StringIO()
    call_command("revoke_google", "bob@example.com", stdout=out)
    assert "Google confirmed" in out.getvalue() and len(responses.calls) == 1
    assert not sessions_redis.exists(keys.credentials_key("bob@example.com"))


def test_redis_down_is_one_actionable_line(redis_factory):
    from tests.conftest import use_redis

    server = redis_factory()
    with use_redis(server):
        server.stop()
        with pytest.raises(CommandError, match="did not answer"):
            run("list")
