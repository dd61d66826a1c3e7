"""Put the signed-in user's email on the session record (the seed's ``user_email``).

Django's ``login()`` has already cycled the session key (no fixation) when
``user_logged_in`` fires; the email is written with the session at the end of the
request, in the same compare-and-set that also adds the id to ``user_sessions:<email>``.
"""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from sessions_redis.backend import SessionStore


@receiver(user_logged_in, dispatch_uid="sessions_redis.record_user_email")
def record_user_email(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    if isinstance(session, SessionStore):
        session.set_user_email(getattr(user, "email", "") or None)
