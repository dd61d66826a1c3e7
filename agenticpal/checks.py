"""Start-up checks, as Django system checks: each problem comes with its one-line fix.

- ``agenticpal.E001``: Redis does not answer (db 0, or the checkpoints' server). It
  connects, so like Django's own database checks it runs when databases are checked:
  ``manage.py check --database default`` (also ``--deploy``), ``migrate``, and
  ``make run`` (:mod:`agenticpal.serve`), which stops on it.
- ``agenticpal.W001``: ``AGENTICPAL_MODEL`` names a provider whose package is missing.
- ``agenticpal.W002``: ... or whose API key variable is not set.
- ``agenticpal.W003``: ... or a provider LangChain's ``init_chat_model`` does not know.

The model checks read no network and run with every ``manage.py`` command.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import redis
from django.conf import settings
from django.core import checks

from agenticpal.config import mask_password, with_db

REDIS_TIMEOUT = 2.0  # seconds: a check must not hang start-up

# The environment variable each provider's LangChain package reads its key from (any
# one of them will do). Providers not listed authenticate otherwise (cloud credential
# chains, a local server) and are not checked.
API_KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "azure_openai": ("AZURE_OPENAI_API_KEY",),
    "cohere": ("COHERE_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "fireworks": ("FIREWORKS_API_KEY",),
    "google_genai": ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    "groq": ("GROQ_API_KEY",),
    "mistralai": ("MISTRAL_API_KEY",),
    "nvidia": ("NVIDIA_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "perplexity": ("PPLX_API_KEY", "PERPLEXITY_API_KEY"),
    "together": ("TOGETHER_API_KEY",),
    "upstage": ("UPSTAGE_API_KEY",),
    "xai": ("XAI_API_KEY",),
}


def register() -> None:
    """Called from :class:`agenticpal.apps.AgenticPalConfig.ready`."""
    checks.register(check_redis, "redis", checks.Tags.database)
    checks.register(check_model, "models")


# --- Redis ---------------------------------------------------------------------------


def redis_error(url: str) -> str | None:
    """Why the Redis server at ``url`` does not answer a PING, or None when it does."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
    )
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        return str(exc).rstrip(".") or type(exc).__name__
    except OSError as exc:
        return str(exc).rstrip(".") or type(exc).__name__
    finally:
        client.close()
    return None


def check_redis(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list:
    if not databases:  # like Django's database checks: connect only when asked to
        return []
    conf = settings.REDIS
    servers = {with_db(conf["SESSIONS_URL"], 0): "REDIS_URL"}
    servers.setdefault(with_db(conf["CHECKPOINTS_URL"], 0), "CHECKPOINT_REDIS_URL")
    found = []
    for url, variable in servers.items():
        error = redis_error(url)
        if error is None:
            continue
        if variable == "REDIS_URL":
            hint = (
                "unset REDIS_URL and `make run` starts its embedded Redis (`make redis` runs "
                "it alone), or set REDIS_URL (environment or .env) to a running server."
            )
        else:
            hint = "set CHECKPOINT_REDIS_URL to a running server, or unset it (db 1 of REDIS_URL)."
        found.append(
            checks.Error(
                f"Redis at {mask_password(url)} ({variable}) is not reachable: {error}.",
                hint=hint,
                id="agenticpal.E001",
            )
        )
    return found


# --- the model -----------------------------------------------------------------------


def model_provider(name: str) -> tuple[str | None, str | None]:
    """``(provider, package module)`` of an ``init_chat_model`` id, as LangChain parses it:
    ``"openai:gpt-4.1-mini"`` -> ``("openai", "langchain_openai")``; ``"claude-..."`` ->
    ``("anthropic", ...)``. ``(None, None)`` when LangChain cannot tell the provider.

    Raises LookupError when this LangChain has no such table (its internals moved)."""
    try:  # the table and parser init_chat_model itself uses
        from langchain.chat_models.base import _BUILTIN_PROVIDERS, _parse_model
    except ImportError as exc:
        raise LookupError(str(exc)) from None
    try:
        _model, provider = _parse_model(name, None)
    except ValueError:
        return None, None
    entry = _BUILTIN_PROVIDERS.get(provider)
    return provider, (entry[0].split(".", 1)[0] if entry else None)


def check_model(app_configs: Any = None, **kwargs: Any) -> list:
    name = (getattr(settings, "AGENTICPAL_MODEL", "") or "").strip()
    if not name or name == "offline":
        return []
    try:
        provider, module = model_provider(name)
    except LookupError:  # cannot tell without LangChain's table: make_model will say
        return []
    offline = "or unset AGENTICPAL_MODEL to use the offline demo model"
    if provider is None or module is None:
        return [
            checks.Warning(
                f"AGENTICPAL_MODEL={name!r} names no chat model provider LangChain knows.",
                hint=f"Use 'provider:model', e.g. 'openai:gpt-4.1-mini', {offline}.",
                id="agenticpal.W003",
            )
        ]
    if importlib.util.find_spec(module) is None:
        package = module.replace("_", "-")
        return [
            checks.Warning(
                f"AGENTICPAL_MODEL={name!r} needs the {package} package, which is not installed.",
                hint=f"Install it: `.venv/bin/python -m pip install {package}`, {offline}.",
                id="agenticpal.W001",
            )
        ]
    variables = API_KEY_VARIABLES.get(provider, ())
    if variables and not any(os.environ.get(v, "").strip() for v in variables):
        return [
            checks.Warning(
                f"AGENTICPAL_MODEL={name!r} needs an API key in {' or '.join(variables)}, "
                "which is not set.",
                hint=f"Set {variables[0]}=... in .env (or the environment), {offline}.",
                id="agenticpal.W002",
            )
        ]
    return []
