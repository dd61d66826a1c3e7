"""``manage.py rotate_credentials_key``: re-encrypt every ``credentials:*`` with the first key.

Rotation: put a new key first in ``CREDENTIALS_ENCRYPTION_KEY`` (keep the old ones
after it), run this, then remove the old keys. ``--generate`` prints a fresh key.
Maintenance only, so it may SCAN.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from agenticpal.redis_clients import get_client
from sessions_redis import encryption, keys


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

        def rotate_one(pipe) -> None:
            # WATCH/MULTI: a token refreshed meanwhile is never overwritten with the old one.
            raw = pipe.get(key)
            if raw is None:
                return
            data = json.loads(raw)
            try:
                for name in data.get("encrypted", ()):
                    if data.get(name) is not None:
                        data[name] = encryption.rotate(data[name])
            except encryption.InvalidToken:
                counts["unreadable"] += 1
                self.stderr.write(f"{key.decode()}: no configured key decrypts it; left as is")
                return
            pipe.multi()
            # KEEPTTL: rotation neither extends nor drops the expiry.
            pipe.set(key, json.dumps(data, separators=(",", ":")), keepttl=True, xx=True)

        for key in client.scan_iter(match=f"{keys.CREDENTIALS_PREFIX}*", count=500):
            if client.transaction(rotate_one, key):
                counts["rotated"] += 1
        self.stdout.write(
            f"Re-encrypted {counts['rotated']} credential(s); {counts['unreadable']} unreadable."
        )
        if counts["unreadable"]:
            raise CommandError(
                f"{counts['unreadable']} credential(s) are encrypted with a key that is not in "
                "CREDENTIALS_ENCRYPTION_KEY: add that key (after the new one) and run this again, "
                "or leave them for their users to sign in again."
            )
