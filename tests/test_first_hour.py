"""The first hour, done when: a fresh clone, the README's commands as written.

``git clone`` of this repository's committed HEAD (uncommitted work is not in it) into a
temporary directory, with this checkout's ``.venv`` linked in so nothing is downloaded;
then, with no settings in the environment but two free ports (``PORT`` and
``EMBEDDED_REDIS_PORT``, so the suite never touches 8000 or 6379):

- ``make run`` writes ``.env`` (and says so) and answers ``/healthz`` with 200;
- meanwhile ``.venv/bin/python manage.py redis_check`` and ``... check --database
  default`` pass: they read the same ``.env`` and reach the same embedded Redis;
- the first page, its stylesheet and ``/favicon.ico`` answer, without Django's warning
  about synchronous iterators (static files under ASGI);
- Ctrl-C stops the server and Redis;
- ``python manage.py ...`` with a python that lacks the dependencies says how to run it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agenticpal.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
START_TIMEOUT = 45  # seconds for `make run` to answer; the whole test stays under ~60 s


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    """What the test needs is what `make test` gives: missing it is a failure, not a skip."""
    missing = [what for what, ok in (
        ("git", shutil.which("git")), ("make", shutil.which("make")),
        ("the installed .venv (make test)", (VENV / "bin" / "uv").exists() and (VENV / ".base").exists()),
        ("a git checkout", (ROOT / ".git").exists()),
    ) if not ok]  # fmt: skip
    assert not missing, f"test_first_hour needs {', '.join(missing)}"


def user_environment(**extra: str) -> dict[str, str]:
    """A shell's environment: no settings (the suite's own are dropped), no virtualenv."""
    keep = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TERM", "TMPDIR", "REDIS_SERVER_BIN")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    return {**env, **extra}


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "agenticpal"
    subprocess.run(
        ["git", "clone", "--quiet", str(ROOT), str(target)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (target / ".venv").symlink_to(VENV.resolve(), target_is_directory=True)
    # A fresh checkout's requirements are newer than the venv's stamp: make would
    # reinstall. They are the same files, installed: date them back.
    for path in (target / "requirements").glob("*.txt"):
        os.utime(path, (0, 0))
    return target


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Ctrl-C in the terminal: SIGINT to the whole process group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_fresh_clone_runs_as_the_readme_says(clone: Path) -> None:
    port, redis_port = free_port(), free_port()
    env = user_environment(PORT=str(port), EMBEDDED_REDIS_PORT=str(redis_port))
    assert not (clone / ".env").exists() and not (clone / "var").exists()
    log = clone / "make-run.log"

    with log.open("wb") as out:
        server = subprocess.Popen(
            ["make", "run"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        status = 0
        while time.monotonic() < deadline and server.poll() is None:
            if (status := get(f"http://127.0.0.1:{port}/healthz")) == 200:
                break
            time.sleep(0.25)
        assert status == 200, f"/healthz answered {status}:\n{log.read_text(errors='replace')}"
        # The banner follows the first accepted connection: it may come just after.
        while "AgenticPal is running" not in (output := log.read_text(errors="replace")):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert "Wrote .env" in output and "AgenticPal is running" in output, output
        assert f"http://127.0.0.1:{port}/login/local/" in output  # the one-time sign-in link

        dotenv = (clone / ".env").read_text()
        assert "\nDEBUG=true\n" in dotenv
        secret = next(line for line in dotenv.splitlines() if line.startswith("SECRET_KEY="))
        assert len(secret.removeprefix("SECRET_KEY=")) >= 50
        assert (clone / "var" / "db.sqlite3").exists()

        # The first page, its stylesheet and the icon a browser asks for on its own.
        for path in ("/login/", "/static/chat/app.css", "/favicon.ico"):
            assert get(f"http://127.0.0.1:{port}{path}") == 200, path

        # In another terminal, as the README writes them (in parallel: time).
        commands = {
            "redis_check": [".venv/bin/python", "manage.py", "redis_check"],
            "check": [".venv/bin/python", "manage.py", "check", "--database", "default"],
        }
        running = {
            name: subprocess.Popen(
                command,
                cwd=clone,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, command in commands.items()
        }
        results = {name: (p.communicate(timeout=60), p.returncode) for name, p in running.items()}
        (out, err), code = results["redis_check"]
        assert code == 0 and "✓ Redis connected" in out, out + err
        (out, err), code = results["check"]
        assert code == 0 and "no issues" in out, out + err
    finally:
        stop(server)
    output = log.read_text(errors="replace")
    assert "Embedded Redis stopped" in output, output
    assert "Not Found: /favicon.ico" not in output
    assert "StreamingHttpResponse must consume synchronous iterators" not in output
    assert get(f"http://127.0.0.1:{port}/healthz") == 0  # nothing listens any more

    # .env is written once: a second `make dev-env` keeps it.
    before = (clone / ".env").read_text()
    again = subprocess.run(
        ["make", "dev-env"], cwd=clone, env=env, capture_output=True, text=True, timeout=30
    )
    assert again.returncode == 0 and "Wrote" not in again.stdout
    assert (clone / ".env").read_text() == before


def test_manage_py_without_the_dependencies_says_how_to_run_it() -> None:
    # -S: no site-packages, as a system python without Django.
    result = subprocess.run(
        [sys.executable, "-S", "manage.py", "migrate"],
        cwd=ROOT, env=user_environment(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert ".venv/bin/python manage.py migrate" in result.stderr
    assert "make run" in result.stderr


async def test_static_files_stream_asynchronously_under_asgi(recwarn) -> None:
    """WhiteNoise's file response, given an async iterator: no sync-iterator warning."""
    from django.test import AsyncClient

    response = await AsyncClient().get("/static/favicon.ico")
    assert response.status_code == 200 and response.is_async
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body == (ROOT / "agenticpal" / "static" / "favicon.ico").read_bytes()
    assert not [w for w in recwarn if "synchronous iterators" in str(w.message)]


def test_favicon_ico_redirects_to_the_static_icon(client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.ico"
    assert client.get("/static/favicon.ico").status_code == 200
