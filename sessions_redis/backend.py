"""Django's ``SESSION_ENGINE``: sessions as the seed's JSON records in Redis db 0.

``SESSION_ENGINE = "sessions_redis.backend"``; :class:`SessionStore` is shaped like
Django's ``contrib/sessions/backends/cache.py``, but a read is one round trip that also
renews the TTL (no ``SESSION_SAVE_EVERY_REQUEST`` needed) and a save is one
compare-and-set that merges a concurrent write instead of losing it. An expiry in the
past ends the session at once (the save deletes the record). A malformed cookie or
record, or a key of another type, never causes a 500; Redis errors propagate unchanged
so the middleware answers 503. Session data must be JSON-serialisable. Log lines show a
session id's prefix only. Details: the README's "Sessions" section.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from agenticpal import redis_keys as keys
from agenticpal.log_redaction import short_session_id
from agenticpal.redis_clients import get_async_client, get_client
from sessions_redis import store
from sessions_redis.record import InvalidRecord, SessionRecord, new_session_id, timestamp

logger = logging.getLogger("sessions_redis")
security_logger = logging.getLogger("django.security.SuspiciousSession")

# secrets.token_urlsafe(32): 32 bytes -> 43 characters of the URL-safe base64 alphabet.
SESSION_KEY_RE = re.compile(r"[A-Za-z0-9_-]{43}")
CREATE_ATTEMPTS = 10

_UNSET: Any = object()


class SessionStore(SessionBase):
    def __init__(self, session_key: str | None = None) -> None:
        if session_key and not SESSION_KEY_RE.fullmatch(session_key):
            security_logger.warning(
                "Malformed session cookie (%d characters, expected 43 URL-safe ones); "
                "starting a fresh session.",
                len(session_key),
            )
            session_key = None
        super().__init__(session_key)
        self._reset_record()

    def _reset_record(self) -> None:
        self._raw: bytes | None = None  # the value as loaded: the compare-and-set token
        self._record: SessionRecord | None = None
        self._user_email: str | None = _UNSET

    # --- keys ----------------------------------------------------------------

    def _validate_session_key(self, key: str | None) -> bool:
        return bool(key) and SESSION_KEY_RE.fullmatch(key) is not None

    def _get_new_session_key(self) -> str:
        # 256 random bits: a collision is not a practical concern, and create() uses
        # SET-if-absent anyway, so there is no EXISTS round trip first.
        return new_session_id()

    async def _aget_new_session_key(self) -> str:
        return new_session_id()

    def get_session_cookie_age(self) -> int:
        return settings.SESSION_TTL_SECONDS

    @property
    def record(self) -> SessionRecord | None:
        """The stored record as last loaded or saved (``None`` before that)."""
        return self._record

    @property
    def loaded_value(self) -> bytes | None:
        """The stored value as last loaded or created (``None`` before, or after an update,
        a delete or a load that found nothing): what :func:`sessions_redis.store.aupdate`
        may change without reading it again."""
        return self._raw

    def set_user_email(self, email: str | None) -> None:
        """Record who is signed in (called on ``user_logged_in``); saved with the session."""
        self._user_email = email or None
        self.modified = True

    def clear(self) -> None:
        super().clear()
        self._reset_record()

    # --- reading -------------------------------------------------------------

    def _expired(self, record: SessionRecord) -> bool:
        """Whether the record's own expiry (``set_expiry``) has passed."""
        expiry = record.django.get("_session_expiry")
        if not expiry:
            return False
        try:
            return self.get_expiry_age(expiry=expiry) <= 0
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(f"_session_expiry {expiry!r} is not a date or seconds") from exc

    def _loaded(self, raw: bytes | None) -> dict[str, Any]:
        if raw is not None:
            try:
                record = SessionRecord.from_json(raw)
                expired = self._expired(record)
            except InvalidRecord as exc:
                logger.warning(
                    "Session record %s%s is unreadable (%s); treating it as no session.",
                    keys.SESSION_PREFIX,
                    short_session_id(self.session_key),
                    exc,
                )
            else:
                if not expired:
                    self._raw, self._record = raw, record
                    return dict(record.django)
        elif self.session_key is not None:
            # Expired, signed out elsewhere, or never issued (forged): same answer.
            security_logger.info(
                "Session cookie names no stored session (expired, signed out or forged); "
                "starting a fresh session."
            )
        self._session_key = None
        self._raw = self._record = None
        return {}

    def load(self) -> dict[str, Any]:
        return self._loaded(store.touch(self.session_key, client=get_client("sessions")))

    async def aload(self) -> dict[str, Any]:
        return self._loaded(
            await store.atouch(self.session_key, client=get_async_client("sessions"))
        )

    def exists(self, session_key: str | None) -> bool:
        return bool(session_key) and bool(
            get_client("sessions").exists(keys.session_key(session_key))
        )

    async def aexists(self, session_key: str | None) -> bool:
        return bool(session_key) and bool(
            await get_async_client("sessions").exists(keys.session_key(session_key))
        )

    # --- writing -------------------------------------------------------------

    def _new_record(self, data: dict[str, Any]) -> SessionRecord:
        """The record for a new key: a fresh one, or (``cycle_key``) this one, re-keyed."""
        now = timestamp()
        if self._record is None:
            record = SessionRecord(session_id=self.session_key, django=data)
        else:
            record = replace(
                self._record,
                session_id=self.session_key,
                created_at=now,
                last_accessed=now,
                thread_ids=list(self._record.thread_ids),
                extra=dict(self._record.extra),
                django=data,
            )
        if self._user_email is not _UNSET:
            record.user_email = self._user_email
        return record

    def _merge(self, data: dict[str, Any]):
        def change(record: SessionRecord) -> None:
            record.django = data
            if self._user_email is not _UNSET:
                record.user_email = self._user_email

        return change

    def _created(self, status: int, record: SessionRecord, value: bytes) -> None:
        if status != 1:
            raise CreateError
        self._raw, self._record = value, record

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        ttl = int(self.get_expiry_age())
        client = get_client("sessions")
        if ttl <= 0:  # an expiry in the past: the session ends now, no record kept
            self._raw = self._record = None
            if not must_create:  # (a key being created has nothing stored yet)
                store.delete(self.session_key, client=client)
            return None
        if must_create:
            record = self._new_record(data)
            value = record.to_json()
            status, _ = store.write(
                self.session_key,
                value,
                expected=store.CREATE,
                ttl=ttl,
                email=record.user_email,
                client=client,
            )
            return self._created(status, record, value)
        written = store.update(
            self.session_key,
            self._merge(data),
            loaded=self._raw,
            record=self._record if self._raw is not None else None,
            ttl=ttl,
            client=client,
        )
        if written is None:
            raise UpdateError
        self._record, self._raw = written, None  # a second save re-reads first

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)
        ttl = int(await self.aget_expiry_age())
        client = get_async_client("sessions")
        if ttl <= 0:
            self._raw = self._record = None
            if not must_create:
                await store.adelete(self.session_key, client=client)
            return None
        if must_create:
            record = self._new_record(data)
            value = record.to_json()
            status, _ = await store.awrite(
                self.session_key,
                value,
                expected=store.CREATE,
                ttl=ttl,
                email=record.user_email,
                client=client,
            )
            return self._created(status, record, value)
        written = await store.aupdate(
            self.session_key,
            self._merge(data),
            loaded=self._raw,
            record=self._record if self._raw is not None else None,
            ttl=ttl,
            client=client,
        )
        if written is None:
            raise UpdateError
        self._record, self._raw = written, None

    def create(self) -> None:
        for _ in range(CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Could not create a unique session key; is Redis answering writes?")

    async def acreate(self) -> None:
        for _ in range(CREATE_ATTEMPTS):
            self._session_key = await self._aget_new_session_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Could not create a unique session key; is Redis answering writes?")

    def _deleting(self, session_key: str | None) -> str | None:
        if session_key is None or session_key == self.session_key:
            session_key = self.session_key
            self._raw = self._record = None
        return session_key

    def delete(self, session_key: str | None = None) -> None:
        if session_key := self._deleting(session_key):
            store.delete(session_key, client=get_client("sessions"))

    async def adelete(self, session_key: str | None = None) -> None:
        if session_key := self._deleting(session_key):
            await store.adelete(session_key, client=get_async_client("sessions"))

    @classmethod
    def clear_expired(cls) -> None:
        """Redis expires the records itself; this prunes their ids from the user indexes."""
        store.prune_indexes(client=get_client("sessions"))

    @classmethod
    async def aclear_expired(cls) -> None:
        await store.aprune_indexes(client=get_async_client("sessions"))
