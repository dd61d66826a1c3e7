"""Signing in: the key cycles (no fixation), ``user_email`` and the per-user index are
written, and "sign out everywhere" deletes exactly that user's sessions."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.http import JsonResponse
from django.test import AsyncClient
from django.urls import path

from agenticpal import redis_keys as keys
from sessions_redis import store
from sessions_redis.manager import SessionManager


def whoami(request):
    request.session["seen"] = True
    return JsonResponse({"user": request.user.get_username() or None})


urlpatterns = [path("whoami", whoami)]
pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", "alice@example.com", "pw")


def record(sessions_redis, session_key):
    raw = sessions_redis.get(keys.session_key(session_key))
    return None if raw is None else json.loads(raw)


def test_login_cycles_the_key_and_records_the_email(client, alice, sessions_redis):
    client.get("/whoami")
    anonymous_key = client.cookies["sessionid"].value
    client.force_login(alice)
    key = client.cookies["sessionid"].value
    assert key != anonymous_key
    assert record(sessions_redis, anonymous_key) is None
    data = record(sessions_redis, key)
    assert data["user_email"] == "alice@example.com"
    assert data["django"]["_auth_user_id"] == str(alice.pk)
    assert sessions_redis.smembers(keys.user_sessions_key("alice@example.com")) == {key.encode()}
    assert client.get("/whoami").json() == {"user": "alice"}


def test_logout_removes_the_session_from_the_index(client, alice, sessions_redis):
    client.force_login(alice)
    client.logout()
    assert sessions_redis.exists(keys.user_sessions_key("alice@example.com")) == 0


# transaction=True: the async ORM runs in a worker thread, and with the default
# transactional test case the test's open transaction would lock SQLite's tables there.
@pytest.mark.django_db(transaction=True)
async def test_sign_out_everywhere_costs_only_that_users_sessions(alice, sessions_redis):
    bob = await get_user_model().objects.acreate_user("bob", "bob@example.com", "pw")
    alice_tabs = [AsyncClient(), AsyncClient(), AsyncClient()]
    for browser in alice_tabs:
        await browser.aforce_login(alice)
    bob_browser = AsyncClient()
    await bob_browser.aforce_login(bob)
    manager = SessionManager()
    for i in range(50):  # other people's sessions: none of them is looked at
        await manager.create_session(f"user{i}@example.com")
    assert len(await manager.list_sessions_for("alice@example.com")) == 3

    with sessions_redis.monitor() as monitor:
        assert await manager.delete_all_for("alice@example.com") == 3
        await manager.client.echo("done")
        commands = []
        while "done" not in (entry := monitor.next_command())["command"]:
            commands.append((entry["client_type"], entry["command"].split()[0]))
    # One round trip; inside it SMEMBERS, one DEL per session of alice, DEL of the index.
    assert [c for c in commands if c[0] != "lua"] == [("tcp", "EVALSHA")]
    assert [c for _, c in commands[1:]] == ["SMEMBERS", "DEL", "DEL", "DEL", "DEL"]

    for browser in alice_tabs:
        assert (await browser.get("/whoami")).json() == {"user": None}
    assert (await bob_browser.get("/whoami")).json() == {"user": "bob"}
    assert len(await manager.list_sessions_for("user7@example.com")) == 1


def test_sync_delete_all_for(client, alice, sessions_redis):
    client.force_login(alice)
    assert store.delete_all_for("alice@example.com", client=sessions_redis) == 1
    assert client.get("/whoami").json() == {"user": None}
