"""Admin sessions page benchmark: the list of 10,000 sessions must answer in under 1 s.

    .venv/bin/python bench/admin_sessions.py [--sessions 10000] [--runs 20] [--page-size 100]

Starts a throw-away ``redis-server`` (never 127.0.0.1:6379), seeds ``--sessions``
signed-in session records and drives the real admin with Django's test client as a
superuser: the first list page, consecutive pages, a search by email and a session's
page. Prints p50 and max per case, and whether the list stays under the 1 s target.
What it seeds and the results: the README's "Operating: the admin and maintenance
commands" section.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agenticpal.redis_server import RedisServer

TARGET_SECONDS = 1.0
USERS = 500


def setup_django(url: str, var_dir: Path) -> None:
    (var_dir / "static").mkdir(parents=True, exist_ok=True)  # whitenoise warns without it
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "agenticpal.settings",
            "AGENTICPAL_ENV_FILE": os.devnull,
            "DEBUG": "false",
            "SECRET_KEY": "bench-only-secret-key-0123456789-0123456789-0123456789",
            "REDIS_URL": url,
            "DATABASE_URL": "sqlite://:memory:",
            "AGENTICPAL_VAR_DIR": str(var_dir),
        }
    )
    os.environ.pop("CHECKPOINT_REDIS_URL", None)
    import django
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()  # allows the test client's host, keeps e-mails in memory
    call_command("migrate", verbosity=0, interactive=False)


def seed(count: int) -> None:
    from agenticpal import redis_keys as keys
    from agenticpal.redis_clients import get_client
    from sessions_redis.record import SessionRecord, new_session_id

    client = get_client("sessions")
    batch = 1000
    for start in range(0, count, batch):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + batch, count)):
                email = f"user{i % USERS}@example.com"
                record = SessionRecord(
                    session_id=new_session_id(),
                    user_email=email,
                    credentials={
                        "ref": keys.credentials_key(email),
                        "token_uri": "https://oauth2.googleapis.com/token",
                        "client_id": "1234.apps.googleusercontent.com",
                        "scopes": ["openid", "email", "calendar", "gmail", "tasks"],
                    },
                    thread_ids=[f"{i:032x}", f"{i + count:032x}"],
                    django={
                        "_auth_user_id": str(i % USERS + 1),
                        "_auth_user_backend": "social_core.backends.google.GoogleOAuth2",
                        "_auth_user_hash": "0" * 64,
                    },
                )
                pipe.set(
                    keys.session_key(record.session_id),
                    record.to_json(),
                    ex=keys.SESSION_TTL_SECONDS,
                )
                pipe.sadd(keys.user_sessions_key(email), record.session_id)
            pipe.execute()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(name: str, samples: list[float]) -> float:
    p50, worst = statistics.median(samples), max(samples)
    print(f"{name:<42} p50 {p50 * 1000:7.1f} ms   max {worst * 1000:7.1f} ms   (n={len(samples)})")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis", appendonly=False).start()
        try:
            setup_django(server.url, Path(tmp) / "var")
            from django.contrib.auth import get_user_model
            from django.test import Client
            from django.urls import reverse

            from agenticpal.redis_clients import get_client

            started = time.perf_counter()
            seed(args.sessions)
            print(
                f"redis-server {server.version}: seeded {args.sessions} sessions "
                f"in {time.perf_counter() - started:.1f} s; db 0 has {get_client().dbsize()} keys"
            )
            staff = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
            client = Client()
            client.force_login(staff)
            list_url = reverse("admin:sessions_redis_redissession_changelist")
            first = f"{list_url}?n={args.page_size}"

            def get(url: str) -> str:
                response = client.get(url)
                if response.status_code != 200:
                    raise SystemExit(f"GET {url} answered {response.status_code}")
                return response.content.decode()

            get(first)  # warm-up: templates, scripts, connections
            worst = report(
                f"list, first page (n={args.page_size})",
                [timed(lambda: get(first)) for _ in range(args.runs)],
            )

            samples, url, rows = [], first, 0
            for _ in range(args.runs):
                start = time.perf_counter()
                html = get(url)
                samples.append(time.perf_counter() - start)
                rows += html.count('<th class="field-session">')
                found = re.search(r'<a href="(\?cursor=[^"]+)">next', html)
                if not found:
                    break
                url = list_url + found.group(1).replace("&amp;", "&")
            worst = max(worst, report("list, consecutive pages (SCAN cursors)", samples))
            print(f"{'':<42} {rows / len(samples):.0f} rows per page on average")

            search = f"{list_url}?q=user7%40example.com"
            report(
                "search by email (user index)",
                [timed(lambda: get(search)) for _ in range(args.runs)],
            )
            detail = re.search(r'<th class="field-session"><a href="([^"]+)"', get(first)).group(1)
            report("detail page", [timed(lambda: get(detail)) for _ in range(args.runs)])

            verdict = "meets" if worst < TARGET_SECONDS else "MISSES"
            print(
                f"list of {args.sessions} sessions {verdict} the {TARGET_SECONDS:.0f} s target (worst {worst * 1000:.0f} ms)"
            )
            return 0 if worst < TARGET_SECONDS else 1
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
