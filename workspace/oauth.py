"""HTTP to Google's OAuth endpoints: refresh an access token, revoke a grant.

The storage side (:mod:`workspace.credentials`) decides when to call these; this
module only talks to Google and turns its answers into results or the exceptions a
caller can act on (:class:`SignInRequired` for ``invalid_grant``, :class:`RefreshFailed`
when Google could not be asked). ``requests`` for the sync path (social-auth already
uses it), ``httpx`` for the async path, so neither twin blocks the other's world.
The endpoints are Google's own unless ``GOOGLE_OAUTH_TOKEN_URL`` /
``GOOGLE_OAUTH_REVOKE_URL`` say otherwise.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
import requests
from django.conf import settings

if TYPE_CHECKING:
    from workspace.credentials import GoogleCredentials

logger = logging.getLogger("agenticpal.credentials")

TOKEN_URI = "https://oauth2.googleapis.com/token"
REVOKE_URI = "https://oauth2.googleapis.com/revoke"
HTTP_TIMEOUT = 10


class SignInRequired(Exception):
    """The user has no usable Google credentials: they must sign in with Google again."""

    user_message = "Your Google access has ended. Please sign in again."

    def __init__(self, email: str, reason: str) -> None:
        super().__init__(f"Google credentials for {email} are unusable: {reason}")
        self.email = email
        self.reason = reason

    @property
    def sign_in_url(self) -> str:
        """Where to send the user: the sign-in page offers "Sign in with Google again"."""
        return settings.LOGIN_URL


class RefreshFailed(Exception):
    """Google did not refresh the token for a reason that is not the user's (network,
    5xx, a wrong client secret). The credentials are kept; trying again may work."""


def client_id_and_secret() -> tuple[str, str]:
    return settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY, settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET


def token_url(credentials: GoogleCredentials) -> str:
    """``GOOGLE_OAUTH_TOKEN_URL`` when set, else the credentials' own (Google's)."""
    return getattr(settings, "GOOGLE_OAUTH_TOKEN_URL", "") or credentials.token_uri


def revoke_url() -> str:
    return getattr(settings, "GOOGLE_OAUTH_REVOKE_URL", "") or REVOKE_URI


def _refresh_request(credentials: GoogleCredentials) -> dict[str, str]:
    client_id, client_secret = client_id_and_secret()
    return {
        "grant_type": "refresh_token",
        "refresh_token": credentials.refresh_token or "",
        # The configured client wins: a rotated client secret must not strand users.
        "client_id": client_id or credentials.client_id,
        "client_secret": client_secret or credentials.client_secret,
    }


def _refreshed(
    email: str, credentials: GoogleCredentials, status: int, body: Any
) -> GoogleCredentials:
    """Interpret the token endpoint's answer; raise the exception a caller can act on."""
    error = body.get("error") if isinstance(body, dict) else None
    if status == 200 and isinstance(body, dict) and body.get("access_token"):
        return credentials.updated_from(body)
    if error == "invalid_grant":
        raise SignInRequired(email, "Google refused the refresh token (invalid_grant)")
    if error in ("invalid_client", "unauthorized_client"):
        raise RefreshFailed(
            f"Google refused this OAuth client ({error}): check GOOGLE_OAUTH2_KEY and "
            "GOOGLE_OAUTH2_SECRET."
        )
    raise RefreshFailed(f"Google's token endpoint answered {status}: {error or 'no token'}")


def _json_or_none(response: requests.Response | httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def refresh(email: str, credentials: GoogleCredentials) -> GoogleCredentials:
    try:
        response = requests.post(
            token_url(credentials), data=_refresh_request(credentials), timeout=HTTP_TIMEOUT
        )
    except requests.RequestException as exc:
        raise RefreshFailed(f"Could not reach Google to refresh the token: {exc}") from exc
    return _refreshed(email, credentials, response.status_code, _json_or_none(response))


async def arefresh(email: str, credentials: GoogleCredentials) -> GoogleCredentials:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            response = await client.post(token_url(credentials), data=_refresh_request(credentials))
    except httpx.HTTPError as exc:
        raise RefreshFailed(f"Could not reach Google to refresh the token: {exc}") from exc
    return _refreshed(email, credentials, response.status_code, _json_or_none(response))


def revoke_token(token: str) -> bool:
    """Revoke ``token`` (a refresh token revokes the whole grant). True when Google
    confirms, or says the token is already invalid."""
    try:
        response = requests.post(revoke_url(), data={"token": token}, timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        logger.warning("Could not reach Google to revoke a token: %s", exc)
        return False
    return response.status_code == 200 or (
        response.status_code == 400
        and (_json_or_none(response) or {}).get("error") == "invalid_token"
    )


async def arevoke_token(token: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            response = await client.post(revoke_url(), data={"token": token})
    except httpx.HTTPError as exc:
        logger.warning("Could not reach Google to revoke a token: %s", exc)
        return False
    return response.status_code == 200 or (
        response.status_code == 400
        and (_json_or_none(response) or {}).get("error") == "invalid_token"
    )
