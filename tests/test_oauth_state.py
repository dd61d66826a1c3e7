"""The OAuth state in ``oauth_state:<state>``: single use, expires, bound to one browser.

Every refused callback shows a page a person can read, logs to ``django.security``,
never calls Google's token endpoint, and writes nothing (no user, no social-auth row,
no credentials, no signed-in session).
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from social_django.models import UserSocialAuth

from agenticpal import redis_keys as keys
from tests import oauth_support
from tests.oauth_support import EMAIL, TOKEN_URL, callback, calls_to, start_flow, stub_sign_in
from workspace import oauth_state

pytestmark = pytest.mark.django_db
google = oauth_support.google
google_settings = oauth_support.google_settings

SECURITY_LOGGER = "django.security.oauth_state"


def assert_refused(response, google, sessions_redis, client: Client) -> None:
    assert response.status_code == 400
    assert b"This sign-in link is not valid" in response.content
    assert b"Nothing was saved" in response.content
    assert calls_to(google, TOKEN_URL) == 0
    assert not get_user_model().objects.exists()
    assert not UserSocialAuth.objects.exists()
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0
    assert "_auth_user_id" not in client.session


def security_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SECURITY_LOGGER]


def test_state_is_stored_with_the_configured_ttl(google, sessions_redis):
    with override_settings(OAUTH_STATE_TTL_SECONDS=42):
        state = start_flow(Client())
    assert 40 <= sessions_redis.ttl(keys.oauth_state_key(state)) <= 42


def test_expired_state_is_refused(google, sessions_redis, caplog):
    stub_sign_in(google)
    client = Client()
    with override_settings(OAUTH_STATE_TTL_SECONDS=1):
        state = start_flow(client)
    deadline = time.monotonic() + 5
    while sessions_redis.exists(keys.oauth_state_key(state)) and time.monotonic() < deadline:
        time.sleep(0.05)  # Redis expires the key itself; no clock is faked
    caplog.set_level(logging.WARNING, logger=SECURITY_LOGGER)
    response = callback(client, state)
    assert_refused(response, google, sessions_redis, client)
    assert b"unknown, expired or was already used" in response.content
    [record] = security_records(caplog)
    assert "(unknown)" in record.getMessage()


def test_replayed_state_is_refused_and_changes_nothing(google, sessions_redis, caplog):
    stub_sign_in(google)
    client = Client()
    state = start_flow(client)
    assert callback(client, state).status_code == 302  # first use signs in
    user_count = get_user_model().objects.count()
    stored = sessions_redis.get(keys.credentials_key(EMAIL))
    session_key = client.cookies["sessionid"].value

    attacker = Client()
    caplog.set_level(logging.WARNING, logger=SECURITY_LOGGER)
    response = callback(attacker, state, code="another-code")
    assert response.status_code == 400
    assert b"This sign-in link is not valid" in response.content
    assert calls_to(google, TOKEN_URL) == 1  # only the first callback reached Google
    assert get_user_model().objects.count() == user_count
    assert sessions_redis.get(keys.credentials_key(EMAIL)) == stored
    assert "_auth_user_id" not in attacker.session
    assert security_records(caplog)

    # Replayed in the browser that started it: refused as well; that session stays.
    response = callback(client, state)
    assert response.status_code == 400
    assert client.cookies["sessionid"].value == session_key


def test_state_from_another_browser_is_refused(google, sessions_redis, caplog):
    """Login CSRF: a state minted in the attacker's browser does not work in the victim's."""
    stub_sign_in(google)
    attacker, victim = Client(), Client()
    state = start_flow(attacker)
    victim.get("/login/")  # the victim has a session of their own
    caplog.set_level(logging.WARNING, logger=SECURITY_LOGGER)
    response = callback(victim, state)
    assert_refused(response, google, sessions_redis, victim)
    assert b"issued to another browser" in response.content
    [record] = security_records(caplog)
    assert "(mismatch)" in record.getMessage()
    # The refused attempt did not consume the state: the browser that started sign-in
    # still completes it (someone who saw a state cannot spoil that sign-in).
    assert sessions_redis.exists(keys.oauth_state_key(state)) == 1
    assert callback(attacker, state).status_code == 302
    assert "_auth_user_id" in attacker.session
    assert sessions_redis.exists(keys.oauth_state_key(state)) == 0


def test_state_for_another_backend_is_refused(google, sessions_redis, caplog):
    stub_sign_in(google)
    client = Client()
    start_flow(client)  # gives the browser its binding nonce
    binding = oauth_state.browser_binding(client.session, create=False)
    oauth_state.store_state("forged-state", backend="github", binding=binding)
    caplog.set_level(logging.WARNING, logger=SECURITY_LOGGER)
    response = callback(client, "forged-state")
    assert_refused(response, google, sessions_redis, client)
    assert "(mismatch)" in security_records(caplog)[0].getMessage()


@pytest.mark.parametrize(
    ("state", "reason"),
    [(None, "missing"), ("", "missing"), ("never-issued", "unknown"), ("x" * 500, "unknown")],
)
def test_missing_or_unknown_state_is_refused(google, sessions_redis, caplog, state, reason):
    stub_sign_in(google)
    client = Client()
    start_flow(client)
    caplog.set_level(logging.WARNING, logger=SECURITY_LOGGER)
    response = callback(client, state)
    assert_refused(response, google, sessions_redis, client)
    assert f"({reason})" in security_records(caplog)[0].getMessage()


def test_state_is_consumed_even_when_the_code_exchange_fails(google, sessions_redis):
    """A callback whose code Google refuses still burns the state (no second try with it)."""
    google.add("POST", TOKEN_URL, json={"error": "invalid_grant"}, status=400)
    client = Client()
    state = start_flow(client)
    response = callback(client, state)
    assert response.status_code == 400
    assert sessions_redis.exists(keys.oauth_state_key(state)) == 0
    assert not get_user_model().objects.exists()
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 0


def test_racing_callbacks_consume_a_state_exactly_once():
    """Of N concurrent consumers of one state, exactly one gets it."""
    oauth_state.store_state("raced", backend="google-oauth2", binding="browser")
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def consume() -> None:
        barrier.wait()
        try:
            oauth_state.consume_state("raced", backend="google-oauth2", binding="browser")
            outcomes.append("ok")
        except oauth_state.OAuthStateError as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=consume) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["ok"] + ["unknown"] * 19


def test_mismatching_consumers_cannot_spoil_a_race_for_the_rightful_one():
    """Checked and deleted in one script: of 10 wrong and 10 right browsers racing for one
    state, exactly one right one gets it; no wrong one consumes it."""
    oauth_state.store_state("contested", backend="google-oauth2", binding="browser")
    barrier = threading.Barrier(20)
    outcomes: list[tuple[str, str]] = []

    def consume(binding: str) -> None:
        barrier.wait()
        try:
            oauth_state.consume_state("contested", backend="google-oauth2", binding=binding)
            outcomes.append((binding, "ok"))
        except oauth_state.OAuthStateError as exc:
            outcomes.append((binding, exc.reason))

    threads = [
        threading.Thread(target=consume, args=("browser" if i % 2 else "intruder",))
        for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [b for b, outcome in outcomes if outcome == "ok"] == ["browser"]
    assert {o for b, o in outcomes if b == "intruder"} <= {"mismatch", "unknown"}
    assert {o for b, o in outcomes if b == "browser"} <= {"ok", "unknown"}


def test_a_state_refused_for_its_binding_or_backend_stays_for_the_rightful_browser(
    sessions_redis,
):
    oauth_state.store_state("kept", backend="google-oauth2", binding="browser")
    for backend, binding in [
        ("google-oauth2", "other"),
        ("google-oauth2", ""),
        ("github", "browser"),
    ]:
        with pytest.raises(oauth_state.OAuthStateError) as refused:
            oauth_state.consume_state("kept", backend=backend, binding=binding)
        assert refused.value.reason == "mismatch"
    assert sessions_redis.exists(keys.oauth_state_key("kept")) == 1
    oauth_state.consume_state("kept", backend="google-oauth2", binding="browser")
    with pytest.raises(oauth_state.OAuthStateError) as replayed:
        oauth_state.consume_state("kept", backend="google-oauth2", binding="browser")
    assert replayed.value.reason == "unknown"
