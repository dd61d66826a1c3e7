"""Google's Calendar, Gmail and Tasks REST APIs over one pooled ``httpx.AsyncClient``.

Not ``google-api-python-client``: it is synchronous (httplib2), not thread-safe (one
``Http`` per thread) and in maintenance mode, so async code would pay a thread hop per
call. Plain REST fits: a bearer token from a :class:`TokenSource`, ``fields=`` for
partial responses, ``pageToken`` pages (:meth:`GoogleClient.get_all`) and bounded
concurrency (:func:`gather_bounded`) instead of Google's batch endpoint.

Its guarantee: every failure surfaces as a :class:`GoogleAPIError` with one plain
sentence for the user (``user_message``), after the retries that are safe: 401 ->
refresh once; 429 and rate-limit 403s -> back off (honouring ``Retry-After``); 5xx and
transport errors -> retry idempotent methods only. The token is never logged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import weakref
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import quote

import httpx
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential, wait_random

logger = logging.getLogger("agenticpal.google")

DEFAULT_BASE_URL = "https://www.googleapis.com"
DEFAULT_TIMEOUT = 10.0  # seconds for one request, all of it (settings.GOOGLE_API_TIMEOUT)
CONNECT_TIMEOUT = 5.0
MAX_ATTEMPTS = 4  # per request, the first one included
BACKOFF_BASE = 0.5  # seconds: 0.5, 1, 2 ... plus up to BACKOFF_BASE of jitter
BACKOFF_MAX = 8.0
RETRY_AFTER_MAX = 10.0  # a longer Retry-After gives up at once with RateLimited
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
sleep = asyncio.sleep  # what retries wait with; tests patch it

T = TypeVar("T")


class TokenSource(Protocol):
    """Access tokens for one user (the real one reads the encrypted credentials)."""

    async def token(self) -> str:
        """A valid access token."""
        ...

    async def refreshed(self, stale_token: str) -> str:
        """A new token after Google refused ``stale_token``.

        Raises :class:`SignInAgain` when the user must sign in again (``invalid_grant``);
        any other exception propagates to the caller unchanged.
        """
        ...


@dataclass(frozen=True)
class Service:
    name: str
    scope: str | None


SERVICES = {
    "calendar/v3": Service("Calendar", "https://www.googleapis.com/auth/calendar.events"),
    "gmail/v1": Service("Gmail", "https://www.googleapis.com/auth/gmail.modify"),
    "tasks/v1": Service("Tasks", "https://www.googleapis.com/auth/tasks"),
}
UNKNOWN_SERVICE = Service("Workspace", None)


def service_for(path: str) -> Service:
    """The API a path belongs to, from its ``<api>/<version>`` prefix."""
    prefix = "/".join(path.lstrip("/").split("/", 2)[:2])
    return SERVICES.get(prefix, UNKNOWN_SERVICE)


# --- Errors ----------------------------------------------------------------------------


class GoogleAPIError(Exception):
    """A Google API call failed: ``str()`` for logs, ``user_message`` for people."""

    kind = "google_error"

    def __init__(
        self, detail: str, *, service: str = UNKNOWN_SERVICE.name, status: int | None = None
    ):
        super().__init__(detail)
        self.service = service
        self.status = status

    @property
    def user_message(self) -> str:
        return f"Google {self.service} could not complete the request."

    def to_dict(self) -> dict[str, Any]:
        """The structured part for the UI."""
        return {
            "error": self.kind,
            "message": self.user_message,
            "service": self.service,
            "status": self.status,
        }


class SignInAgain(GoogleAPIError):
    kind = "sign_in_again"

    @property
    def user_message(self) -> str:
        return "Your Google access has ended; please sign in with Google again."


class MissingPermission(GoogleAPIError):
    kind = "missing_permission"

    def __init__(self, detail: str, *, scope: str | None, **kwargs: Any):
        super().__init__(detail, **kwargs)
        self.scope = scope

    @property
    def user_message(self) -> str:
        return (
            f"AgenticPal may not use your Google {self.service} yet; sign in with Google "
            f"again and allow access to {self.service}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "scope": self.scope}


class RateLimited(GoogleAPIError):
    kind = "rate_limited"

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after

    @property
    def user_message(self) -> str:
        return (
            f"Google {self.service} is getting too many requests from your account; "
            "try again in a minute."
        )


class GoogleUnavailable(GoogleAPIError):
    kind = "unavailable"

    @property
    def user_message(self) -> str:
        return f"Google {self.service} is not answering right now; try again in a moment."


class NotFound(GoogleAPIError):
    kind = "not_found"

    @property
    def user_message(self) -> str:
        return f"Google {self.service} could not find that item; it may have been deleted."


class BadRequest(GoogleAPIError):
    kind = "bad_request"

    def __init__(self, detail: str, *, message: str = "", **kwargs: Any):
        super().__init__(detail, **kwargs)
        self.message = message.strip().rstrip(".")

    @property
    def user_message(self) -> str:
        reason = f": {self.message}" if self.message else ""
        return f"Google {self.service} refused the request{reason}."


class Conflict(BadRequest):
    """409: e.g. an insert retried with the same client-chosen id (it exists already)."""

    kind = "conflict"


SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})


def _error_body(response: httpx.Response) -> tuple[str, frozenset[str]]:
    """Google's message and every reason code in an error body, whatever its shape."""
    try:
        body = response.json()
    except ValueError:
        return "", frozenset()
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # OAuth style: {"error": "invalid_grant", ...}
        return str_at(body, "error_description"), frozenset({error})
    if not isinstance(error, dict):
        return "", frozenset()
    entries = [*dicts_at(error, "errors"), *dicts_at(error, "details")]
    reasons = {str_at(entry, "reason") for entry in entries} | {str_at(error, "status")}
    return str_at(error, "message"), frozenset(reasons - {""})


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (it may be a number or an HTTP date), None if absent."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when.replace(tzinfo=when.tzinfo or UTC) - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if not math.isnan(seconds) else None


