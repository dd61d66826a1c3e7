"""Google OAuth credentials in ``credentials:<email>`` (db 0), encrypted at rest.

The value is JSON in the seed's shape with the secrets Fernet-encrypted
(:mod:`workspace.encryption`), so ``redis-cli GET`` never shows a usable token; its
TTL follows the user's sessions (renewed on every read, GETEX). Session records keep
a reference (:meth:`GoogleCredentials.reference`), never a copy.

:func:`agoogle_credentials` is what the Google client calls: one round trip when the
token is fresh; when it is expired (or was just refused with a 401), one caller per
user refreshes it under a short Redis lock and the others wait for the new token, so
N racing requests make one call to Google. ``invalid_grant`` deletes the credentials
and raises :class:`SignInRequired`. The README's "Google credentials" section has more.
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

from django.conf import settings
from redis.exceptions import LockError

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import get_async_client, get_client
from sessions_redis.record import SECRET_FIELDS
from workspace import encryption, oauth
from workspace.oauth import TOKEN_URI, RefreshFailed, SignInRequired

logger = logging.getLogger("agenticpal.credentials")

EXPIRY_LEEWAY = timedelta(seconds=60)  # refresh a little early: a token must outlive the call
REFRESH_WAIT_SECONDS = 20  # how long a waiter polls before giving up
REFRESH_POLL_SECONDS = 0.05


class CredentialsUnreadable(SignInRequired):
    """Stored credentials were encrypted with a key that is no longer configured.

    They are left in place (a configuration mistake must not destroy data): put the old
    key back in ``CREDENTIALS_ENCRYPTION_KEY``, or let the user sign in again.
    """


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
    def is_demo(self) -> bool:
        """Credentials of the demo workspace (workspace.demo): nothing to revoke at Google."""
        return self.token.startswith(DEMO_TOKEN_PREFIX)

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
        for name in ENCRYPTED_FIELDS:
            if data[name] is not None:
                data[name] = encryption.encrypt(data[name])
        data["encrypted"] = list(ENCRYPTED_FIELDS)
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


DEMO_TOKEN_PREFIX = "demo."  # the local emulator's tokens (workspace.demo)
DEMO_CLIENT_ID = "demo"
# The secrets of this shape, encrypted at rest (the rest is readable with redis-cli).
ENCRYPTED_FIELDS = tuple(
    name for name in ("token", "refresh_token", "client_secret") if name in SECRET_FIELDS
)


def email_of(user: Any) -> str:
    """``user`` may be a User (its ``email``) or the email itself."""
    email = user if isinstance(user, str) else getattr(user, "email", "")
    if not email:
        raise SignInRequired(str(user), "the user has no email address")
    return email


def from_token_response(
    response: dict[str, Any], previous: GoogleCredentials | None = None
) -> GoogleCredentials:
    """Credentials from the token endpoint's answer at sign-in."""
    client_id, client_secret = oauth.client_id_and_secret()
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


def load_or_none(email: str, *, client=None) -> GoogleCredentials | None:
    """The stored credentials, or None when there are none or no configured key reads them."""
    try:
        return load_credentials(email, client=client)
    except CredentialsUnreadable:
        return None


async def aload_or_none(email: str, *, client=None) -> GoogleCredentials | None:
    try:
        return await aload_credentials(email, client=client)
    except CredentialsUnreadable:
        return None


