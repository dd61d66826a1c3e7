"""social-auth pipeline steps: tokens go to Redis, encrypted, never to SQL.

``SOCIAL_AUTH_PIPELINE`` in settings is social-core's default with two changes:

- :func:`require_offline_access` after ``auth_allowed``: if Google sent no refresh token
  and we hold none for the user, the flow stops before anything is written and asks them
  to grant offline access once more.
- :func:`store_credentials` instead of ``load_extra_data``: the token response goes to
  ``credentials:<email>`` (encrypted, see :mod:`workspace.credentials`); only non-secret
  extra data reaches ``UserSocialAuth.extra_data``. See the README's "How tokens are kept".
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import render
from django.urls import reverse

from sessions_redis.record import SECRET_FIELDS
from workspace import credentials


def require_offline_access(
    backend, details: dict[str, Any], response: dict[str, Any], *args, **kwargs
):
    email = details.get("email")
    if response.get("refresh_token") or not email:
        return None
    stored = credentials.load_or_none(email)
    if stored is not None and stored.refresh_token:
        return None
    request = backend.strategy.request
    return render(
        request,
        "workspace/consent_needed.html",
        {"begin_url": reverse("social:begin", args=[backend.name]), "email": email},
        status=200,
    )


def store_credentials(
    backend, details: dict[str, Any], response: dict[str, Any], uid: str, user=None, *args, **kwargs
):
    email = (user and getattr(user, "email", "")) or details.get("email")
    if email and response.get("access_token"):
        previous = credentials.load_or_none(email)
        credentials.save_credentials(email, credentials.from_token_response(response, previous))
    social = kwargs.get("social") or backend.strategy.storage.user.get_social_auth(
        backend.name, uid
    )
    if social is not None:
        extra = backend.extra_data(user, uid, response, details, kwargs)
        merged = {**(social.extra_data or {}), **extra}
        clean = {key: value for key, value in merged.items() if key not in SECRET_FIELDS}
        if clean != social.extra_data:
            social.extra_data = clean
            social.save(update_fields=["extra_data"])
