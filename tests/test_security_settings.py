"""Production settings from the environment: `.env.example`'s production section passes
`manage.py check --deploy` with no warning; HSTS, SSL redirect and the proxy header are
read from the environment; bad values stop start-up with one line."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent


def production_section() -> dict[str, str]:
    """The commented ``NAME=value`` lines of ``.env.example``'s production section."""
    text = (ROOT / ".env.example").read_text()
    section = text.split("# --- Production", 1)[1].split("\n\n", 1)[0]
    values = dict(re.findall(r"(?m)^# ([A-Z][A-Z0-9_]*)=(.*)$", section))
    assert {"DEBUG", "SECRET_KEY", "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT"} <= set(values)
    placeholders = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CREDENTIALS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    for name, value in values.items():
        if value.startswith("<"):
            values[name] = placeholders[name]
    return values


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECURE_", "SESSION_", "CSRF_")) and k != "DJANGO_SETTINGS_MODULE"
    }
    environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "agenticpal.settings",
            "AGENTICPAL_ENV_FILE": os.devnull,
            "REDIS_URL": "redis://127.0.0.1:1",  # never connected to by these commands
            "DATABASE_URL": "sqlite://:memory:",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )


def test_env_example_ships_debug_off() -> None:
    text = (ROOT / ".env.example").read_text()
    assert re.search(r"(?m)^DEBUG=false$", text)
    assert not re.search(r"(?m)^DEBUG=true$", text)
    assert "Development: DEBUG=true" in text


def test_check_deploy_is_clean_with_the_documented_production_settings() -> None:
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **production_section()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_is_missing_without_them() -> None:
    """The test above means something: without the section, the warnings are there."""
    env = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50)}
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_security_settings_come_from_the_environment() -> None:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SECURE_HSTS_PRELOAD, s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE]))"
    )
    production = run(["-c", code], **production_section())
    assert production.returncode == 0, production.stderr
    assert json.loads(production.stdout) == [
        31536000,
        True,
        True,
        True,
        ["HTTP_X_FORWARDED_PROTO", "https"],
        True,
        True,
    ]
    development = run(["-c", code], DEBUG="true")
    assert json.loads(development.stdout) == [0, False, False, False, None, False, False]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto"),
        ("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO"),
        ("SECURE_HSTS_SECONDS", "1 year"),
        ("SECURE_HSTS_SECONDS", "-1"),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line(name: str, value: str) -> None:
    result = run(["manage.py", "check"], DEBUG="true", **{name: value})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert name in line and "Traceback" not in result.stderr
