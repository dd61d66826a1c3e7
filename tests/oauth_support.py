"""Shared helpers for the Google sign-in tests: Google stubbed at the HTTP layer only.

``responses`` answers for ``requests`` (social-auth and the sync credential paths);
``respx`` answers for ``httpx`` (the async credential paths). Redis is always real.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from cryptography.fernet import Fernet
from django.test import Client, override_settings

from workspace import oauth

TOKEN_URL = oauth.TOKEN_URI
REVOKE_URL = oauth.REVOKE_URI
USERINFO_URL = "https://www.googleapis.com/oauth2/v3/userinfo"

CLIENT_ID = "test-client.apps.googleusercontent.com"
CLIENT_SECRET = "test-client-secret-0123456789"
ACCESS_TOKEN = "ya29.first-access-token-PLAINTEXT"
REFRESH_TOKEN = "1//refresh-token-PLAINTEXT"
ID_TOKEN = "eyJ.id-token-PLAINTEXT"
EMAIL = "alice@example.com"
SCOPES = (
    "openid https://www.googleapis.com/auth/userinfo.email "
    "https://www.googleapis.com/auth/userinfo.profile "
    "https://www.googleapis.com/auth/calendar.events "
    "https://www.googleapis.com/auth/gmail.modify https://www.googleapis.com/auth/tasks"
)
KEY = Fernet.generate_key().decode()

GOOGLE_SETTINGS = {
    "SOCIAL_AUTH_GOOGLE_OAUTH2_KEY": CLIENT_ID,
    "SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET": CLIENT_SECRET,
    "CREDENTIALS_ENCRYPTION_KEYS": [KEY],
}


@pytest.fixture
def google_settings() -> Iterator[None]:
    with override_settings(**GOOGLE_SETTINGS):
        yield


@pytest.fixture
def google(google_settings) -> Iterator[responses.RequestsMock]:
    """Google's endpoints for ``requests``; unregistered URLs fail the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def token_response(
    access_token: str = ACCESS_TOKEN,
    refresh_token: str | None = REFRESH_TOKEN,
    expires_in: int = 3599,
) -> dict:
    body = {
        "access_token": access_token,
        "expires_in": expires_in,
        "scope": SCOPES,
        "token_type": "Bearer",
        "id_token": ID_TOKEN,
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
    return body


def stub_sign_in(rsps: responses.RequestsMock, email: str = EMAIL, **token_kwargs) -> None:
    rsps.add(responses.POST, TOKEN_URL, json=token_response(**token_kwargs))
    rsps.add(
        responses.GET,
        USERINFO_URL,
        json={
            "sub": "1000" + str(abs(hash(email)) % 10_000),
            "email": email,
            "email_verified": True,
            "name": "Alice Example",
            "given_name": "Alice",
            "family_name": "Example",
        },
    )


def start_flow(client: Client, **data) -> str:
    """POST ``social:begin`` and return the ``state`` sent to Google."""
    response = client.post("/login/google-oauth2/", data)
    assert response.status_code == 302, response
    location = response["Location"]
    assert location.startswith("https://accounts.google.com/"), location
    return parse_qs(urlsplit(location).query)["state"][0]


def auth_params(client: Client, **data) -> dict[str, str]:
    response = client.post("/login/google-oauth2/", data)
    return {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()}


def callback(client: Client, state: str | None, code: str = "auth-code"):
    params = {"code": code}
    if state is not None:
        params["state"] = state
    return client.get("/complete/google-oauth2/", params)


def calls_to(rsps: responses.RequestsMock, url: str) -> int:
    return sum(1 for call in rsps.calls if call.request.url.split("?")[0] == url)
