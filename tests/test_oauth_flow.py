"""The whole Google sign-in: start -> Google (stubbed over HTTP) -> callback -> signed in."""

from __future__ import annotations

import json

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client
from social_django.models import UserSocialAuth

from agenticpal import redis_keys as keys
from tests import oauth_support
from tests.oauth_support import (
    ACCESS_TOKEN,
    CLIENT_ID,
    EMAIL,
    ID_TOKEN,
    REFRESH_TOKEN,
    TOKEN_URL,
    auth_params,
    callback,
    calls_to,
    start_flow,
    stub_sign_in,
)
from workspace import credentials
from workspace.oauth_state import SIGNED_IN_BEFORE_COOKIE

pytestmark = pytest.mark.django_db
google = oauth_support.google
google_settings = oauth_support.google_settings


def test_start_writes_state_to_redis_with_ttl(google, sessions_redis, settings):
    client = Client()
    state = start_flow(client)
    key = keys.oauth_state_key(state)
    assert sessions_redis.exists(key)
    assert 0 < sessions_redis.ttl(key) <= settings.OAUTH_STATE_TTL_SECONDS
    # The state is not kept in the session: only a browser-binding nonce is.
    record = sessions_redis.get(keys.session_key(client.cookies["sessionid"].value))
    assert state.encode() not in record


def test_authorization_request_asks_for_offline_access_and_scopes(google):
    params = auth_params(Client())
    assert params["client_id"] == CLIENT_ID
    assert params["access_type"] == "offline"
    assert params["prompt"] == "consent"  # first sign-in from this browser
    scopes = params["scope"].split()
    for scope in ("openid", "email", "profile"):
        assert scope in scopes
    for api in ("calendar.events", "gmail.modify", "tasks"):
        assert f"https://www.googleapis.com/auth/{api}" in scopes
    assert params["redirect_uri"] == "http://testserver/complete/google-oauth2/"


def test_full_flow_signs_in_and_stores_encrypted_credentials(google, sessions_redis):
    stub_sign_in(google)
    client = Client()
    state = start_flow(client)
    response = callback(client, state)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert calls_to(google, TOKEN_URL) == 1

    user = get_user_model().objects.get(email=EMAIL)
    assert int(client.session["_auth_user_id"]) == user.pk
    assert sessions_redis.exists(keys.oauth_state_key(state)) == 0  # consumed

    stored = credentials.load_credentials(EMAIL)
    assert stored.token == ACCESS_TOKEN
    assert stored.refresh_token == REFRESH_TOKEN
    assert stored.client_id == CLIENT_ID
    assert "https://www.googleapis.com/auth/tasks" in stored.scopes
    assert not stored.expired
    raw = json.loads(sessions_redis.get(keys.credentials_key(EMAIL)))
    assert set(raw) >= {"token", "refresh_token", "token_uri", "client_id", "scopes", "expiry"}
    assert raw["token_uri"] == "https://oauth2.googleapis.com/token"
    assert sessions_redis.ttl(keys.credentials_key(EMAIL)) > 0

    # The session record points at the credentials; it holds no secret.
    record = json.loads(sessions_redis.get(keys.session_key(client.cookies["sessionid"].value)))
    assert record["user_email"] == EMAIL
    assert record["credentials"]["ref"] == keys.credentials_key(EMAIL)
    assert "token" not in record["credentials"]

    # The social-auth SQL row keeps no token.
    social = UserSocialAuth.objects.get(user=user)
    text = json.dumps(social.extra_data)
    for secret in (ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN):
        assert secret not in text
    assert "access_token" not in social.extra_data
    assert "refresh_token" not in social.extra_data

    # This browser has consented: the next sign-in skips the consent screen.
    assert response.cookies[SIGNED_IN_BEFORE_COOKIE].value == "1"
    assert "prompt" not in auth_params(client)
    assert auth_params(client, consent="1")["prompt"] == "consent"


def test_returning_user_keeps_refresh_token_when_google_sends_none(google):
    stub_sign_in(google)
    first = Client()
    callback(first, start_flow(first))

    google.reset()
    stub_sign_in(google, access_token="ya29.second", refresh_token=None)
    second = Client()
    response = callback(second, start_flow(second))
    assert response.status_code == 302
    stored = credentials.load_credentials(EMAIL)
    assert stored.token == "ya29.second"
    assert stored.refresh_token == REFRESH_TOKEN


def test_no_refresh_token_anywhere_asks_for_consent_and_writes_nothing(google, sessions_redis):
    stub_sign_in(google, refresh_token=None)
    client = Client()
    response = callback(client, start_flow(client))
    assert response.status_code == 200
    assert b"Grant access with Google" in response.content
    assert b'name="consent" value="1"' in response.content
    assert not get_user_model().objects.exists()
    assert not UserSocialAuth.objects.exists()
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0
    assert "_auth_user_id" not in client.session


def test_google_denied_consent_shows_a_page_and_writes_nothing(google):
    client = Client()
    state = start_flow(client)
    response = client.get("/complete/google-oauth2/", {"state": state, "error": "access_denied"})
    assert response.status_code == 400
    assert b"Sign-in" in response.content
    assert not get_user_model().objects.exists()


def test_no_sql_table_holds_a_token_or_the_client_secret(google):
    """Not just social-auth's row: every table of the SQL database, every column."""
    from django.db import connection

    from tests.oauth_support import CLIENT_SECRET

    stub_sign_in(google)
    client = Client()
    callback(client, start_flow(client))
    assert "_auth_user_id" in client.session
    secrets = (ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN, CLIENT_SECRET)
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')  # table names come from introspection
            text = repr(cursor.fetchall())
            for secret in secrets:
                assert secret not in text, f"{table} holds a secret"


def test_redirect_uri_behind_a_tls_proxy(google, settings):
    settings.SOCIAL_AUTH_REDIRECT_IS_HTTPS = True
    params = auth_params(Client())
    assert params["redirect_uri"] == "https://testserver/complete/google-oauth2/"


def test_sign_in_page_shows_the_redirect_uri_to_register_when_google_is_not_configured(settings):
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = ""
    page = Client().get("/login/").content.decode()
    assert "Google sign-in is not configured" in page
    assert "http://testserver/complete/google-oauth2/" in page
    assert "rotate_credentials_key --generate" in page


def test_tokens_a_row_kept_from_before_are_stripped(google):
    """A social-auth row written by the stock pipeline (tokens in extra_data) is cleaned."""
    stub_sign_in(google)
    first = Client()
    callback(first, start_flow(first))
    social = UserSocialAuth.objects.get()
    social.extra_data = {**social.extra_data, "access_token": "old", "refresh_token": "old-r"}
    social.save()

    google.reset()
    stub_sign_in(google)
    second = Client()
    assert callback(second, start_flow(second)).status_code == 302
    social.refresh_from_db()
    assert "access_token" not in social.extra_data
    assert "refresh_token" not in social.extra_data
    assert social.extra_data  # the non-secret fields stay


@pytest.mark.parametrize("error", [requests.ConnectionError, requests.Timeout])
def test_google_unreachable_at_callback_shows_a_page_and_writes_nothing(
    google, sessions_redis, error
):
    google.add("POST", TOKEN_URL, body=error("no route to host"))
    client = Client()
    response = callback(client, start_flow(client))
    assert response.status_code == 502
    assert b"Google could not be reached" in response.content
    assert not get_user_model().objects.exists()
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0
