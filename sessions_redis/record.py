"""The session record: the one JSON layout of ``session:<id>`` (the seed's schema).

Everything that reads or writes a session (the Django ``SessionStore``, the seed's
``SessionManager``, the thread API) goes through :class:`SessionRecord`, so there is
exactly one copy of the JSON logic. Key guarantee: the six seed fields come first, in
order (the Lua in :mod:`sessions_redis.store` relies on it), Django's data sits under
``django``, and unknown fields are written back unchanged. Layout, timestamp format and
encoding (orjson): the README's "Sessions" section.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

SEED_FIELDS = (
    "session_id",
    "user_email",
    "created_at",
    "last_accessed",
    "credentials",
    "thread_ids",
)
DJANGO_FIELD = "django"
# OAuth secrets by name: a record never holds them (its ``credentials`` is a reference),
# Google's token response keeps them out of SQL, and the credentials store encrypts them.
SECRET_FIELDS = frozenset({"token", "access_token", "refresh_token", "id_token", "client_secret"})
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class InvalidRecord(ValueError):
    """A stored value is not a session record (bad JSON, a missing or mistyped field)."""


def new_session_id() -> str:
    """The seed's session id: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as the record's ISO-8601 UTC string, e.g. ``2026-03-08T10:00:00Z``."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def timestamp_before(seconds: float) -> str:
    """The timestamp ``seconds`` ago (what "older than the resolution" compares against)."""
    return timestamp(datetime.now(UTC) - timedelta(seconds=seconds))


@dataclass
class SessionRecord:
    session_id: str
    user_email: str | None = None
    created_at: str = field(default_factory=timestamp)
    last_accessed: str = field(default_factory=timestamp)
    credentials: dict[str, Any] | None = None
    thread_ids: list[str] = field(default_factory=list)
    django: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "session_id": self.session_id,
            "user_email": self.user_email,
            "created_at": self.created_at,
            "last_accessed": self.last_accessed,
            "credentials": self.credentials,
            "thread_ids": self.thread_ids,
            DJANGO_FIELD: self.django,
        }
        for name, value in self.extra.items():
            data.setdefault(name, value)
        return data

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON, seed fields first (see the module docstring for why)."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_json(cls, raw: bytes | str) -> SessionRecord:
        """Parse a stored value; :class:`InvalidRecord` says exactly what is wrong."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRecord(f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InvalidRecord(f"expected a JSON object, got {type(data).__name__}")
        missing = [name for name in SEED_FIELDS if name not in data]
        if missing:
            raise InvalidRecord(f"missing field(s): {', '.join(missing)}")
        record = cls(
            session_id=data.pop("session_id"),
            user_email=data.pop("user_email"),
            created_at=data.pop("created_at"),
            last_accessed=data.pop("last_accessed"),
            credentials=data.pop("credentials"),
            thread_ids=data.pop("thread_ids"),
            django=data.pop(DJANGO_FIELD, None) or {},
            extra=data,
        )
        record._check_types()
        return record

    def _check_types(self) -> None:
        problems = []
        if not isinstance(self.session_id, str) or not self.session_id:
            problems.append("session_id must be a non-empty string")
        if self.user_email is not None and not isinstance(self.user_email, str):
            problems.append("user_email must be a string or null")
        for name in ("created_at", "last_accessed"):
            if not isinstance(getattr(self, name), str):
                problems.append(f"{name} must be a string")
        if self.credentials is not None and not isinstance(self.credentials, dict):
            problems.append("credentials must be an object or null")
        if not isinstance(self.thread_ids, list) or not all(
            isinstance(t, str) for t in self.thread_ids
        ):
            problems.append("thread_ids must be a list of strings")
        if not isinstance(self.django, dict):
            problems.append(f"{DJANGO_FIELD} must be an object")
        if problems:
            raise InvalidRecord("; ".join(problems))
