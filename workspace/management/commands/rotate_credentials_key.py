"""``manage.py rotate_credentials_key``: re-encrypt every ``credentials:*`` with the first key.

Rotation: put a new key first in ``CREDENTIALS_ENCRYPTION_KEY`` (keep the old ones
after it), run this, then remove the old keys. ``--generate`` prints a fresh key.
Maintenance only, so it may SCAN.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from agenticpal import redis_keys as keys
from agenticpal.redis_clients import UNAVAILABLE_ERRORS, get_client, unavailable_message
from workspace import encryption


class Command(BaseCommand):
    help = "Re-encrypt stored Google credentials with the current (first) encryption key."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--generate", action="store_true", help="only print a new key")

    def handle(self, *args, generate: bool, **options) -> None:
        if generate:
            self.stdout.write(encryption.generate_key())
            return
        client = get_client()
        counts = {"rotated": 0, "unreadable": 0}

        def rotate_one(pipe) -> str:
            # WATCH/MULTI: a token refreshed meanwhile is never overwritten with the old one.
            raw = pipe.get(key)
            if raw is None:
                return "gone"
            try:
                data = json.loads(raw)
                for name in data.get("encrypted", ()):
                    if data.get(name) is not None:
                        data[name] = encryption.rotate(data[name])
            except (ValueError, AttributeError, TypeError, encryption.InvalidToken) as exc:
                why = (
                    "no configured key decrypts it"
                    if isinstance(exc, encryption.InvalidToken)
                    else "it is not a credentials record"
                )
                self.stderr.write(f"{key.decode()}: {why}; left as is")
                return "unreadable"
            pipe.multi()
            # KEEPTTL: rotation neither extends nor drops the expiry.
            pipe.set(key, json.dumps(data, separators=(",", ":")), keepttl=True, xx=True)
            return "rotated"

        try:
            for key in client.scan_iter(match=f"{keys.CREDENTIALS_PREFIX}*", count=500):
                outcome = client.transaction(rotate_one, key, value_from_callable=True)
                if outcome in counts:
                    counts[outcome] += 1
        except UNAVAILABLE_ERRORS as exc:
            raise CommandError(
                f"{unavailable_message(exc)} Re-encrypted {counts['rotated']} credential(s) "
                "before that; run the command again (it is safe to repeat)."
            ) from None
        self.stdout.write(
            f"Re-encrypted {counts['rotated']} credential(s); {counts['unreadable']} unreadable."
        )
        if counts["unreadable"]:
            raise CommandError(
                f"{counts['unreadable']} credential(s) could not be re-encrypted (listed above). "
                "If they were written with a key that is not in CREDENTIALS_ENCRYPTION_KEY, add "
                "that key after the new one and run this again; otherwise their users sign in "
                "again."
            )
