"""``manage.py prune_checkpoints --older-than 30d [--keep-latest [N]] [--dry-run]``.

The seed keeps checkpoints forever; this removes conversations nobody touched for a
while. Threads are chosen from the checkpointer's thread index by last activity (no
SCAN); by default each one is deleted (checkpoints, ownership, session entries), with
``--keep-latest`` only its history goes (its newest checkpoint stays, or its newest N)
and the conversation itself stays. Without ``--keep-latest`` and with
``CHECKPOINT_KEEP_LATEST`` set, every thread left is then trimmed to that many
checkpoints (:mod:`chat.retention`), so threads written before the setting, or by a
process without it, catch up. Safe while people chat: a thread is re-checked just
before it is touched and skipped when it is active again, generating a reply or has a
message queued (see :func:`chat.admin_service.prune`). Prints one line per thread and a
summary.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message
from chat import admin_service as service
from chat import retention
from chat.admin_service import PruneItem, format_bytes

logger = logging.getLogger("chat.admin")


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


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
            nargs="?",
            const=1,
            default=None,
            type=_count,
            metavar="N",
            help=(
                "Keep each idle thread's latest checkpoint, or latest N (the conversation "
                "stays; its older history goes). Without it, CHECKPOINT_KEEP_LATEST (when "
                "set) trims every thread."
            ),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only print what would be removed."
        )

    def handle(
        self, *args, older_than: str, keep_latest: int | None, dry_run: bool, **options
    ) -> None:
        try:
            age = service.parse_age(older_than)
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from None
        try:
            setting = retention.keep_latest() if keep_latest is None else None
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        keep = keep_latest or 0
        expired = 0
        try:
            if not dry_run:  # threads Redis expired (CHECKPOINT_TTL_SECONDS) leave the index
                expired = service.saver().forget_expired_threads()
            seen: set[str] = set()
            changed, checkpoints, freed, skipped = self._report(
                service.prune(age, keep_latest=keep, dry_run=dry_run), keep, dry_run, seen
            )
            done = "would be " if dry_run else ""
            past = "trimmed" if keep else "deleted"
            summary = (
                f"{changed} thread(s) {done}{past}, {checkpoints} checkpoint(s) {done}removed"
                f"{'' if dry_run else f', about {format_bytes(max(freed, 0))} freed'}"
                f"; {skipped} skipped. (idle for more than {older_than})"
            )
            if expired:
                summary += f" {expired} expired thread(s) left the thread index."
            self._summary(summary, changed, dry_run)
            if setting is not None:
                self.stdout.write(
                    f"CHECKPOINT_KEEP_LATEST={setting}: trimming every thread to its latest "
                    f"{setting} checkpoint(s)."
                )
                items = service.trim_threads(setting, dry_run=dry_run)
                changed, checkpoints, freed, skipped = self._report(
                    (i for i in items if i.thread_id not in seen), setting, dry_run, set()
                )
                self._summary(
                    f"CHECKPOINT_KEEP_LATEST={setting}: {changed} thread(s) {done}trimmed to "
                    f"their latest {setting}, {checkpoints} checkpoint(s) {done}removed"
                    f"{'' if dry_run else f', about {format_bytes(max(freed, 0))} freed'}"
                    f"; {skipped} skipped.",
                    changed,
                    dry_run,
                )
        except UNAVAILABLE_ERRORS as exc:
            raise CommandError(unavailable_message(exc, "checkpoints")) from None

    def _report(
        self, items: Iterable[PruneItem], keep: int, dry_run: bool, seen: set[str]
    ) -> tuple[int, int, int, int]:
        """Print one line per thread; returns (changed, checkpoints removed, bytes freed,
        skipped). ``seen`` collects the threads changed (a dry run's later step skips them)."""
        verb = "would " if dry_run else ""
        what = "trim" if keep else "delete"
        changed = skipped = checkpoints = freed = 0
        for item in items:
            idle = item.last_activity.strftime("%Y-%m-%d %H:%M") if item.last_activity else "?"
            about = f"{item.thread_id} (owner {item.owner or 'nobody'}, last active {idle})"
            if item.skipped:
                skipped += 1
                self.stdout.write(f"skipped {about}: {item.skipped}")
                continue
            changed += 1
            seen.add(item.thread_id)
            removed = item.checkpoints_before - item.checkpoints_after
            checkpoints += removed
            if not dry_run:
                freed += item.bytes_before - item.bytes_after
            kept = f", kept the latest{f' {keep}' if keep > 1 else ''}" if keep else ""
            self.stdout.write(
                f"{verb}{what} {about}: {removed} checkpoint(s){kept}, "
                f"{format_bytes(item.bytes_before)} before"
            )
        return changed, checkpoints, freed, skipped

    def _summary(self, summary: str, changed: int, dry_run: bool) -> None:
        if not dry_run:
            logger.info("prune_checkpoints: %s", summary)
        self.stdout.write(self.style.SUCCESS(summary) if changed else summary)