def error_for(response: httpx.Response, method: str, path: str) -> GoogleAPIError:
    """The exception for a non-2xx answer."""
    status = response.status_code
    service = service_for(path)
    message, reasons = _error_body(response)
    detail = " ".join(filter(None, [f"{method} {path}: HTTP {status}", *sorted(reasons), message]))
    common = {"service": service.name, "status": status}
    if status == 401 or "invalid_grant" in reasons:
        return SignInAgain(detail, **common)
    if status == 403 and reasons & SCOPE_REASONS:
        return MissingPermission(detail, scope=service.scope, **common)
    if status == 429 or (status == 403 and reasons & RATE_REASONS):
        return RateLimited(detail, retry_after=retry_after(response), **common)
    if status in (404, 410):
        return NotFound(detail, **common)
    if status >= 500:
        return GoogleUnavailable(detail, **common)
    if status == 409:
        return Conflict(detail, message=message, **common)
    return BadRequest(detail, message=message, **common)


# --- Reading Google's JSON defensively ---------------------------------------------------


def str_at(data: Any, key: str) -> str:
    """``data[key]`` if it is a string, else ``""``."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, str) else ""


def dict_at(data: Any, key: str) -> Mapping[str, Any]:
    """``data[key]`` if it is an object, else ``{}``."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def dicts_at(data: Any, key: str) -> list[Mapping[str, Any]]:
    """The objects in the list ``data[key]`` (anything else is skipped)."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def strs_at(data: Any, key: str) -> tuple[str, ...]:
    """The strings in the list ``data[key]`` (anything else is skipped)."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def path_segment(value: str) -> str:
    """An id made safe for a URL path: ``/``, ``?``, ``#`` and ``..`` cannot escape."""
    if value.strip(".") == "":
        return "%2E" * len(value)
    return quote(value, safe="@")


def rfc3339(moment: datetime) -> str:
    """An aware datetime as Google's timestamps (naive ones are a programming error)."""
    if moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no timezone; Google needs an offset.")
    return moment.isoformat()


# --- The pooled HTTP client --------------------------------------------------------------

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def request_timeout() -> float:
    return float(getattr(settings, "GOOGLE_API_TIMEOUT", DEFAULT_TIMEOUT))


def http_client() -> httpx.AsyncClient:
    """The pooled client of the running event loop (HTTP/1.1, keep-alive)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        total = request_timeout()
        client = _clients[loop] = httpx.AsyncClient(
            timeout=httpx.Timeout(total, connect=min(CONNECT_TIMEOUT, total)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
    return client


def reset() -> None:
    """Forget every pooled client (their connections close when collected)."""
    _clients.clear()


@receiver(setting_changed)
def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("GOOGLE_API_BASE_URL", "GOOGLE_API_TIMEOUT"):
        reset()


# --- Requests ----------------------------------------------------------------------------


class Listing(NamedTuple):
    items: list[Mapping[str, Any]]
    first_page: Mapping[str, Any]  # for top-level fields such as Calendar's timeZone


class _Bearer:
    """One request's access token: fetched once, refreshed at most once after a 401."""

    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens
        self._token = ""
        self._refreshed = False

    async def header(self) -> dict[str, str]:
        if not self._token:
            self._token = await self._tokens.token()
        return {"Authorization": f"Bearer {self._token}"}

    async def refresh(self) -> bool:
        """Ask for a new token; False when this request already had one. A refresh that
        failed (Google's token endpoint down) does not count: a retry may refresh again."""
        if self._refreshed:
            return False
        self._token = await self._tokens.refreshed(self._token)
        self._refreshed = True
        return True


def _retryable(method: str, error: BaseException) -> bool:
    if isinstance(error, RateLimited):
        return error.retry_after is None or error.retry_after <= RETRY_AFTER_MAX
    return isinstance(error, GoogleUnavailable) and method in IDEMPOTENT_METHODS


