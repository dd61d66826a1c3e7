"""``manage.py local_login_url http://127.0.0.1:8000``: a one-time local sign-in link.

For development without Google (``make run`` prints one). The token lives in
``login_token:<token>`` for ``LOGIN_TOKEN_TTL_SECONDS`` and is consumed on first use.
With ``DEBUG`` off it prints nothing on stdout and exits non-zero.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message
from workspace.views import LOCAL_EMAIL, issue_login_token


class Command(BaseCommand):
    help = "Print a one-time URL that signs in a local developer account (DEBUG only)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "base_url", nargs="?", default="http://127.0.0.1:8000", help="where the server runs"
        )
        parser.add_argument("--email", default=LOCAL_EMAIL, help="the account to sign in")

    def handle(self, *args, base_url: str, email: str, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("Local sign-in is disabled when DEBUG is off.")
        try:
            token = issue_login_token(email)
        except UNAVAILABLE_ERRORS as exc:
            raise CommandError(unavailable_message(exc)) from None
        url = base_url.rstrip("/") + reverse("local_login", args=[token])
        minutes = max(1, settings.LOGIN_TOKEN_TTL_SECONDS // 60)
        self.stdout.write(f"Sign in locally (single use, valid {minutes} min): {url}")