def _kind(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        client_id = json.loads(raw).get("client_id")
    except (ValueError, AttributeError):
        return "google"  # unreadable: reported where the credentials are used
    return "demo" if client_id == DEMO_CLIENT_ID else "google"


def connection_kind(email: str, *, client=None) -> str | None:
    """``"demo"``, ``"google"`` or None (no credentials), without decrypting anything."""
    return _kind((client or get_client()).getex(keys.credentials_key(email), ex=_ttl()))


async def aconnection_kind(email: str, *, client=None) -> str | None:
    client = client or get_async_client()
    return _kind(await client.getex(keys.credentials_key(email), ex=_ttl()))


def save_credentials(email: str, credentials: GoogleCredentials, *, client=None) -> None:
    (client or get_client()).set(keys.credentials_key(email), credentials.to_json(), ex=_ttl())


async def asave_credentials(email: str, credentials: GoogleCredentials, *, client=None) -> None:
    await (client or get_async_client()).set(
        keys.credentials_key(email), credentials.to_json(), ex=_ttl()
    )


def load_credentials(email: str, *, client=None) -> GoogleCredentials | None:
    """The stored credentials (their TTL renewed), or None. One round trip (GETEX)."""
    return _decode(email, (client or get_client()).getex(keys.credentials_key(email), ex=_ttl()))


async def aload_credentials(email: str, *, client=None) -> GoogleCredentials | None:
    raw = await (client or get_async_client()).getex(keys.credentials_key(email), ex=_ttl())
    return _decode(email, raw)


def delete_credentials(email: str, *, client=None) -> bool:
    return bool((client or get_client()).delete(keys.credentials_key(email)))


async def adelete_credentials(email: str, *, client=None) -> bool:
    return bool(await (client or get_async_client()).delete(keys.credentials_key(email)))


# --- the API tools call ------------------------------------------------------------


def _usable(credentials: GoogleCredentials, stale_token: str | None) -> bool:
    return not credentials.expired and credentials.token != stale_token


def google_credentials(user: Any, *, stale_token: str | None = None) -> GoogleCredentials:
    """Valid Google credentials for ``user`` (a User or an email), refreshed if needed.

    Raises :class:`SignInRequired` when there are none or Google revoked them, and
    :class:`RefreshFailed` when Google could not be asked (credentials kept).
    """
    email = email_of(user)
    credentials = load_credentials(email)
    if credentials is not None and _usable(credentials, stale_token):
        return credentials
    lock = get_client().lock(keys.refresh_lock_key(email), timeout=keys.REFRESH_LOCK_SECONDS)
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    while True:
        if credentials is None:
            raise SignInRequired(email, "no Google credentials stored")
        if _usable(credentials, stale_token):
            return credentials
        if lock.acquire(blocking=False):
            try:
                credentials = load_credentials(email)  # someone may have just refreshed
                if credentials is None or _usable(credentials, stale_token):
                    continue
                return _refresh_and_store(email, credentials)
            finally:
                _release(lock)
        if time.monotonic() > deadline:
            raise RefreshFailed(f"Timed out waiting for another request to refresh {email}'s token")
        time.sleep(REFRESH_POLL_SECONDS)
        credentials = load_credentials(email)


async def agoogle_credentials(user: Any, *, stale_token: str | None = None) -> GoogleCredentials:
    """The async twin of :func:`google_credentials`."""
    email = email_of(user)
    credentials = await aload_credentials(email)
    if credentials is not None and _usable(credentials, stale_token):
        return credentials
    lock = get_async_client().lock(keys.refresh_lock_key(email), timeout=keys.REFRESH_LOCK_SECONDS)
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    while True:
        if credentials is None:
            raise SignInRequired(email, "no Google credentials stored")
        if _usable(credentials, stale_token):
            return credentials
        if await lock.acquire(blocking=False):
            try:
                credentials = await aload_credentials(email)
                if credentials is None or _usable(credentials, stale_token):
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
        fresh = oauth.refresh(email, credentials)
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
        fresh = await oauth.arefresh(email, credentials)
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
    credentials = load_or_none(email)
    revoked = True
    if credentials is not None and not credentials.is_demo:
        revoked = oauth.revoke_token(credentials.refresh_token or credentials.token)
    delete_credentials(email)
    return revoked


async def arevoke_and_delete(email: str) -> bool:
    credentials = await aload_or_none(email)
    revoked = True
    if credentials is not None and not credentials.is_demo:
        revoked = await oauth.arevoke_token(credentials.refresh_token or credentials.token)
    await adelete_credentials(email)
    return revoked
