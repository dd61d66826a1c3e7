"""OAuth CSRF state in ``oauth_state:<state>`` (db 0), single use, and the Google backend.

:class:`RedisOAuthStateMixin` overrides the two social-auth backend methods that own the
state: ``get_or_create_state`` stores a fresh state bound to this browser
(:func:`store_state`), ``validate_state`` consumes it (:func:`consume_state`: one Lua
script checks backend and binding, and deletes only on a match). Key guarantee: a state
is used at most once, only by the browser and backend that started sign-in; anything
else raises :class:`OAuthStateError` before the code is exchanged, and leaves the state
to its rightful browser. :class:`GoogleOAuth2` is social-core's Google backend with this state
handling and offline access. See the README's "How tokens are kept" section.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from social_core.backends.google import GoogleOAuth2 as SocialGoogleOAuth2

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import Script, get_client
from workspace import oauth

security_logger = logging.getLogger("django.security.oauth_state")

BINDING_SESSION_KEY = "oauth_binding"
# Set after a successful Google sign-in; without it the next sign-in asks for consent.
SIGNED_IN_BEFORE_COOKIE = "agenticpal_google"
MAX_STATE_LENGTH = 128

# KEYS[1] oauth_state:<state>; ARGV: backend, sha256 of the binding ('' matches nothing).
# 1 consumed, 0 unknown (expired, used, never issued), -1 not this browser's or provider's:
# left in place, so whoever merely saw the state cannot spoil the rightful sign-in.
CONSUME_LUA = b"""
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, stored = pcall(cjson.decode, raw)
if not ok or type(stored) ~= 'table' or stored.backend ~= ARGV[1]
    or ARGV[2] == '' or stored.binding ~= ARGV[2] then
  return -1
end
redis.call('DEL', KEYS[1])
return 1
"""
_consume = Script(None, CONSUME_LUA)


class OAuthStateError(SuspiciousOperation):
    """The callback's ``state`` is missing, unknown, expired, used, or not this browser's."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # missing | unknown | mismatch


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def browser_binding(session, *, create: bool) -> str:
    """The per-browser nonce the state is bound to (created in the session on demand)."""
    binding = session.get(BINDING_SESSION_KEY)
    if not binding and create:
        binding = session[BINDING_SESSION_KEY] = secrets.token_urlsafe(24)
    return binding or ""


def store_state(state: str, *, backend: str, binding: str) -> None:
    value = json.dumps({"backend": backend, "binding": _hash(binding), "created": int(time.time())})
    if not get_client().set(
        keys.oauth_state_key(state), value, ex=settings.OAUTH_STATE_TTL_SECONDS, nx=True
    ):
        raise OAuthStateError("collision", "A fresh OAuth state already existed; try again.")


def consume_state(state: str | None, *, backend: str, binding: str) -> None:
    """Consume ``state`` exactly once, and only from the browser and backend it was issued
    to (checked, then deleted, in one script); raise :class:`OAuthStateError` if refused."""
    if not state or not isinstance(state, str):
        raise OAuthStateError("missing", "The sign-in callback carried no state parameter.")
    if len(state) > MAX_STATE_LENGTH:
        raise OAuthStateError("unknown", "The sign-in callback's state is not one we issued.")
    args = [backend, _hash(binding) if binding else ""]
    status = _consume([keys.oauth_state_key(state)], args, client=get_client())
    if status == 0:
        raise OAuthStateError(
            "unknown", "The sign-in state is unknown, expired or was already used."
        )
    if status != 1:
        raise OAuthStateError(
            "mismatch", "The sign-in state was issued to another browser or provider."
        )


class RedisOAuthStateMixin:
    """Keeps an OAuth2 backend's ``state`` in Redis instead of the session."""

    def get_or_create_state(self) -> str:
        state = self.state_token()
        store_state(
            state,
            backend=self.name,
            binding=browser_binding(self.strategy.session, create=True),
        )
        return state

    def validate_state(self) -> str:
        state = self.get_request_state()
        consume_state(
            state,
            backend=self.name,
            binding=browser_binding(self.strategy.session, create=False),
        )
        return state


class GoogleOAuth2(RedisOAuthStateMixin, SocialGoogleOAuth2):
    """Google sign-in with offline access; state in Redis (see the module docstring)."""

    ACCESS_TOKEN_URL = oauth.TOKEN_URI
    REVOKE_TOKEN_URL = oauth.REVOKE_URI
    REVOKE_TOKEN_METHOD = "POST"

    def get_scope(self) -> list[str]:
        """One more permission, asked for alone (incremental authorisation: Google keeps
        the ones already granted, ``include_granted_scopes=true``), or all of them."""
        wanted = self.data.get("scope")
        if wanted and wanted in self.setting("SCOPE", []):
            return [*self.DEFAULT_SCOPE, wanted]
        return super().get_scope()

    def auth_extra_arguments(self) -> dict[str, str]:
        arguments = super().auth_extra_arguments()
        arguments.setdefault("access_type", "offline")
        request = getattr(self.strategy, "request", None)
        first_time = request is None or SIGNED_IN_BEFORE_COOKIE not in request.COOKIES
        if first_time or self.data.get("consent"):
            # Google issues a refresh token only when the user consents.
            arguments["prompt"] = "consent"
        return arguments
