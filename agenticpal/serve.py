"""``make run``: one command from a fresh clone to a working server.

DEBUG is on unless the environment or ``.env`` sets it (``.env.example`` ships it off).

1. If ``REDIS_URL`` is unset, start the embedded Redis (AOF on, data in ``var/redis``).
2. Apply migrations.
3. Serve HTTP and websockets with uvicorn on 127.0.0.1:8000 (``HOST``/``PORT``).
4. On Ctrl-C stop the server, then Redis (which flushes its AOF).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from agenticpal.redis_server import RedisServer, RedisServerError

BASE_DIR = Path(__file__).resolve().parent.parent


def _manage(*args: str, env: dict[str, str], capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        env=env,
        cwd=BASE_DIR,
        check=False,
        text=True,
        capture_output=capture,
    )


def _dotenv_sets(name: str) -> bool:
    """Whether ``.env`` (the file settings read) assigns ``name``."""
    path = Path(os.environ.get("AGENTICPAL_ENV_FILE", BASE_DIR / ".env"))
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return False
    return re.search(rf"(?m)^\s*(?:export\s+)?{re.escape(name)}\s*=", text) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument(
        "--redis-port", type=int, default=int(os.environ.get("EMBEDDED_REDIS_PORT", "0"))
    )
    args = parser.parse_args(argv)

    env = dict(os.environ)
    if "DEBUG" not in env and not _dotenv_sets("DEBUG"):
        env["DEBUG"] = "true"  # a development server, unless the environment or .env says
    redis_server = None
    # whitenoise serves app static files through the finders in development; an empty
    # STATIC_ROOT keeps it from warning that the collectstatic directory is missing.
    (BASE_DIR / "var" / "static").mkdir(parents=True, exist_ok=True)
    if not env.get("REDIS_URL"):
        try:
            redis_server = RedisServer(BASE_DIR / "var" / "redis", port=args.redis_port).start()
        except RedisServerError as exc:
            print(f"Could not start the embedded Redis: {exc}", file=sys.stderr)
            return 1
        env["REDIS_URL"] = redis_server.url
        print(
            f"Embedded Redis {redis_server.version} on {redis_server.url} (AOF on, data in var/redis)"
        )
    else:
        print("Using REDIS_URL from the environment")

    server = None
    try:
        if _manage("migrate", "--noinput", "-v", "0", env=env).returncode != 0:
            return 2
        login = _manage("local_login_url", f"http://{args.host}:{args.port}", env=env, capture=True)
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "agenticpal.asgi:application",
             "--host", args.host, "--port", str(args.port), "--lifespan", "off",
             "--no-server-header", "--ws-max-size", "65536"],
            env=env, cwd=BASE_DIR,
        )  # fmt: skip
        print(f"\nAgenticPal is running: open http://{args.host}:{args.port}/")
        if login.returncode == 0 and login.stdout.strip():
            print(login.stdout.strip())
        print("Press Ctrl-C to stop.\n", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        if redis_server is not None:
            redis_server.stop()
            print("Embedded Redis stopped (data kept in var/redis).")


if __name__ == "__main__":
    sys.exit(main())
