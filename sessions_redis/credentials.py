"""Google OAuth credentials in ``credentials:<email>`` (db 0), encrypted at rest.

The value is JSON in the seed's shape, with the secrets encrypted (see
:mod:`sessions_redis.encryption`)::

    {"token": "<fernet>", "refresh_token": "<fernet>", "token_uri": "https://oauth2.googleapis.com/token",
     "client_id": "....apps.googleusercontent.com", "client_secret": "<fernet>",
     "scopes": ["openid", ".../auth/calendar.events", ...], "expiry": "2026-03-08T11:00:00Z",
     "encrypted": ["token", "refresh_token", "client_secret"]}

so ``redis-cli GET`` never shows a usable token. The key's TTL is the session TTL,
renewed whenever the credentials are read (GETEX): they follow the user's sessions.

The session record's ``credentials`` field (the seed's schema) holds a *reference*,
not a copy: ``{"ref": "credentials:<email>", "token_uri", "client_id", "scopes"}``
(:meth:`GoogleCredentials.reference`). One copy of the secrets means a refresh is
written once and seen by every session, sign-out everywhere has one key to delete,
and no session record ever carries a token, encrypted or not.

Tools call :func:`google_credentials` / :func:`agoogle_credentials`. The hot path is
one round trip (GETEX). When the access token is expired (or expires within a
minute), one caller per user refreshes it under a short Redis lock (``SET NX PX``
with a random token, released by compare-and-delete: redis-py's ``Lock``); the
others poll, re-reading the credentials until the new token is there, so N racing
requests make one call to Google. A refresh token Google no longer accepts
(``invalid_grant``: revoked, expired, password changed) deletes the credentials and
raises :class:`SignInRequired`, which the UI shows as "please sign in again".

HTTP: ``requests`` for the sync path (social-auth already uses it), ``httpx`` for the
async path, so neither twin blocks the other's world.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import requests
from django.conf import settings
from redis.exceptions import LockError

from agenticpal.redis_clients import get_async_client, get_client
from sessions_redis import encryption, keys

logger = logging.getLogger("agenticpal.credentials")

TOKEN_URI = "https://oauth2.googleapis.com/token"
REVOKE_URI = "https://oauth2.googleapis.com/revoke"
SECRET_FIELDS = ("token", "refresh_token", "client_secret")
EXPIRY_LEEWAY = timedelta(seconds=60)  # refresh a little early: a token must outlive the call
REFRESH_LOCK_SECONDS = 15  # > HTTP_TIMEOUT: the holder finishes before the lock expires
REFRESH_WAIT_SECONDS = 20  # how long a waiter polls before giving up
REFRESH_POLL_SECONDS = 0.05
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


class CredentialsUnreadable(SignInRequired):
    """Stored credentials were encrypted with a key that is no longer configured.

    They are left in place (a configuration mistake must not destroy data): put the old
    key back in ``CREDENTIALS_ENCRYPTION_KEY``, or let the user sign in again.
    """


class RefreshFailed(Exception):
    """Google did not refresh the token for a reason that is not the user's (network,
    5xx, a wrong client secret). The credentials are kept; trying again may work."""


@dataclass(frozen=True)
class GoogleCredentials:
    """Decrypted credentials, the shape google-auth's ``Credentials`` takes."""

    token: str
    refresh_token: str | None
    client_id: str
    client_secret: str
    scopes: list[str] = field(default_factory=list)
    expiry: datetime | None = None
    token_uri: str = TOKEN_URI

    @property
    def expired(self) -> bool:
        return self.expiry is not None and self.expiry - EXPIRY_LEEWAY <= datetime.now(UTC)

    def authorized_user_info(self) -> dict[str, Any]:
        """For ``google.oauth2.credentials.Credentials.from_authorized_user_info``."""
        info = {
            "token": self.token,
            "refresh_token": self.refresh_token,
            "token_uri": self.token_uri,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scopes": list(self.scopes),
        }
        if self.expiry is not None:
            info["expiry"] = self.expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        return info

    def to_json(self) -> bytes:
        data = self.authorized_user_info()
        for name in SECRET_FIELDS:
            if data[name] is not None:
                data[name] = encryption.encrypt(data[name])
        data["encrypted"] = list(SECRET_FIELDS)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> GoogleCredentials:
        """Raises ``encryption.InvalidToken`` when no configured key decrypts a secret."""
        data = json.loads(raw)
        for name in data.get("encrypted", ()):
            if data.get(name) is not None:
                data[name] = encryption.decrypt(data[name])
        expiry = data.get("expiry")
        return cls(
            token=data["token"],
            refresh_token=data.get("refresh_token"),
            client_id=data.get("client_id", ""),
            client_secret=data.get("client_secret") or "",
            scopes=list(data.get("scopes") or []),
            expiry=datetime.fromisoformat(expiry.replace("Z", "+00:00")) if expiry else None,
            token_uri=data.get("token_uri") or TOKEN_URI,
        )

    def updated_from(self, response: dict[str, Any]) -> GoogleCredentials:
        """These credentials after a token response (refresh or a new sign-in)."""
        expires_in = response.get("expires_in")
        scope = response.get("scope")
        return replace(
            self,
            token=response["access_token"],
            # Google sends a refresh token only on consent; keep the one we have.
            refresh_token=response.get("refresh_token") or self.refresh_token,
            scopes=scope.split() if isinstance(scope, str) and scope else self.scopes,
            expiry=(
                datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=int(expires_in))
                if expires_in
                else None
            ),
        )

    def reference(self, email: str) -> dict[str, Any]:
        """What a session record keeps: where the credentials are, and no secret."""
        return {
            "ref": keys.credentials_key(email),
            "token_uri": self.token_uri,
            "client_id": self.client_id,
            "scopes": list(self.scopes),
        }


