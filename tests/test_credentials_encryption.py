"""Encryption at rest: no usable secret in any Redis value; key rotation with a key list."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from agenticpal import redis_clients
from agenticpal import redis_keys as keys
from tests import oauth_support
from tests.oauth_support import (
    ACCESS_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    EMAIL,
    ID_TOKEN,
    REFRESH_TOKEN,
    TOKEN_URL,
    callback,
    start_flow,
    stub_sign_in,
)
from workspace import credentials, encryption
from workspace.credentials import CredentialsUnreadable, GoogleCredentials

google = oauth_support.google
google_settings = oauth_support.google_settings

REFRESHED_TOKEN = "ya29.refreshed-access-token-PLAINTEXT"
SECRETS = (ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN, CLIENT_SECRET, REFRESHED_TOKEN)


def every_value(client: redis.Redis) -> Iterator[tuple[bytes, bytes]]:
    """(key, bytes) for every key of the database, whatever its type (SCAN: test code)."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            parts = [client.get(key)]
        elif kind == "hash":
            parts = [b"%s=%s" % item for item in client.hgetall(key).items()]
        elif kind == "list":
            parts = client.lrange(key, 0, -1)
        elif kind == "set":
            parts = list(client.smembers(key))
        elif kind == "zset":
            parts = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            parts = [repr(entry).encode() for entry in client.xrange(key)]
        else:
            parts = [client.dump(key) or b""]
        yield key, b"\n".join(p for p in parts if p is not None)


@pytest.mark.django_db
def test_no_redis_value_holds_a_plaintext_secret_after_sign_in_and_refresh(google):
    stub_sign_in(google)
    client = Client()
    callback(client, start_flow(client))
    assert "_auth_user_id" in client.session
    # Force a refresh so a second access token has been written too.
    creds = credentials.load_credentials(EMAIL)
    credentials.save_credentials(
        EMAIL, replace(creds, expiry=datetime.now(UTC) - timedelta(minutes=5))
    )
    google.add("POST", TOKEN_URL, json={"access_token": REFRESHED_TOKEN, "expires_in": 3599})
    assert credentials.google_credentials(EMAIL).token == REFRESHED_TOKEN
    client.get("/login/")  # one more request that reads and writes the session

    seen = []
    for purpose in ("sessions", "checkpoints"):
        for key, value in every_value(redis_clients.get_client(purpose)):
            seen.append(key)
            for secret in SECRETS:
                assert secret.encode() not in value, f"{key!r} holds {secret}"
    prefixes = {key.decode().split(":")[0] + ":" for key in seen}
    assert {keys.SESSION_PREFIX, keys.CREDENTIALS_PREFIX, keys.USER_SESSIONS_PREFIX} <= prefixes


@pytest.mark.django_db
def test_stored_secrets_are_fernet_tokens_of_the_configured_key(google, sessions_redis):
    stub_sign_in(google)
    client = Client()
    callback(client, start_flow(client))
    raw = json.loads(sessions_redis.get(keys.credentials_key(EMAIL)))
    assert raw["encrypted"] == ["token", "refresh_token", "client_secret"]
    fernet = Fernet(oauth_support.KEY)
    assert fernet.decrypt(raw["token"].encode()).decode() == ACCESS_TOKEN
    assert fernet.decrypt(raw["refresh_token"].encode()).decode() == REFRESH_TOKEN
    assert fernet.decrypt(raw["client_secret"].encode()).decode() == CLIENT_SECRET
    assert raw["client_id"] == CLIENT_ID  # not a secret: readable for operators


# --- rotation ----------------------------------------------------------------------

OLD, NEW, OTHER = (Fernet.generate_key().decode() for _ in range(3))


def save_with(key_list: list[str], email: str = EMAIL) -> None:
    with override_settings(CREDENTIALS_ENCRYPTION_KEYS=key_list):
        credentials.save_credentials(
            email,
            GoogleCredentials(
                token=ACCESS_TOKEN,
                refresh_token=REFRESH_TOKEN,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                scopes=["openid"],
                expiry=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1),
            ),
        )


def load_with(key_list: list[str], email: str = EMAIL) -> GoogleCredentials | None:
    with override_settings(CREDENTIALS_ENCRYPTION_KEYS=key_list):
        return credentials.load_credentials(email)


