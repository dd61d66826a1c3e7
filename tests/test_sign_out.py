"""Sign out (this browser) and sign out everywhere (every session, credentials, revoke)."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
import requests
import respx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from agenticpal import redis_keys as keys
from sessions_redis import store
from sessions_redis.manager import SessionManager
from tests import oauth_support
from tests.oauth_support import EMAIL, REFRESH_TOKEN, REVOKE_URL, callback, start_flow, stub_sign_in
from tests.test_credentials import REFRESH, stored
from workspace import credentials

pytestmark = pytest.mark.django_db
google = oauth_support.google
google_settings = oauth_support.google_settings

BOB = "bob@example.com"


def signed_in(google, email: str = EMAIL) -> Client:
    google.reset()
    stub_sign_in(google, email=email)
    client = Client()
    assert callback(client, start_flow(client)).status_code == 302
    assert "_auth_user_id" in client.session
    return client


def session_id(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def revoke_calls(google) -> list[dict]:
    return [
        parse_qs(call.request.body)
        for call in google.calls
        if call.request.url.split("?")[0] == REVOKE_URL
    ]


@pytest.fixture
def three_sessions(google, sessions_redis):
    """Alice in two browsers, Bob in one; all through the Google flow."""
    laptop, phone, bob = signed_in(google), signed_in(google), signed_in(google, BOB)
    google.reset()
    assert {r.session_id for r in store.sessions_for(EMAIL, client=sessions_redis)} == {
        session_id(laptop),
        session_id(phone),
    }
    return laptop, phone, bob


def test_sign_out_deletes_this_session_only(three_sessions, google, sessions_redis):
    laptop, phone, bob = three_sessions
    gone = session_id(laptop)
    response = laptop.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert sessions_redis.exists(keys.session_key(gone)) == 0
    assert gone.encode() not in sessions_redis.smembers(keys.user_sessions_key(EMAIL))
    assert "_auth_user_id" not in laptop.session
    # The other browser, Bob, and Alice's Google credentials are untouched; Google is not asked.
    assert "_auth_user_id" in phone.session
    assert "_auth_user_id" in bob.session
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 1
    assert revoke_calls(google) == []
    assert b"You are signed out." in laptop.get("/login/").content


def test_sign_out_everywhere_ends_every_session_deletes_credentials_and_revokes(
    three_sessions, google, sessions_redis
):
    laptop, phone, bob = three_sessions
    google.add("POST", REVOKE_URL, status=200)
    ids = [session_id(laptop), session_id(phone)]

    response = phone.post("/logout/everywhere/", follow=True)
    assert response.redirect_chain == [("/login/", 302)]
    assert b"signed out on every device, and Google access is revoked" in response.content

    for sid in ids:
        assert sessions_redis.exists(keys.session_key(sid)) == 0
    assert sessions_redis.exists(keys.user_sessions_key(EMAIL)) == 0
    assert store.sessions_for(EMAIL, client=sessions_redis) == []
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0
    assert revoke_calls(google) == [{"token": [REFRESH_TOKEN]}]  # the grant, not one token
    assert "_auth_user_id" not in laptop.session  # the other browser is signed out too
    # Bob is untouched.
    assert "_auth_user_id" in bob.session
    assert sessions_redis.exists(keys.credentials_key(BOB)) == 1
    assert len(store.sessions_for(BOB, client=sessions_redis)) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"body": requests.ConnectionError("Google unreachable")},
        {"status": 503, "json": {"error": "backend_error"}},
    ],
)
def test_sign_out_everywhere_when_google_cannot_revoke(
    three_sessions, google, sessions_redis, answer
):
    laptop, phone, _ = three_sessions
    google.add("POST", REVOKE_URL, **answer)
    response = laptop.post("/logout/everywhere/", follow=True)
    assert b"Google could not be reached" in response.content
    assert b"myaccount.google.com/permissions" in response.content
    # Everything local is gone all the same.
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0
    assert store.sessions_for(EMAIL, client=sessions_redis) == []
    assert "_auth_user_id" not in phone.session


def test_token_google_already_forgot_counts_as_revoked(three_sessions, google):
    laptop, _, _ = three_sessions
    google.add("POST", REVOKE_URL, status=400, json={"error": "invalid_token"})
    response = laptop.post("/logout/everywhere/", follow=True)
    assert b"Google access is revoked" in response.content


def test_sign_out_everywhere_for_a_local_account_asks_nothing_of_google(google, sessions_redis):
    user = get_user_model().objects.create(username="dev", email="dev@localhost")
    first, second = Client(), Client()
    first.force_login(user)
    second.force_login(user)
    first.post("/logout/everywhere/")
    assert "_auth_user_id" not in second.session
    assert store.sessions_for("dev@localhost", client=sessions_redis) == []
    assert len(google.calls) == 0


def test_sign_out_needs_a_post_with_a_csrf_token(three_sessions, google):
    laptop, _, _ = three_sessions
    assert laptop.get("/logout/").status_code == 405
    assert laptop.get("/logout/everywhere/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = laptop.cookies
    assert strict.post("/logout/everywhere/").status_code == 403
    assert "_auth_user_id" in laptop.session
    assert revoke_calls(google) == []


def test_sign_out_everywhere_needs_a_signed_in_user(google):
    response = Client().post("/logout/everywhere/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert len(google.calls) == 0


def test_every_signed_in_page_offers_sign_out(three_sessions):
    laptop, _, _ = three_sessions
    page = laptop.get("/").content.decode()
    assert 'action="/logout/"' in page
    assert 'href="/login/"' in page  # the account page: sign out everywhere
    assert 'action="/logout/everywhere/"' in laptop.get("/login/").content.decode()
    assert 'action="/logout/"' not in Client().get("/login/").content.decode()


async def test_async_revoke_and_delete_with_the_session_manager(google_settings, sessions_redis):
    """The async building blocks: revoke + delete credentials, then every session."""
    stored(expired=False)
    manager = SessionManager()
    for _ in range(3):
        await manager.create_session(EMAIL)
    other = await manager.create_session(BOB)
    with respx.mock() as router:
        route = router.post(REVOKE_URL).mock(return_value=httpx.Response(200))
        assert await credentials.arevoke_and_delete(EMAIL) is True
    assert parse_qs(route.calls[0].request.content.decode()) == {"token": [REFRESH]}
    assert await manager.delete_all_for(EMAIL) == 3
    assert await manager.list_sessions_for(EMAIL) == []
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0
    assert await manager.get_session(other.session_id) is not None