def email_of(user: Any) -> str:
    """``user`` may be a User (its ``email``) or the email itself."""
    email = user if isinstance(user, str) else getattr(user, "email", "")
    if not email:
        raise SignInRequired(str(user), "the user has no email address")
    return email


def client_id_and_secret() -> tuple[str, str]:
    return settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY, settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET


def from_token_response(
    response: dict[str, Any], previous: GoogleCredentials | None = None
) -> GoogleCredentials:
    """Credentials from the token endpoint's answer at sign-in."""
    client_id, client_secret = client_id_and_secret()
    base = previous or GoogleCredentials(
        token="", refresh_token=None, client_id="", client_secret=""
    )
    return replace(base, client_id=client_id, client_secret=client_secret).updated_from(response)


def _ttl() -> int:
    return settings.SESSION_TTL_SECONDS


def _decode(email: str, raw: bytes | None) -> GoogleCredentials | None:
    if raw is None:
        return None
    try:
        return GoogleCredentials.from_json(raw)
    except encryption.InvalidToken:
        logger.error(
            "Credentials of %s cannot be decrypted with CREDENTIALS_ENCRYPTION_KEY; "
            "restore the key they were written with, or have the user sign in again.",
            email,
        )
        raise CredentialsUnreadable(email, "encrypted with a key that is not configured") from None


# --- storage: sync and async side by side ----------------------------------------


def save_credentials(email: str, credentials: GoogleCredentials) -> None:
    get_client().set(keys.credentials_key(email), credentials.to_json(), ex=_ttl())


async def asave_credentials(email: str, credentials: GoogleCredentials) -> None:
    await get_async_client().set(keys.credentials_key(email), credentials.to_json(), ex=_ttl())


def load_credentials(email: str) -> GoogleCredentials | None:
    """The stored credentials (their TTL renewed), or None. One round trip (GETEX)."""
    return _decode(email, get_client().getex(keys.credentials_key(email), ex=_ttl()))


async def aload_credentials(email: str) -> GoogleCredentials | None:
    raw = await get_async_client().getex(keys.credentials_key(email), ex=_ttl())
    return _decode(email, raw)


def delete_credentials(email: str) -> bool:
    return bool(get_client().delete(keys.credentials_key(email)))


async def adelete_credentials(email: str) -> bool:
    return bool(await get_async_client().delete(keys.credentials_key(email)))


# --- talking to Google -----------------------------------------------------------


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


def _refresh_with_google(email: str, credentials: GoogleCredentials) -> GoogleCredentials:
    try:
        response = requests.post(
            credentials.token_uri, data=_refresh_request(credentials), timeout=HTTP_TIMEOUT
        )
    except requests.RequestException as exc:
        raise RefreshFailed(f"Could not reach Google to refresh the token: {exc}") from exc
    return _refreshed(email, credentials, response.status_code, _json_or_none(response))


async def _arefresh_with_google(email: str, credentials: GoogleCredentials) -> GoogleCredentials:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            response = await client.post(credentials.token_uri, data=_refresh_request(credentials))
    except httpx.HTTPError as exc:
        raise RefreshFailed(f"Could not reach Google to refresh the token: {exc}") from exc
    return _refreshed(email, credentials, response.status_code, _json_or_none(response))


