"""``manage.py prune_checkpoints --older-than 30d [--keep-latest] [--dry-run]``.

The seed keeps checkpoints forever; this removes conversations nobody touched for a
while. Threads are chosen from the checkpointer's thread index by last activity (no
SCAN); by default each one is deleted (checkpoints, ownership, session entries), with
``--keep-latest`` only its history goes and the conversation itself stays. Safe while
people chat: a thread is re-checked just before it is touched and skipped when it is
active again, generating a reply or has a message queued (see
:func:`chat.admin_service.prune`). Prints one line per thread and a summary.
"""

from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message
from chat import admin_service as service
from chat.admin_service import format_bytes

logger = logging.getLogger("chat.admin")


class Command(BaseCommand):
    help = "Remove LangGraph checkpoints of conversations idle for longer than --older-than."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="AGE",
            help="Idle for longer than this: a whole number and a unit (s, m, h, d, w), e.g. 30d.",
        )
        parser.add_argument(
            "--keep-latest",
            action="store_true",
            help="Keep each thread's latest checkpoint (the conversation stays; its history goes).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only print what would be removed."
        )

    def handle(self, *args, older_than: str, keep_latest: bool, dry_run: bool, **options) -> None:
        try:
            age = service.parse_age(older_than)
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from None
        verb = "would " if dry_run else ""
        what = "trim" if keep_latest else "delete"
        changed = skipped = checkpoints = freed = expired = 0
        try:
            if not dry_run:  # threads Redis expired (CHECKPOINT_TTL_SECONDS) leave the index
                expired = service.saver().forget_expired_threads()
            for item in service.prune(age, keep_latest=keep_latest, dry_run=dry_run):
                idle = item.last_activity.strftime("%Y-%m-%d %H:%M") if item.last_activity else "?"
                about = f"{item.thread_id} (owner {item.owner or 'nobody'}, last active {idle})"
                if item.skipped:
                    skipped += 1
                    self.stdout.write(f"skipped {about}: {item.skipped}")
                    continue
                changed += 1
                removed = item.checkpoints_before - item.checkpoints_after
                checkpoints += removed
                if not dry_run:
                    freed += item.bytes_before - item.bytes_after
                kept = ", kept the latest" if keep_latest else ""
                self.stdout.write(
                    f"{verb}{what} {about}: {removed} checkpoint(s){kept}, "
                    f"{format_bytes(item.bytes_before)} before"
                )
        except UNAVAILABLE_ERRORS as exc:
            raise CommandError(unavailable_message(exc, "checkpoints")) from None
        done = "would be " if dry_run else ""
        past = "trimmed" if keep_latest else "deleted"
        summary = (
            f"{changed} thread(s) {done}{past}, {checkpoints} checkpoint(s) {done}removed"
            f"{'' if dry_run else f', about {format_bytes(max(freed, 0))} freed'}"
            f"; {skipped} skipped. (idle for more than {older_than})"
        )
        if expired:
            summary += f" {expired} expired thread(s) left the thread index."
        if not dry_run:
            logger.info("prune_checkpoints: %s", summary)
        self.stdout.write(self.style.SUCCESS(summary) if changed else summary)
