"""``manage.py revoke_google EMAIL``: revoke a user's Google grant and delete their tokens."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message
from workspace import credentials


class Command(BaseCommand):
    help = (
        "Revoke a user's Google grant at Google and delete their stored credentials "
        "(credentials:<email>). Their sessions stay: `manage.py sessions revoke --user` ends them."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("email", help="The user's email address.")

    def handle(self, *args, email: str, **options) -> None:
        try:
            confirmed = credentials.revoke_and_delete(email)
        except UNAVAILABLE_ERRORS as exc:
            raise CommandError(unavailable_message(exc)) from None
        note = "Google confirmed the revocation" if confirmed else "Google could not be reached"
        self.stdout.write(self.style.SUCCESS(f"Deleted {email}'s Google credentials; {note}."))