def rotate_with(key_list: list[str]) -> str:
    out = io.StringIO()
    with override_settings(CREDENTIALS_ENCRYPTION_KEYS=key_list):
        call_command("rotate_credentials_key", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_old_key_still_decrypts_after_a_new_key_is_put_first():
    save_with([OLD])
    assert load_with([NEW, OLD]).refresh_token == REFRESH_TOKEN
    with pytest.raises(CredentialsUnreadable):
        load_with([NEW])


def test_rotate_command_re_encrypts_with_the_first_key_and_keeps_the_ttl(sessions_redis):
    save_with([OLD])
    save_with([OLD], email="bob@example.com")
    sessions_redis.expire(keys.credentials_key(EMAIL), 1234)
    before = sessions_redis.get(keys.credentials_key(EMAIL))

    assert "Re-encrypted 2 credential(s); 0 unreadable." in rotate_with([NEW, OLD])

    after = sessions_redis.get(keys.credentials_key(EMAIL))
    assert after != before
    assert 1200 < sessions_redis.ttl(keys.credentials_key(EMAIL)) <= 1234  # KEEPTTL
    # The old key can be dropped now: the new one alone decrypts everything.
    for email in (EMAIL, "bob@example.com"):
        creds = load_with([NEW], email)
        assert (creds.token, creds.refresh_token, creds.client_secret) == (
            ACCESS_TOKEN,
            REFRESH_TOKEN,
            CLIENT_SECRET,
        )
    with pytest.raises(CredentialsUnreadable):
        load_with([OLD])
    # Non-secret fields are untouched.
    assert json.loads(after)["client_id"] == json.loads(before)["client_id"]


def test_rotate_command_leaves_unreadable_credentials_and_fails(sessions_redis):
    save_with([OTHER])
    save_with([OLD], email="bob@example.com")
    sessions_redis.set(keys.credentials_key("broken@example.com"), b"not json")
    before = sessions_redis.get(keys.credentials_key(EMAIL))
    out, err = io.StringIO(), io.StringIO()
    with (
        override_settings(CREDENTIALS_ENCRYPTION_KEYS=[NEW, OLD]),
        pytest.raises(CommandError, match="not in CREDENTIALS_ENCRYPTION_KEY"),
    ):
        call_command("rotate_credentials_key", stdout=out, stderr=err)
    assert "Re-encrypted 1 credential(s); 2 unreadable." in out.getvalue()
    assert f"{keys.credentials_key(EMAIL)}: no configured key decrypts it" in err.getvalue()
    assert "broken@example.com: it is not a credentials record" in err.getvalue()
    assert sessions_redis.get(keys.credentials_key(EMAIL)) == before  # nothing lost
    assert sessions_redis.get(keys.credentials_key("broken@example.com")) == b"not json"
    assert load_with([NEW], "bob@example.com").token == ACCESS_TOKEN


def test_unreadable_credentials_are_kept_not_deleted(sessions_redis):
    """A missing key is a configuration mistake: the data stays for when it is restored."""
    save_with([OLD])
    with (
        override_settings(CREDENTIALS_ENCRYPTION_KEYS=[NEW]),
        pytest.raises(CredentialsUnreadable) as info,
    ):
        credentials.google_credentials(EMAIL)
    assert info.value.user_message.startswith("Your Google access has ended")
    assert sessions_redis.exists(keys.credentials_key(EMAIL)) == 1
    assert load_with([NEW, OLD]).token == ACCESS_TOKEN


def test_generate_prints_a_usable_key():
    out = io.StringIO()
    call_command("rotate_credentials_key", "--generate", stdout=out)
    key = out.getvalue().strip()
    Fernet(key)  # raises if it is not a Fernet key
    assert key != oauth_support.KEY


def test_a_malformed_key_is_a_clear_configuration_error():
    with (
        override_settings(CREDENTIALS_ENCRYPTION_KEYS=[NEW, "not-a-key"]),
        pytest.raises(ImproperlyConfigured, match="entry 2 is not a Fernet key"),
    ):
        encryption.encrypt("x")


def test_without_a_configured_key_a_key_derived_from_secret_key_is_used(sessions_redis, caplog):
    encryption._fernet.cache_clear()
    with override_settings(CREDENTIALS_ENCRYPTION_KEYS=[]):
        credentials.save_credentials(
            EMAIL,
            GoogleCredentials(
                token=ACCESS_TOKEN, refresh_token=None, client_id="", client_secret=""
            ),
        )
        assert credentials.load_credentials(EMAIL).token == ACCESS_TOKEN
    assert "CREDENTIALS_ENCRYPTION_KEY is not set" in caplog.text
    assert ACCESS_TOKEN.encode() not in sessions_redis.get(keys.credentials_key(EMAIL))


def test_commands_say_how_to_fix_redis_being_down(private_redis):
    private_redis.stop()
    with pytest.raises(CommandError, match="make redis"):
        rotate_with([NEW])
    with override_settings(DEBUG=True), pytest.raises(CommandError, match="REDIS_URL"):
        call_command("local_login_url", stdout=io.StringIO())
