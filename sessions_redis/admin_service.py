"""What an operator can see and do with sessions in Redis db 0.

Shared by the admin pages (:mod:`sessions_redis.admin_views`) and the ``sessions``
management command, so both show the same rows and act the same way:
:func:`list_sessions` (``SCAN``, never ``KEYS``), :func:`search_sessions`,
:func:`session_detail`, :func:`delete_session`, :func:`sign_out_everywhere`. Key
guarantees: looking never renews a session's TTL, and :func:`redact` removes every
secret before a record is shown. See the README's "Operating: the admin and
maintenance commands" section.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from agenticpal import redis_keys as keys
from agenticpal.redis_admin import (
    DEFAULT_PAGE_SIZE,
    format_duration,
    parse_time,
    scan_page,
    ttl_seconds,
    values_and_ttls,
)
from agenticpal.redis_clients import get_client
from sessions_redis import store
from sessions_redis.record import SECRET_FIELDS, InvalidRecord, SessionRecord

SHORT_ID_LENGTH = 10
MIN_PREFIX_LENGTH = 4

REDACTED = "[redacted]"
# Key names whose values are secrets, wherever they appear in a record.
SECRET_KEY_PATTERN = re.compile(
    r"token|secret|password|passwd|pwd|hash|api[_-]?key|private|signature|cookie|authorization|code_verifier",
    re.IGNORECASE,
)
# Names that match the pattern above but are not secret.
NOT_SECRET_KEYS = frozenset({"token_uri", "token_type", "scopes", "expiry", "client_id"})
# Values that are secrets whatever their key: Google access/refresh tokens, Fernet tokens.
SECRET_VALUE_PATTERN = re.compile(r"^(ya29\.|1//|gAAAAA)")
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")


class SessionNotFound(LookupError):
    """No live session matches what was asked for."""


class AmbiguousSession(LookupError):
    """A session id prefix matches more than one session."""


# --- rows --------------------------------------------------------------------------


def short_id(session_id: str) -> str:
    """The first characters of a session id: enough to tell sessions apart, too few to use."""
    return session_id[:SHORT_ID_LENGTH]


@dataclass(frozen=True)
class SessionRow:
    """One session as the list shows it. ``ttl_seconds`` is None when the key never expires."""

    session_id: str
    user_email: str | None
    created_at: datetime | None
    last_accessed: datetime | None
    ttl_seconds: int | None
    thread_count: int
    problem: str = ""  # why the record could not be read, when it could not

    @property
    def short_id(self) -> str:
        return short_id(self.session_id)

    @property
    def ttl_text(self) -> str:
        return format_duration(self.ttl_seconds)


def _row(session_id: str, raw: bytes, pttl: int) -> SessionRow:
    ttl = ttl_seconds(pttl)
    try:
        record = SessionRecord.from_json(raw)
    except InvalidRecord as exc:
        return SessionRow(session_id, None, None, None, ttl, 0, problem=str(exc))
    return SessionRow(
        session_id=session_id,
        user_email=record.user_email,
        created_at=parse_time(record.created_at),
        last_accessed=parse_time(record.last_accessed),
        ttl_seconds=ttl,
        thread_count=len(record.thread_ids),
    )


def _fetch_rows(client: redis.Redis, session_ids: Iterable[str]) -> list[SessionRow]:
    """Records and TTLs of ``session_ids``; sessions gone meanwhile are skipped."""
    return [_row(*found) for found in values_and_ttls(client, session_ids, keys.session_key)]


def _session_id_of(key: bytes) -> str:
    return key.decode()[len(keys.SESSION_PREFIX) :]


# --- listing and finding -------------------------------------------------------------


@dataclass(frozen=True)
class SessionPage:
    rows: list[SessionRow]
    cursor: int  # the SCAN cursor this page started from (0 = the first page)
    next_cursor: int  # where the next page starts; 0 when this is the last page

    @property
    def is_last(self) -> bool:
        return self.next_cursor == 0


def list_sessions(
    cursor: int = 0, page_size: int = DEFAULT_PAGE_SIZE, client: redis.Redis | None = None
) -> SessionPage:
    """One page of sessions starting at SCAN ``cursor`` (see the module docstring)."""
    client = client or get_client()
    found, next_cursor = scan_page(client, keys.SESSION_PREFIX, cursor, page_size)
    return SessionPage(_fetch_rows(client, found), int(cursor), next_cursor)


def _email_variants(email: str) -> list[str]:
    email = email.strip()
    return list(dict.fromkeys([email, email.lower()]))


def sessions_for_email(email: str, client: redis.Redis | None = None) -> list[SessionRow]:
    """Every live session of ``email`` through the per-user index, most recent first."""
    client = client or get_client()
    index_keys = [keys.user_sessions_key(variant) for variant in _email_variants(email)]
    ids = sorted(member.decode() for member in client.sunion(index_keys))
    rows = _fetch_rows(client, ids)
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(rows, key=lambda row: row.last_accessed or epoch, reverse=True)


def find_session_ids(prefix: str, limit: int = 20, client: redis.Redis | None = None) -> list[str]:
    """Session ids that start with ``prefix`` (SCAN of db 0: for operators, not hot paths)."""
    client = client or get_client()
    if not SESSION_ID_PATTERN.match(prefix):
        return []
    if client.exists(keys.session_key(prefix)):
        return [prefix]
    if len(prefix) < MIN_PREFIX_LENGTH:
        return []
    found = []
    for key in client.scan_iter(match=f"{keys.SESSION_PREFIX}{prefix}*", count=1000):
        found.append(_session_id_of(key))
        if len(found) >= limit:
            break
    return found


def search_sessions(query: str, client: redis.Redis | None = None) -> list[SessionRow]:
    """Sessions of a user (a query with ``@``) or with an id starting with ``query``."""
    client = client or get_client()
    query = query.strip()
    if not query:
        return []
    if "@" in query:
        return sessions_for_email(query, client)
    return _fetch_rows(client, find_session_ids(query, client=client))


def resolve_session_id(id_or_prefix: str, client: redis.Redis | None = None) -> str:
    """The one session id ``id_or_prefix`` names; raises SessionNotFound / AmbiguousSession."""
    matches = find_session_ids(id_or_prefix.strip(), client=client)
    if not matches:
        raise SessionNotFound(
            f"No live session starts with {id_or_prefix!r} (give at least "
            f"{MIN_PREFIX_LENGTH} characters; expired sessions are gone from Redis)."
        )
    if len(matches) > 1:
        shown = ", ".join(short_id(m) for m in matches[:5])
        raise AmbiguousSession(
            f"{id_or_prefix!r} matches {len(matches)} sessions ({shown}...); give more characters."
        )
    return matches[0]


# --- one session ----------------------------------------------------------------------


def redact(value: Any, key: str = "") -> Any:
    """``value`` with every secret replaced by ``[redacted]`` (recursively)."""
    secret_key = key in SECRET_FIELDS or (
        key not in NOT_SECRET_KEYS and SECRET_KEY_PATTERN.search(key)
    )
    if secret_key and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str) and SECRET_VALUE_PATTERN.match(value):
        return REDACTED
    return value


@dataclass(frozen=True)
class SessionDetail:
    row: SessionRow
    record: dict[str, Any] = field(default_factory=dict)  # redacted

    @property
    def pretty(self) -> str:
        return json.dumps(self.record, indent=2, ensure_ascii=False, sort_keys=False)

    @property
    def thread_ids(self) -> list[str]:
        threads = self.record.get("thread_ids")
        return [t for t in threads if isinstance(t, str)] if isinstance(threads, list) else []


def session_detail(session_id: str, client: redis.Redis | None = None) -> SessionDetail:
    """The record of one session, secrets redacted; raises SessionNotFound."""
    client = client or get_client()
    key = keys.session_key(session_id)
    with client.pipeline(transaction=False) as pipe:
        raw, pttl = pipe.get(key).pttl(key).execute()
    if raw is None:
        raise SessionNotFound(f"Session {short_id(session_id)}… does not exist (or has expired).")
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"unreadable": raw.decode("utf-8", "replace")[:200]}
    if not isinstance(data, dict):
        data = {"unreadable": data}
    data = redact(data)
    if isinstance(data.get("session_id"), str):  # the id is a bearer secret too
        data["session_id"] = f"{short_id(data['session_id'])}… {REDACTED}"
    return SessionDetail(_row(session_id, raw, pttl), data)


def delete_session(session_id: str, client: redis.Redis | None = None) -> bool:
    """Delete one session (and its entry in the user's index). False if it was already gone."""
    return store.delete(session_id, client=client or get_client())


def sign_out_everywhere(email: str, client: redis.Redis | None = None) -> int:
    """Delete every session of ``email``; returns how many there were.

    Google credentials are left alone (revoke them on the credentials page): this is
    the "someone else may be using my account" button, not "forget my Google grant".
    """
    client = client or get_client()
    return sum(store.delete_all_for(variant, client=client) for variant in _email_variants(email))
