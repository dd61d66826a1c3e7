"""``SessionManager``: the seed's async session API, on the same records as Django's.

The seed's code (``api.session.SessionManager``) is what the sign-in flow, the
``redis_check`` command and scripts use. It stores exactly what the Django
``SessionStore`` stores (:class:`sessions_redis.record.SessionRecord`, through
:mod:`sessions_redis.store`), so a session made here is a valid Django session and
the other way round.

``SessionManager()`` uses the project's client for db 0 (``agenticpal.redis_clients``);
``SessionManager(redis_url)`` gets its own client from
:func:`agenticpal.redis_clients.async_client_for_url` and closes it in ``disconnect()``.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from agenticpal import redis_keys as keys
from agenticpal.log_redaction import short_session_id
from agenticpal.redis_clients import UNAVAILABLE_ERRORS, async_client_for_url, get_async_client
from sessions_redis import store
from sessions_redis.record import SECRET_FIELDS, InvalidRecord, SessionRecord, new_session_id

logger = logging.getLogger("sessions_redis")


class SessionManager:
    def __init__(self, redis_url: str | None = None) -> None:
        self.redis_url = redis_url
        self._own_client: aioredis.Redis | None = None
        self.last_error: BaseException | None = None  # why ping() said False

    @property
    def client(self) -> aioredis.Redis:
        if self.redis_url is None:
            return get_async_client("sessions")
        if self._own_client is None:
            self._own_client = async_client_for_url(self.redis_url)
        return self._own_client

    async def ping(self) -> bool:
        """``True`` if Redis answers; otherwise ``False`` and ``last_error`` says why."""
        try:
            return bool(await self.client.ping())
        except UNAVAILABLE_ERRORS as exc:
            self.last_error = exc
            return False

    async def create_session(
        self, user_email: str, credentials: dict[str, Any] | None = None
    ) -> SessionRecord:
        """A new session for ``user_email`` with the default TTL (``SESSION_TTL_SECONDS``)."""
        _refuse_secrets(credentials)
        for _ in range(10):
            record = SessionRecord(
                session_id=new_session_id(), user_email=user_email, credentials=credentials
            )
            status, _ = await store.awrite(
                record.session_id,
                record.to_json(),
                expected=store.CREATE,
                ttl=store.default_ttl(),
                email=user_email,
                client=self.client,
            )
            if status == 1:
                return record
        raise RuntimeError("Could not create a unique session id.")

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session (TTL renewed, ``last_accessed`` refreshed), or ``None``."""
        raw = await store.atouch(session_id, client=self.client)
        if raw is None:
            return None
        try:
            return SessionRecord.from_json(raw)
        except InvalidRecord as exc:
            logger.warning(
                "Session record %s%s is unreadable (%s); treating it as no session.",
                keys.SESSION_PREFIX,
                short_session_id(session_id),
                exc,
            )
            return None

    async def delete_session(self, session_id: str) -> bool:
        return await store.adelete(session_id, client=self.client)

    async def add_thread(self, session_id: str, thread_id: str) -> bool:
        return await store.aadd_thread_id(session_id, thread_id, client=self.client)

    async def set_credentials(self, session_id: str, credentials: dict[str, Any] | None) -> bool:
        """Replace the session's ``credentials`` with a reference (no secrets, see below)."""
        _refuse_secrets(credentials)

        def change(record: SessionRecord) -> None:
            record.credentials = credentials

        return await store.aupdate(session_id, change, client=self.client) is not None

    async def list_sessions_for(self, user_email: str) -> list[SessionRecord]:
        """Every live session of one user, most recently used first."""
        return await store.asessions_for(user_email, client=self.client)

    async def delete_all_for(self, user_email: str) -> int:
        """Sign out everywhere: delete every session of one user; returns how many."""
        return await store.adelete_all_for(user_email, client=self.client)

    async def disconnect(self) -> None:
        """Close the client this manager built (the shared project client stays open)."""
        if self._own_client is not None:
            await self._own_client.aclose()
            self._own_client = None


def _refuse_secrets(credentials: dict[str, Any] | None) -> None:
    """A session record never holds a usable token: it keeps a *reference* to the
    encrypted ``credentials:<email>`` record (``GoogleCredentials.reference()``)."""
    leaked = sorted(SECRET_FIELDS & set(credentials or {}))
    if leaked:
        raise ValueError(
            f"Session records keep a reference to the user's credentials, not secrets "
            f"({', '.join(leaked)}): store them with workspace.credentials and pass "
            "GoogleCredentials.reference(email) here."
        )
