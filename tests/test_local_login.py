"""Local development sign-in: one-time token in ``login_token:<token>``, DEBUG only.

What the code does: the link works whenever ``DEBUG`` is on, whether or not Google is
configured (so a developer with a Google client can still sign in as a local user);
with ``DEBUG`` off the URL answers 404 and the command refuses to issue a link.
"""

from __future__ import annotations

import io
import json
import re
import time
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from agenticpal import redis_keys as keys
from tests import oauth_support
from workspace.views import LOCAL_EMAIL, issue_login_token

pytestmark = pytest.mark.django_db
google_settings = oauth_support.google_settings


def login_url(*args: str) -> str:
    out = io.StringIO()
    call_command("local_login_url", "http://127.0.0.1:8000", *args, stdout=out)
    match = re.search(r"(http://\S+)", out.getvalue())
    assert match, out.getvalue()
    assert "single use" in out.getvalue()
    return urlsplit(match.group(1)).path


@pytest.fixture
def debug():
    with override_settings(DEBUG=True):
        yield


def test_link_signs_in_the_local_developer(debug, sessions_redis):
    path = login_url()
    token = path.rstrip("/").rsplit("/", 1)[1]
    assert 0 < sessions_redis.ttl(keys.login_token_key(token)) <= 600
    client = Client()
    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == "/"
    user = get_user_model().objects.get(pk=client.session["_auth_user_id"])
    assert (user.username, user.email) == ("developer", LOCAL_EMAIL)
    assert not user.has_usable_password()
    record = json.loads(sessions_redis.get(keys.session_key(client.cookies["sessionid"].value)))
    assert record["user_email"] == LOCAL_EMAIL
    assert record["credentials"] is None  # no Google credentials for a local account
    assert sessions_redis.exists(keys.login_token_key(token)) == 0  # consumed


def test_link_works_once(debug):
    path = login_url()
    assert Client().get(path).status_code == 302
    other = Client()
    response = other.get(path)
    assert response.status_code == 410
    assert b"expired or was already used" in response.content
    assert b"local_login_url" in response.content  # how to get a new one
    assert "_auth_user_id" not in other.session


def test_link_expires(debug, sessions_redis):
    with override_settings(LOGIN_TOKEN_TTL_SECONDS=1):
        path = login_url()
    token = path.rstrip("/").rsplit("/", 1)[1]
    deadline = time.monotonic() + 5
    while sessions_redis.exists(keys.login_token_key(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    client = Client()
    assert client.get(path).status_code == 410
    assert "_auth_user_id" not in client.session


def test_unknown_token_is_refused(debug):
    assert Client().get("/login/local/not-a-token/").status_code == 410
    assert not get_user_model().objects.exists()


def test_disabled_when_debug_is_off(sessions_redis):
    token = issue_login_token()
    client = Client()
    assert client.get(f"/login/local/{token}/").status_code == 404
    assert "_auth_user_id" not in client.session
    assert not get_user_model().objects.exists()
    with pytest.raises(CommandError, match="disabled when DEBUG is off"):
        call_command("local_login_url", stdout=io.StringIO())
    page = Client().get("/login/").content
    assert b"<h2>Local development sign-in</h2>" not in page
    assert b"available only when <code>DEBUG=true</code>" in page


def test_works_in_debug_even_when_google_is_configured(debug, google_settings):
    page = Client().get("/login/").content
    assert b"Sign in with Google" in page
    assert b"<h2>Local development sign-in</h2>" in page
    client = Client()
    assert client.get(login_url()).status_code == 302
    assert "_auth_user_id" in client.session


def test_email_option_and_an_existing_account(debug):
    existing = get_user_model().objects.create(username="carol", email="carol@example.com")
    client = Client()
    client.get(login_url("--email", "carol@example.com"))
    assert int(client.session["_auth_user_id"]) == existing.pk
    assert get_user_model().objects.count() == 1


def test_sign_in_attempts_are_rate_limited_per_address(client, settings, sessions_redis):
    """Guessing local links (or hammering the Google callback) stops at the limit."""
    settings.DEBUG = True
    settings.SIGN_IN_ATTEMPTS_PER_MINUTE = 3
    codes = [client.get(f"/login/local/guess-{n}/").status_code for n in range(3)]
    assert codes == [410, 410, 410]
    refused = client.get("/login/local/guess-4/")
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert "Too many sign-in attempts" in refused.content.decode()
    assert client.get("/complete/google-oauth2/?state=x&code=y").status_code == 429
    assert client.post("/login/google-oauth2/").status_code == 429