def _backoff() -> wait_base:
    """BACKOFF_BASE * 2**n seconds (at most BACKOFF_MAX) plus up to BACKOFF_BASE of jitter."""
    return wait_exponential(multiplier=BACKOFF_BASE, max=BACKOFF_MAX) + wait_random(0, BACKOFF_BASE)


def _wait(backoff: wait_base, state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return error.retry_after
    return backoff(state)


def _log_retry(method: str, path: str, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.warning(
        "Google %s %s failed (%s); attempt %d of %d in %.2f s",
        method,
        path,
        error,
        state.attempt_number + 1,
        MAX_ATTEMPTS,
        wait,
    )


class GoogleClient:
    """One user's calls to Google's REST APIs; paths are relative, e.g. ``calendar/v3/...``."""

    def __init__(
        self,
        tokens: TokenSource,
        *,
        base_url: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """``http``: another pooled client (the demo workspace's in-process emulator)."""
        self.tokens = tokens
        base = base_url or getattr(settings, "GOOGLE_API_BASE_URL", DEFAULT_BASE_URL)
        self.base_url = base.rstrip("/")
        self._http = http

    async def get(
        self, path: str, *, params: Mapping[str, Any] | None = None, fields: str | None = None
    ) -> dict[str, Any]:
        return await self.request("GET", path, params=params, fields=fields)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        fields: str | None = None,
    ) -> dict[str, Any]:
        """The JSON answer (``{}`` for an empty one), or a :class:`GoogleAPIError`.

        Writes call this with their method: POST and PATCH are never retried after a
        5xx or a transport error (a send or an insert must not happen twice).
        """
        path = path.lstrip("/")
        query = {**(params or {}), **({"fields": fields} if fields else {})}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(MAX_ATTEMPTS),
            wait=partial(_wait, _backoff()),
            retry=retry_if_exception(partial(_retryable, method)),
            before_sleep=partial(_log_retry, method, path),
            sleep=sleep,
            reraise=True,
        )
        bearer = _Bearer(self.tokens)
        return await retrying(self._attempt, method, path, query, json, bearer)

    async def get_all(
        self,
        path: str,
        *,
        key: str = "items",
        limit: int,
        page_size: int,
        params: Mapping[str, Any] | None = None,
        fields: str | None = None,
    ) -> Listing:
        """Up to ``limit`` items of a paginated list, following ``nextPageToken``."""
        items: list[Mapping[str, Any]] = []
        first_page: Mapping[str, Any] | None = None
        page_token = ""
        seen_tokens: set[str] = set()
        while len(items) < limit:
            query = {**(params or {}), "maxResults": min(page_size, limit - len(items))}
            if page_token:
                query["pageToken"] = page_token
            page = await self.get(path, params=query, fields=fields and f"nextPageToken,{fields}")
            first_page = page if first_page is None else first_page
            items += dicts_at(page, key)
            seen_tokens.add(page_token)
            page_token = str_at(page, "nextPageToken")
            if not page_token or page_token in seen_tokens:
                break
        return Listing(items[:limit], first_page or {})

    async def _attempt(
        self, method: str, path: str, query: dict[str, Any], body: Any, bearer: _Bearer
    ) -> dict[str, Any]:
        response = await self._send(method, path, query, body, bearer)
        if response.status_code == 401 and await bearer.refresh():
            response = await self._send(method, path, query, body, bearer)
        if not response.is_success:
            raise error_for(response, method, path)
        return _json(response, method, path)

    async def _send(
        self, method: str, path: str, query: dict[str, Any], body: Any, bearer: _Bearer
    ) -> httpx.Response:
        headers = await bearer.header()
        try:
            async with asyncio.timeout(request_timeout()):
                return await (self._http or http_client()).request(
                    method, f"{self.base_url}/{path}", params=query, json=body, headers=headers
                )
        except (httpx.RequestError, TimeoutError) as exc:  # transport, decoding, redirects
            detail = f"{method} {path}: {type(exc).__name__} {exc}".rstrip()
            raise GoogleUnavailable(detail, service=service_for(path).name) from exc


def _json(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        detail = f"{method} {path}: HTTP {response.status_code} with an unreadable body"
        raise GoogleUnavailable(detail, service=service_for(path).name, status=response.status_code)
    return data


async def gather_bounded(coros: Iterable[Awaitable[T]], limit: int = 10) -> list[T]:
    """Await independent requests, at most ``limit`` at a time; results in order.

    The first failure cancels the requests still running and is raised as it is.
    """
    semaphore = asyncio.Semaphore(limit)

    async def bounded(coro: Awaitable[T]) -> T:
        try:
            async with semaphore:
                return await coro
        finally:
            if inspect.iscoroutine(coro):
                coro.close()  # cancelled before it started: no "never awaited" warning

    tasks = [asyncio.ensure_future(bounded(coro)) for coro in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
