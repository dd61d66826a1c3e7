"""``google_credentials`` / ``agoogle_credentials``: refresh when expired, one refresh for
many racing callers (a Redis lock), ``invalid_grant`` ends the user's Google access.

Google's token endpoint is stubbed over HTTP: ``responses`` for the sync path
(``requests``), ``respx`` for the async path (``httpx``). Redis is real.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
import requests
import respx
from django.contrib.auth import get_user_model
from django.test import Client
from social_django.models import UserSocialAuth

from agenticpal import redis_keys as keys
from tests import oauth_support
from tests.oauth_support import CLIENT_ID, CLIENT_SECRET, EMAIL, TOKEN_URL, calls_to
from workspace import credentials
from workspace.credentials import GoogleCredentials, RefreshFailed, SignInRequired

google = oauth_support.google
google_settings = oauth_support.google_settings

OLD_TOKEN = "ya29.old-access-token"
NEW_TOKEN = "ya29.new-access-token"
REFRESH = "1//stored-refresh-token"
RACERS = 12


def stored(expired: bool = True, refresh_token: str | None = REFRESH) -> GoogleCredentials:
    moment = datetime.now(UTC).replace(microsecond=0)
    creds = GoogleCredentials(
        token=OLD_TOKEN,
        refresh_token=refresh_token,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scopes=["openid", "https://www.googleapis.com/auth/tasks"],
        expiry=moment - timedelta(minutes=5) if expired else moment + timedelta(hours=1),
    )
    credentials.save_credentials(EMAIL, creds)
    return creds


def refreshed_body(token: str = NEW_TOKEN) -> dict:
    return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}


# --- sync ------------------------------------------------------------------------


def test_valid_credentials_are_returned_without_asking_google(google, sessions_redis):
    stored(expired=False)
    sessions_redis.expire(keys.credentials_key(EMAIL), 100)
    creds = credentials.google_credentials(EMAIL)
    assert creds.token == OLD_TOKEN
    assert len(google.calls) == 0
    # Reading renews the TTL (GETEX): credentials follow the user's sessions.
    assert sessions_redis.ttl(keys.credentials_key(EMAIL)) > 100


@pytest.mark.django_db
def test_accepts_a_user_object(google):
    stored(expired=False)
    user = get_user_model().objects.create(username="alice", email=EMAIL)
    assert credentials.google_credentials(user).token == OLD_TOKEN


def test_expired_token_is_refreshed_and_written_back(google, sessions_redis):
    stored()
    google.add("POST", TOKEN_URL, json=refreshed_body())
    creds = credentials.google_credentials(EMAIL)
    assert creds.token == NEW_TOKEN
    assert creds.refresh_token == REFRESH  # Google sent none: the stored one is kept
    assert not creds.expired

    form = parse_qs(google.calls[0].request.body)
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == [REFRESH]
    assert form["client_id"] == [CLIENT_ID]
    assert form["client_secret"] == [CLIENT_SECRET]

    again = credentials.load_credentials(EMAIL)
    assert again.token == NEW_TOKEN and again.expiry == creds.expiry
    assert NEW_TOKEN.encode() not in sessions_redis.get(keys.credentials_key(EMAIL))
    assert credentials.google_credentials(EMAIL).token == NEW_TOKEN
    assert calls_to(google, TOKEN_URL) == 1  # the second call used the stored token


def test_concurrent_callers_make_one_refresh_call(google):
    """N threads (each its own Redis connection) race on an expired token: one call."""
    stored()

    def slow_google(request):
        time.sleep(0.3)  # long enough for every racer to find the token expired
        return 200, {}, json.dumps(refreshed_body())

    google.add_callback("POST", TOKEN_URL, callback=slow_google)
    barrier = threading.Barrier(RACERS)
    results: list[object] = []

    def racer() -> None:
        barrier.wait()
        try:
            results.append(credentials.google_credentials(EMAIL).token)
        except Exception as exc:  # collected, asserted below
            results.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [NEW_TOKEN] * RACERS
    assert calls_to(google, TOKEN_URL) == 1


@pytest.mark.django_db
def test_invalid_grant_deletes_credentials_and_asks_to_sign_in_again(google, sessions_redis):
    stored()
    google.add("POST", TOKEN_URL, json={"error": "invalid_grant"}, status=400)
    with pytest.raises(SignInRequired) as info:
        credentials.google_credentials(EMAIL)
    assert "invalid_grant" in str(info.value)
    assert info.value.user_message == "Your Google access has ended. Please sign in again."
    assert info.value.sign_in_url == "/login/"
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0
    with pytest.raises(SignInRequired, match="no Google credentials"):
        credentials.google_credentials(EMAIL)
    assert calls_to(google, TOKEN_URL) == 1


@pytest.mark.django_db
def test_sign_in_page_asks_a_google_user_without_credentials_to_sign_in_again(google):
    user = get_user_model().objects.create(username="alice", email=EMAIL)
    UserSocialAuth.objects.create(user=user, provider="google-oauth2", uid="1000")
    client = Client()
    client.force_login(user)
    page = client.get("/login/").content.decode()
    assert "Your Google access has ended. Please sign in again." in page
    assert "Sign in with Google again" in page
    assert 'name="consent" value="1"' in page  # consent again: Google issues a refresh token

    stored(expired=False)
    assert "Sign in with Google again" not in client.get("/login/").content.decode()


@pytest.mark.django_db
def test_local_account_is_not_asked_to_sign_in_with_google(google):
    user = get_user_model().objects.create(username="dev", email="dev@localhost")
    client = Client()
    client.force_login(user)
    assert "Sign in with Google again" not in client.get("/login/").content.decode()


def test_expired_without_refresh_token_asks_to_sign_in_again(google, sessions_redis):
    stored(refresh_token=None)
    with pytest.raises(SignInRequired, match="no refresh token"):
        credentials.google_credentials(EMAIL)
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0
    assert len(google.calls) == 0


def test_no_credentials_asks_to_sign_in(google):
    with pytest.raises(SignInRequired, match="no Google credentials"):
        credentials.google_credentials(EMAIL)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, {"error": "backend_error"}, "answered 500"),
        (401, {"error": "invalid_client"}, "GOOGLE_OAUTH2_KEY"),
    ],
)
def test_google_failure_keeps_the_credentials(google, sessions_redis, status, body, message):
    stored()
    before = sessions_redis.get(keys.credentials_key(EMAIL))
    google.add("POST", TOKEN_URL, json=body, status=status)
    with pytest.raises(RefreshFailed, match=message):
        credentials.google_credentials(EMAIL)
    assert sessions_redis.get(keys.credentials_key(EMAIL)) == before
    # The lock was released: the next caller tries again at once.
    google.replace("POST", TOKEN_URL, json=refreshed_body())
    assert credentials.google_credentials(EMAIL).token == NEW_TOKEN


def test_google_unreachable_keeps_the_credentials(google, sessions_redis):
    stored()
    google.add("POST", TOKEN_URL, body=requests.ConnectionError("no route to host"))
    with pytest.raises(RefreshFailed, match="Could not reach Google"):
        credentials.google_credentials(EMAIL)
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 1


# --- async -------------------------------------------------------------------------


@pytest.fixture
def agoogle(google_settings):
    with respx.mock(assert_all_called=False) as router:
        yield router


async def test_async_refresh_writes_back(agoogle, sessions_redis):
    stored()
    route = agoogle.post(TOKEN_URL).mock(return_value=httpx.Response(200, json=refreshed_body()))
    creds = await credentials.agoogle_credentials(EMAIL)
    assert creds.token == NEW_TOKEN
    assert route.call_count == 1
    form = parse_qs(route.calls[0].request.content.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == [REFRESH]
    assert (await credentials.aload_credentials(EMAIL)).token == NEW_TOKEN
    assert (await credentials.agoogle_credentials(EMAIL)).token == NEW_TOKEN
    assert route.call_count == 1


async def test_async_valid_credentials_make_no_call(agoogle):
    stored(expired=False)
    route = agoogle.post(TOKEN_URL)
    assert (await credentials.agoogle_credentials(EMAIL)).token == OLD_TOKEN
    assert route.call_count == 0


async def test_async_concurrent_callers_make_one_refresh_call(agoogle):
    stored()

    async def slow_google(request):
        await asyncio.sleep(0.3)
        return httpx.Response(200, json=refreshed_body())

    route = agoogle.post(TOKEN_URL).mock(side_effect=slow_google)
    tokens = await asyncio.gather(
        *(credentials.agoogle_credentials(EMAIL) for _ in range(RACERS * 4))
    )
    assert {creds.token for creds in tokens} == {NEW_TOKEN}
    assert route.call_count == 1


async def test_async_race_on_a_revoked_grant_makes_one_call_and_everyone_must_sign_in(
    agoogle, sessions_redis
):
    stored()

    async def revoked(request):
        await asyncio.sleep(0.2)
        return httpx.Response(400, json={"error": "invalid_grant"})

    route = agoogle.post(TOKEN_URL).mock(side_effect=revoked)
    results = await asyncio.gather(
        *(credentials.agoogle_credentials(EMAIL) for _ in range(RACERS)), return_exceptions=True
    )
    assert all(isinstance(result, SignInRequired) for result in results), results
    assert route.call_count == 1
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0


async def test_async_google_unreachable_keeps_the_credentials(agoogle, sessions_redis):
    stored()
    agoogle.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("no route to host"))
    with pytest.raises(RefreshFailed, match="Could not reach Google"):
        await credentials.agoogle_credentials(EMAIL)
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 1


def commands_during(sessions_redis, action) -> dict[str, int]:
    """Redis commands the server ran during ``action`` (INFO commandstats, our server only)."""
    sessions_redis.config_resetstat()
    action()
    stats = sessions_redis.info("commandstats")
    ignored = {"cmdstat_info", "cmdstat_config|resetstat"}
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k not in ignored}


def test_valid_credentials_cost_one_round_trip(google, sessions_redis):
    stored(expired=False)
    credentials.google_credentials(EMAIL)  # warm the connection pool
    assert commands_during(sessions_redis, lambda: credentials.google_credentials(EMAIL)) == {
        "getex": 1
    }
