"""Start-up checks (``agenticpal/checks.py``) as Django system checks: Redis answers (a
real redis-server; a free port with nothing on it), the model of ``AGENTICPAL_MODEL`` has
its package and API key; ``manage.py check`` and ``make run`` report them with the fix."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks as django_checks
from django.test import override_settings

from agenticpal import checks, config
from agenticpal.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def nothing_on(port: int | None = None) -> str:
    return f"redis://127.0.0.1:{port or free_port()}"


def redis_conf(url: str, checkpoints_url: str | None = None) -> dict:
    return config.redis_settings(url, checkpoints_url=checkpoints_url, connect_timeout=1)


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG"}}
    environ.update(
        {
            "AGENTICPAL_ENV_FILE": os.devnull,
            "DEBUG": "true",
            "DATABASE_URL": "sqlite://:memory:",
            "AGENTICPAL_MODEL": "",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=90
    )


@pytest.fixture
def provider_package(tmp_path, monkeypatch):
    """Make an (empty) provider package importable, as if it were installed."""

    def install(module: str) -> Path:
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        importlib.invalidate_caches()
        return tmp_path

    return install


# --- Redis ---------------------------------------------------------------------------


def test_redis_that_answers_passes(redis_server):
    with override_settings(REDIS=redis_conf(redis_server.url)):
        assert checks.check_redis(databases=["default"]) == []


def test_redis_that_does_not_answer_is_an_error_with_the_fix():
    url = nothing_on()
    with override_settings(REDIS=redis_conf(url)):
        [error] = checks.check_redis(databases=["default"])
    assert error.level == django_checks.ERROR and error.id == "agenticpal.E001"
    assert url in error.msg and "REDIS_URL" in error.msg and "not reachable" in error.msg
    assert "make run" in error.hint and "make redis" in error.hint and "REDIS_URL" in error.hint


def test_a_checkpoints_server_that_does_not_answer_is_named(redis_server):
    with override_settings(REDIS=redis_conf(redis_server.url, nothing_on() + "/1")):
        [error] = checks.check_redis(databases=["default"])
    assert "CHECKPOINT_REDIS_URL" in error.msg and "CHECKPOINT_REDIS_URL" in error.hint


def test_redis_is_checked_only_when_databases_are():
    """Like Django's database checks: plain `check` reads no network."""
    with override_settings(REDIS=redis_conf(nothing_on())):
        assert checks.check_redis(databases=None) == []
        assert django_checks.run_checks(tags=["redis"]) == []
        ids = [m.id for m in django_checks.run_checks(tags=["redis"], databases=["default"])]
    assert ids == ["agenticpal.E001"]  # registered through the app config


def test_manage_py_check_database_reports_redis(redis_server):
    down = run(["manage.py", "check", "--database", "default"], REDIS_URL=nothing_on())
    assert down.returncode == 1
    assert "agenticpal.E001" in down.stderr and "make run" in down.stderr
    up = run(["manage.py", "check", "--database", "default"], REDIS_URL=redis_server.url)
    assert up.returncode == 0, up.stderr
    plain = run(["manage.py", "check"], REDIS_URL=nothing_on())
    assert plain.returncode == 0, plain.stderr


def test_make_run_stops_when_redis_url_points_at_nothing(tmp_path):
    result = run(
        ["-m", "agenticpal.serve"],
        REDIS_URL=nothing_on(),
        PORT=str(free_port()),
        AGENTICPAL_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    assert result.returncode == 2
    assert "AgenticPal is running" not in result.stdout
    [line] = [line for line in result.stderr.splitlines() if "agenticpal.E001" in line]
    assert "not reachable" in line and "Fix:" in line and "make run" in line
    assert "Traceback" not in result.stderr


# --- the model -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "  ", "offline"])
def test_the_offline_model_needs_nothing(name):
    with override_settings(AGENTICPAL_MODEL=name):
        assert checks.check_model() == []


def test_a_missing_provider_package_is_a_warning_with_the_fix():
    with override_settings(AGENTICPAL_MODEL="groq:llama-3.3-70b-versatile"):
        [warning] = checks.check_model()
    assert warning.level == django_checks.WARNING and warning.id == "agenticpal.W001"
    assert "langchain-groq" in warning.msg
    assert "pip install langchain-groq" in warning.hint and "unset AGENTICPAL_MODEL" in warning.hint


@pytest.mark.parametrize(
    ("model", "module", "variable"),
    [
        ("openai:gpt-4.1-mini", "langchain_openai", "OPENAI_API_KEY"),
        ("gpt-4.1-mini", "langchain_openai", "OPENAI_API_KEY"),  # the provider inferred
        ("anthropic:claude-sonnet-4-5", "langchain_anthropic", "ANTHROPIC_API_KEY"),
        ("claude-sonnet-4-5", "langchain_anthropic", "ANTHROPIC_API_KEY"),
        ("google_genai:gemini-2.5-flash", "langchain_google_genai", "GOOGLE_API_KEY"),
    ],
)
def test_a_missing_api_key_is_a_warning_naming_the_variable(
    model, module, variable, provider_package, monkeypatch
):
    provider_package(module)
    for name in checks.API_KEY_VARIABLES[checks.model_provider(model)[0]]:
        monkeypatch.delenv(name, raising=False)
    with override_settings(AGENTICPAL_MODEL=model):
        [warning] = checks.check_model()
        assert warning.id == "agenticpal.W002"
        assert variable in warning.msg and f"{variable}=" in warning.hint
        monkeypatch.setenv(variable, "sk-test")
        assert checks.check_model() == []


def test_a_provider_without_a_key_variable_is_not_asked_for_one(provider_package):
    provider_package("langchain_ollama")
    with override_settings(AGENTICPAL_MODEL="ollama:llama3.2"):
        assert checks.check_model() == []


def test_an_unknown_provider_is_a_warning():
    with override_settings(AGENTICPAL_MODEL="no-such-provider:some-model"):
        [warning] = checks.check_model()
    assert warning.id == "agenticpal.W003" and "provider:model" in warning.hint


def test_manage_py_check_prints_the_model_warning_and_passes(provider_package):
    path = provider_package("langchain_anthropic")
    result = run(
        ["manage.py", "check"],
        AGENTICPAL_MODEL="anthropic:claude-sonnet-4-5",
        ANTHROPIC_API_KEY="",
        PYTHONPATH=str(path),
    )
    assert result.returncode == 0, result.stderr
    assert "agenticpal.W002" in result.stderr and "ANTHROPIC_API_KEY" in result.stderr
