"""Bad configuration stops start-up with one line naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from agenticpal import config

ROOT = Path(__file__).resolve().parent.parent


def run_check(**env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environ.update({"AGENTICPAL_ENV_FILE": os.devnull, "DEBUG": "true", **env})
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "redis://localhost:notaport"),
        ("REDIS_URL", "redis://localhost:6379/zero"),
        ("CHECKPOINT_REDIS_URL", "localhost:6379"),
        ("SESSION_TTL_SECONDS", "seven days"),
        ("OAUTH_STATE_TTL_SECONDS", "-5"),
        ("EMBEDDED_REDIS_PORT", "six"),
        ("EMBEDDED_REDIS_PORT", "70000"),
        ("GC_THRESHOLD", "lots"),
        ("GC_THRESHOLD", "0"),
    ],
)
def test_bad_value_stops_startup_with_one_line(name: str, value: str) -> None:
    result = run_check(**{name: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert "Traceback" not in result.stderr


def test_password_is_masked_in_errors() -> None:
    result = run_check(REDIS_URL="redis://:hunter2@localhost:6379/x")
    assert result.returncode == 2
    assert "hunter2" not in result.stderr
    assert "***" in result.stderr


def test_secret_key_required_without_debug() -> None:
    result = run_check(DEBUG="false", SECRET_KEY="")
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr


def test_good_configuration_passes() -> None:
    result = run_check(REDIS_URL="rediss://:pw@redis.example.com:12345", SESSION_TTL_SECONDS="60")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("url", "db", "expected"),
    [
        ("redis://localhost:6379", 0, "redis://localhost:6379/0"),
        ("redis://:pw@localhost:6379/5", 1, "redis://:pw@localhost:6379/1"),
        ("rediss://default:pw@host:12345", 1, "rediss://default:pw@host:12345/1"),
        ("unix:///tmp/redis.sock", 1, "unix:///tmp/redis.sock?db=1"),
        ("unix:///tmp/redis.sock?db=3&password=x", 0, "unix:///tmp/redis.sock?password=x&db=0"),
    ],
)
def test_with_db(url: str, db: int, expected: str) -> None:
    assert config.with_db(url, db) == expected


def test_checkpoint_url_defaults_to_db_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:pw@h:1")
    assert config.redis_url("REDIS_URL", None) == "redis://:pw@h:1"
    monkeypatch.setenv("SESSION_TTL_SECONDS", "0")
    with pytest.raises(ImproperlyConfigured, match="SESSION_TTL_SECONDS"):
        config.positive_int("SESSION_TTL_SECONDS", 10)


def read_settings(*names: str, **env: str) -> list:
    """The values of ``names`` in a fresh process with ``env`` (no .env)."""
    environ = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", *env}}
    for name in ("REDIS_URL", "EMBEDDED_REDIS_PORT", "WORKSPACE_APPROVE_DRAFTS", "DATABASE_URL"):
        environ.pop(name, None)
    environ.update({"AGENTICPAL_ENV_FILE": os.devnull, "DEBUG": "true", **env})
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps([getattr(s, n) for n in {list(names)!r}], default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environ, "DJANGO_SETTINGS_MODULE": "agenticpal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_redis_url_defaults_to_the_embedded_redis_port(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    [conf] = read_settings("REDIS", DATABASE_URL=database)
    assert conf["URL"] == "redis://127.0.0.1:6379"
    [conf] = read_settings("REDIS", EMBEDDED_REDIS_PORT="16380", DATABASE_URL=database)
    assert conf["URL"] == "redis://127.0.0.1:16380"
    assert conf["CHECKPOINTS_URL"] == "redis://127.0.0.1:16380/1"
    [conf] = read_settings(
        "REDIS", EMBEDDED_REDIS_PORT="16380", REDIS_URL="redis://h:1", DATABASE_URL=database
    )
    assert conf["URL"] == "redis://h:1"  # an explicit REDIS_URL wins


def test_workspace_approve_drafts(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert read_settings("WORKSPACE_APPROVE_DRAFTS", DATABASE_URL=database) == [False]
    assert read_settings(
        "WORKSPACE_APPROVE_DRAFTS", WORKSPACE_APPROVE_DRAFTS="true", DATABASE_URL=database
    ) == [True]


def test_the_sqlite_databases_directory_is_created(tmp_path: Path) -> None:
    """A fresh clone has no var/: settings create it before Django opens the database."""
    database = tmp_path / "var" / "nested" / "db.sqlite3"
    read_settings("DATABASES", DATABASE_URL=f"sqlite:///{database}")
    assert database.parent.is_dir() and not database.exists()
