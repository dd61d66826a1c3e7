"""Sign-in with Redis down: a 503 page that says how to fix it, and nothing lost."""

from __future__ import annotations

import pytest
import redis
from django.test import Client, override_settings

from agenticpal import redis_keys as keys
from tests import oauth_support
from tests.oauth_support import EMAIL, TOKEN_URL, callback, calls_to, start_flow, stub_sign_in
from workspace import credentials
from workspace.views import issue_login_token

pytestmark = pytest.mark.django_db
google = oauth_support.google
google_settings = oauth_support.google_settings


def assert_503(response) -> None:
    assert response.status_code == 503
    text = response.content.decode()
    assert "make redis" in text and "REDIS_URL" in text
    assert "Traceback" not in text


def test_callback_while_redis_is_down_answers_503_and_the_state_survives(
    google, private_redis, sessions_redis
):
    stub_sign_in(google)
    client = Client()
    state = start_flow(client)

    private_redis.stop()
    assert_503(callback(client, state))
    assert calls_to(google, TOKEN_URL) == 0  # the code was not spent

    private_redis.start()  # AOF: the state and the session are still there
    assert sessions_redis.exists(keys.oauth_state_key(state)) == 1
    response = callback(client, state)
    assert response.status_code == 302
    assert credentials.load_credentials(EMAIL) is not None


def test_starting_sign_in_while_redis_is_down_answers_503(google, private_redis):
    client = Client()
    client.get("/login/")  # a session cookie: every later page needs Redis
    private_redis.stop()
    assert_503(client.post("/login/google-oauth2/"))


def test_sign_out_everywhere_while_redis_is_down_answers_503_and_revokes_nothing(
    google, private_redis
):
    stub_sign_in(google)
    client = Client()
    callback(client, start_flow(client))
    google.reset()
    private_redis.stop()
    assert_503(client.post("/logout/everywhere/"))
    assert len(google.calls) == 0
    private_redis.start()
    assert "_auth_user_id" in client.session


def test_local_sign_in_while_redis_is_down_answers_503(private_redis):
    with override_settings(DEBUG=True):
        token = issue_login_token()
        private_redis.stop()
        assert_503(Client().get(f"/login/local/{token}/"))


def test_google_credentials_raise_a_redis_error_not_sign_in_required(google, private_redis):
    """Redis being down is not the user's fault: their credentials are not touched."""
    private_redis.stop()
    with pytest.raises(redis.exceptions.ConnectionError):
        credentials.google_credentials(EMAIL)
