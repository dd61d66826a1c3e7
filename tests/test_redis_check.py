"""``manage.py redis_check``: the guide's four lines and exit 0, or ``✗`` and exit 1."""

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import redis
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, redis_url: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "agenticpal.settings",
        "AGENTICPAL_ENV_FILE": os.devnull,
        "SECRET_KEY": "test-only-secret-key-0123456789-0123456789-0123456789",
        "DEBUG": "false",
        "DATABASE_URL": "sqlite://:memory:",
        "REDIS_URL": redis_url,
        "REDIS_CONNECT_TIMEOUT": "1",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_prints_the_four_lines_exits_0_and_leaves_no_keys(redis_server):
    result = run_manage("redis_check", redis_url=redis_server.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result.stdout
    assert lines[0] == "✓ Redis connected"
    assert re.fullmatch(r"✓ Created session: [A-Za-z0-9_-]{43}", lines[1])
    assert lines[2] == "✓ Retrieved session for test@example.com"
    assert lines[3] == "✓ Deleted test session"
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.dbsize() == 0
        assert client.execute_command("SELECT", 1) and client.dbsize() == 0


def test_redis_down_prints_the_failure_and_exits_1(redis_factory):
    server = redis_factory()
    server.stop()
    result = run_manage("redis_check", redis_url=server.url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("✗ Redis connection failed")
    assert f"127.0.0.1:{server.port}" in result.stderr and "make redis" in result.stderr


def test_wrong_password_is_a_connection_failure(redis_factory):
    server = redis_factory()
    with redis.Redis.from_url(server.url) as client:
        client.config_set("requirepass", "right")
    result = run_manage("redis_check", redis_url=f"redis://:wrong@127.0.0.1:{server.port}")
    assert result.returncode == 1
    assert result.stderr.startswith("✗ Redis connection failed")
    assert "wrong" not in result.stderr  # the password is masked


def test_in_process_with_another_email(sessions_redis):
    out, err = StringIO(), StringIO()
    call_command("redis_check", "--email", "ops@example.com", stdout=out, stderr=err)
    assert out.getvalue().splitlines()[2] == "✓ Retrieved session for ops@example.com"
    assert err.getvalue() == ""
    assert sessions_redis.dbsize() == 0


def test_in_process_failure_exits_1(redis_factory, settings):
    from tests.conftest import redis_settings

    server = redis_factory()
    settings.REDIS = redis_settings(server.url)["REDIS"]
    server.stop()
    err = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("redis_check", stdout=StringIO(), stderr=err)
    assert exited.value.code == 1
    assert err.getvalue().startswith("✗ Redis connection failed")
