"""``manage.py sessions list|show|revoke``: the session admin for operators without a browser.

Same code as the admin pages (:mod:`sessions_redis.admin_service`): SCAN pages, the
per-user index for ``--user``, secrets redacted in ``show``. Session ids are printed
shortened; ``show`` and ``revoke`` take a full id or a unique prefix (at least 4
characters).
"""

from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message
from sessions_redis import admin_service as service

logger = logging.getLogger("sessions_redis.admin")


def _time(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


class Command(BaseCommand):
    help = "List, show and revoke sessions stored in Redis (db 0)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="list|show|revoke")
        listing = sub.add_parser("list", help="One SCAN page of sessions, or one user's sessions.")
        listing.add_argument("--user", metavar="EMAIL", help="Only this user's sessions.")
        listing.add_argument(
            "--cursor", type=int, default=0, help="SCAN cursor of the page (0: first)."
        )
        listing.add_argument(
            "--limit",
            type=int,
            default=service.DEFAULT_PAGE_SIZE,
            help="About this many rows per page.",
        )
        show = sub.add_parser("show", help="One session's record, secrets redacted.")
        show.add_argument("session", help="A session id or a unique prefix of one.")
        revoke = sub.add_parser("revoke", help="Delete a session, or every session of a user.")
        target = revoke.add_mutually_exclusive_group(required=True)
        target.add_argument("session", nargs="?", help="A session id or a unique prefix of one.")
        target.add_argument("--user", metavar="EMAIL", help="Sign this user out everywhere.")

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"handle_{action}")(**options)
        except UNAVAILABLE_ERRORS as exc:
            raise CommandError(unavailable_message(exc)) from None
        except (service.SessionNotFound, service.AmbiguousSession) as exc:
            raise CommandError(str(exc)) from None

    def handle_list(self, user: str | None, cursor: int, limit: int, **options) -> None:
        if user:
            rows, next_cursor = service.sessions_for_email(user), 0
        else:
            page = service.list_sessions(cursor, limit)
            rows, next_cursor = page.rows, page.next_cursor
        header = f"{'SESSION':<12} {'USER':<32} {'CREATED':<20} {'LAST ACCESSED':<20} {'EXPIRES IN':<10} THREADS"
        self.stdout.write(header)
        for row in rows:
            email = row.user_email or ("(unreadable)" if row.problem else "(anonymous)")
            self.stdout.write(
                f"{row.short_id + '…':<12} {email:<32} {_time(row.created_at):<20} "
                f"{_time(row.last_accessed):<20} {row.ttl_text:<10} {row.thread_count}"
            )
        summary = f"{len(rows)} session(s)"
        if next_cursor:
            summary += f"; next page: manage.py sessions list --cursor {next_cursor}"
        self.stdout.write(summary)

    def handle_show(self, session: str, **options) -> None:
        detail = service.session_detail(service.resolve_session_id(session))
        row = detail.row
        self.stdout.write(f"Session:       {row.short_id}…")
        self.stdout.write(f"User:          {row.user_email or '(anonymous)'}")
        self.stdout.write(f"Created:       {_time(row.created_at)}")
        self.stdout.write(f"Last accessed: {_time(row.last_accessed)}")
        self.stdout.write(f"Expires in:    {row.ttl_text}")
        self.stdout.write(f"Threads:       {', '.join(detail.thread_ids) or 'none'}")
        if row.problem:
            self.stdout.write(self.style.WARNING(f"Unreadable record: {row.problem}"))
        self.stdout.write("Record (secrets redacted):")
        self.stdout.write(detail.pretty)

    def handle_revoke(self, session: str | None, user: str | None, **options) -> None:
        if user:
            count = service.sign_out_everywhere(user)
            logger.info("sessions revoke: signed %s out everywhere (%d sessions)", user, count)
            self.stdout.write(
                self.style.SUCCESS(f"Signed {user} out everywhere: {count} session(s) deleted.")
            )
            return
        session_id = service.resolve_session_id(session or "")
        row = service.session_detail(session_id).row
        if service.delete_session(session_id):
            logger.info("sessions revoke: deleted session %s… of %s", row.short_id, row.user_email)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Deleted session {row.short_id}… of {row.user_email or '(anonymous)'}."
                )
            )
        else:
            self.stdout.write(f"Session {row.short_id}… was already gone.")
