"""Keep bearer secrets out of log lines: session ids, OAuth codes and states, tokens.

:func:`redact` rewrites text (``?code=…&state=…``, ``/login/local/<token>/``,
``sessionid=…`` cookies, ``Bearer …``, Google tokens, ``session:<id>`` keys);
:class:`RedactingFilter` applies it to a record's message, arguments and traceback.
Django's ``LOGGING`` puts the filter on its handlers; uvicorn configures its own
loggers before it imports the app, so :func:`install` (called by ``agenticpal.asgi``)
adds it to uvicorn's loggers and to every handler already configured.
:func:`short_session_id` is how a session is named in a log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
SHORT_ID_LENGTH = 10  # as the admin and ``manage.py sessions`` show ids; a prefix finds it
_SECRET_NAMES = (
    "code|state|token|access_token|refresh_token|id_token|client_secret|"
    "sessionid|session_id|csrftoken|csrfmiddlewaretoken|password"
)
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # query strings, form bodies, cookie headers: name=value
    (re.compile(rf"(?i)(?<![\w-])({_SECRET_NAMES})=[^&\s\"';,#]+"), rf"\1={REDACTED}"),
    # JSON: "name": "value"
    (re.compile(rf'(?i)("(?:{_SECRET_NAMES})"\s*:\s*)"[^"]*"'), rf'\1"{REDACTED}"'),
    # the one-time local sign-in URL
    (re.compile(r"(/login/local/)[^/\s?\"'#]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer\s+)[\w.~+/=-]{16,}"), rf"\1{REDACTED}"),
    # Google access and refresh tokens wherever they appear
    (re.compile(r"\bya29\.[\w.-]+"), f"ya29.{REDACTED}"),
    (re.compile(r"(?<![\w/])1//[\w.-]+"), f"1//{REDACTED}"),
    # Redis keys that name a secret
    (re.compile(rf"\b(session:[\w-]{{{SHORT_ID_LENGTH}}})[\w-]+"), r"\1…"),
    (re.compile(r"\b(oauth_state:|login_token:)[^\s\"',]+"), rf"\1{REDACTED}"),
)
_SAFE_TYPES = (int, float, bool, type(None), bytes)
_traceback_formatter = logging.Formatter()


def short_session_id(session_id: str | None) -> str:
    """A session id as a log line may show it: its first characters, too few to use."""
    return f"{session_id[:SHORT_ID_LENGTH]}…" if session_id else "(none)"


def redact(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _SAFE_TYPES):
        return value
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not lose the log line
        return value
    cleaned = redact(text)
    return value if cleaned == text else cleaned


# Messages third-party servers log with a traceback for a client's malformed input.
CLIENT_FAULTS = frozenset({"Invalid UTF-8 sequence received from client."})

# Loggers whose formatter unpacks the arguments: they keep their shape.
_KEEP_ARGS = frozenset({"uvicorn.access"})


class RedactingFilter(logging.Filter):
    """Redacts a record in place: message, arguments, traceback.

    The arguments one by one first (uvicorn's access formatter unpacks them); a secret
    that only shows once message and arguments are joined (``"session:%s"``, id) makes
    the record carry the joined, redacted text instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in CLIENT_FAULTS and record.exc_info:
            # A client's bad input that the server handled (uvicorn closes with 1007): one
            # warning line, not a traceback that reads like our own failure.
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        if record.args and record.name not in _KEEP_ARGS:
            try:
                message = record.getMessage()
            except Exception:  # a malformed call: logging reports it itself
                message = None
            if message is not None and (cleaned := redact(message)) != message:
                record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _traceback_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _add_once(target: logging.Filterer) -> None:
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())


def install(logger_names: Iterable[str] = UVICORN_LOGGERS) -> None:
    """Filter the named loggers and every handler of those loggers and of the root logger.

    Idempotent. Call it after logging is configured (uvicorn: before the app is
    imported; Django: in ``django.setup()``): handlers added later are not covered.
    """
    names = list(logger_names)
    for name in names:
        _add_once(logging.getLogger(name))
    for name in [*names, ""]:
        for handler in logging.getLogger(name).handlers:
            _add_once(handler)