def revoke_token(token: str) -> bool:
    """Revoke ``token`` (a refresh token revokes the whole grant). True when Google
    confirms, or says the token is already invalid."""
    try:
        response = requests.post(REVOKE_URI, data={"token": token}, timeout=HTTP_TIMEOUT)
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
            response = await client.post(REVOKE_URI, data={"token": token})
    except httpx.HTTPError as exc:
        logger.warning("Could not reach Google to revoke a token: %s", exc)
        return False
    return response.status_code == 200 or (
        response.status_code == 400
        and (_json_or_none(response) or {}).get("error") == "invalid_token"
    )


# --- the API tools call ------------------------------------------------------------


def _refresh_lock_name(email: str) -> str:
    return keys.lock_key(f"refresh:{keys.credentials_key(email)}")


def google_credentials(user: Any) -> GoogleCredentials:
    """Valid Google credentials for ``user`` (a User or an email), refreshed if needed.

    Raises :class:`SignInRequired` when there are none or Google revoked them, and
    :class:`RefreshFailed` when Google could not be asked (credentials kept).
    """
    email = email_of(user)
    credentials = load_credentials(email)
    if credentials is not None and not credentials.expired:
        return credentials
    lock = get_client().lock(_refresh_lock_name(email), timeout=REFRESH_LOCK_SECONDS)
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    while True:
        if credentials is None:
            raise SignInRequired(email, "no Google credentials stored")
        if not credentials.expired:
            return credentials
        if lock.acquire(blocking=False):
            try:
                credentials = load_credentials(email)  # someone may have just refreshed
                if credentials is None or not credentials.expired:
                    continue
                return _refresh_and_store(email, credentials)
            finally:
                _release(lock)
        if time.monotonic() > deadline:
            raise RefreshFailed(f"Timed out waiting for another request to refresh {email}'s token")
        time.sleep(REFRESH_POLL_SECONDS)
        credentials = load_credentials(email)


async def agoogle_credentials(user: Any) -> GoogleCredentials:
    """The async twin of :func:`google_credentials`."""
    email = email_of(user)
    credentials = await aload_credentials(email)
    if credentials is not None and not credentials.expired:
        return credentials
    lock = get_async_client().lock(_refresh_lock_name(email), timeout=REFRESH_LOCK_SECONDS)
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    while True:
        if credentials is None:
            raise SignInRequired(email, "no Google credentials stored")
        if not credentials.expired:
            return credentials
        if await lock.acquire(blocking=False):
            try:
                credentials = await aload_credentials(email)
                if credentials is None or not credentials.expired:
                    continue
                return await _arefresh_and_store(email, credentials)
            finally:
                await _arelease(lock)
        if time.monotonic() > deadline:
            raise RefreshFailed(f"Timed out waiting for another request to refresh {email}'s token")
        await asyncio.sleep(REFRESH_POLL_SECONDS)
        credentials = await aload_credentials(email)


def _refresh_and_store(email: str, credentials: GoogleCredentials) -> GoogleCredentials:
    if not credentials.refresh_token:
        delete_credentials(email)
        raise SignInRequired(email, "the access token expired and there is no refresh token")
    try:
        fresh = _refresh_with_google(email, credentials)
    except SignInRequired:
        delete_credentials(email)
        logger.info("Google revoked the refresh token of %s; credentials deleted", email)
        raise
    save_credentials(email, fresh)
    return fresh


async def _arefresh_and_store(email: str, credentials: GoogleCredentials) -> GoogleCredentials:
    if not credentials.refresh_token:
        await adelete_credentials(email)
        raise SignInRequired(email, "the access token expired and there is no refresh token")
    try:
        fresh = await _arefresh_with_google(email, credentials)
    except SignInRequired:
        await adelete_credentials(email)
        logger.info("Google revoked the refresh token of %s; credentials deleted", email)
        raise
    await asave_credentials(email, fresh)
    return fresh


def _release(lock) -> None:
    # LockError: it expired while we worked and someone else may hold it now; fine.
    with contextlib.suppress(LockError):
        lock.release()


async def _arelease(lock) -> None:
    with contextlib.suppress(LockError):
        await lock.release()


def revoke_and_delete(email: str) -> bool:
    """Sign-out everywhere: revoke the grant at Google and delete the credentials.

    Returns whether Google confirmed the revocation (False: unreachable; the local
    credentials are deleted either way).
    """
    try:
        credentials = load_credentials(email)
    except CredentialsUnreadable:
        credentials = None
    revoked = True
    if credentials is not None:
        revoked = revoke_token(credentials.refresh_token or credentials.token)
    delete_credentials(email)
    return revoked


async def arevoke_and_delete(email: str) -> bool:
    try:
        credentials = await aload_credentials(email)
    except CredentialsUnreadable:
        credentials = None
    revoked = True
    if credentials is not None:
        revoked = await arevoke_token(credentials.refresh_token or credentials.token)
    await adelete_credentials(email)
    return revoked
