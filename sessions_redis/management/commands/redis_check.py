"""``manage.py redis_check``: the setup guide's "Verify Redis Connection" script.

Pings Redis db 0, creates a session with :class:`sessions_redis.manager.SessionManager`,
reads it back (renewing its TTL) and deletes it, printing the guide's four lines::

    ✓ Redis connected
    ✓ Created session: <id>
    ✓ Retrieved session for test@example.com
    ✓ Deleted test session

On failure it prints ``✗ Redis connection failed`` (or the failed step) and exits 1.
The test session is deleted whatever happens, so the command leaves no keys behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import redis
from django.core.management.base import BaseCommand, CommandParser

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message, url_for
from sessions_redis.manager import SessionManager

DEFAULT_EMAIL = "test@example.com"


class CheckFailed(Exception):
    """One step failed; the message is the line to print."""


class Command(BaseCommand):
    help = "Check that Redis answers and that a session can be created, read and deleted."
    requires_system_checks = []  # a diagnostic: runs even when other parts are misconfigured

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--email", default=DEFAULT_EMAIL, help=f"owner of the test session ({DEFAULT_EMAIL})"
        )

    def handle(self, *args, email: str, **options) -> None:
        try:
            asyncio.run(self._check(email))
        except CheckFailed as exc:
            self.stderr.write(str(exc))
            sys.exit(1)

    def _ok(self, line: str) -> None:
        self.stdout.write(f"✓ {line}")

    async def _check(self, email: str) -> None:
        manager = SessionManager(url_for("sessions"))
        session_id = None
        try:
            if not await manager.ping():
                raise CheckFailed(
                    f"✗ Redis connection failed: {unavailable_message(manager.last_error)}"
                )
            self._ok("Redis connected")
            session = await manager.create_session(email)
            session_id = session.session_id
            self._ok(f"Created session: {session_id}")
            retrieved = await manager.get_session(session_id)
            if retrieved is None:
                raise CheckFailed(f"✗ Session {session_id} was created but could not be read back")
            self._ok(f"Retrieved session for {retrieved.user_email}")
            await manager.delete_session(session_id)
            session_id = None
            self._ok("Deleted test session")
        except UNAVAILABLE_ERRORS as exc:
            raise CheckFailed(f"✗ Redis connection failed: {unavailable_message(exc)}") from None
        except redis.RedisError as exc:
            raise CheckFailed(f"✗ Redis refused a session command: {exc}") from None
        finally:
            if session_id is not None:
                # Redis went away mid-check: the failure is already being reported.
                with contextlib.suppress(redis.RedisError):
                    await manager.delete_session(session_id)
            await manager.disconnect()
