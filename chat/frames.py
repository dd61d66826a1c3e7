"""Bounded JSON for what clients send: websocket frames and ``POST /api/chat`` bodies.

:func:`parse` refuses, with a reason the sender can act on, a text larger than
``MAX_BYTES`` (a 16 KB message fits even with every character escaped three times),
nesting deeper than ``MAX_DEPTH`` (checked before ``json.loads``, whose recursion a
``[[[[…`` of 100k brackets would exhaust), text that is not JSON, and strings with
an unpaired surrogate escape (``"\\ud800"`` is JSON but not Unicode).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_BYTES = 60 * 1024  # below uvicorn's --ws-max-size (64 KiB), so a frame gets the reason
MAX_DEPTH = 32  # a frame needs 1; anything deeper is not one of ours

# A JSON string (an unterminated one runs to the end), and everything but brackets.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class FrameError(ValueError):
    """Why a frame or body was refused (``str(exc)`` says it to the sender)."""

    status = 400
    code = "bad_request"


class FrameTooLarge(FrameError):
    status = 413
    code = "too_large"


def too_large(size: int, what: str = "The body") -> FrameTooLarge:
    return FrameTooLarge(
        f"{what} is {size} bytes; the limit is {MAX_BYTES} bytes "
        f"({MAX_BYTES // 1024} KB; a message itself can be 16 KB)."
    )


def nesting_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in ``text``, brackets inside strings not counted.

    Exact for valid JSON; for invalid JSON an estimate that never makes it parse.
    Runs at C speed: two regex substitutions and a running sum.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def parse(data: str | bytes, what: str = "The body") -> Any:
    """The JSON value of ``data``, or :class:`FrameError` saying what is wrong with it."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise too_large(len(data), what)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FrameError(f"{what} is not UTF-8 (byte {exc.start}).") from None
    else:
        text = data
        # A character is 1 to 4 bytes of UTF-8: encode only when the count is in doubt.
        if len(text) > MAX_BYTES or (
            len(text) * 4 > MAX_BYTES and len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES
        ):
            raise too_large(len(text.encode("utf-8", "surrogatepass")), what)
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text) > MAX_DEPTH:
        raise FrameError(f"{what} nests JSON more than {MAX_DEPTH} levels deep.")
    try:
        value = json.loads(text)
    except RecursionError:  # cannot happen below MAX_DEPTH; a net all the same
        raise FrameError(f"{what} nests JSON too deeply.") from None
    except ValueError as exc:
        raise FrameError(f"{what} is not valid JSON ({exc}).") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise FrameError(
                f"{what} has an unpaired surrogate escape (\\ud800-\\udfff); send valid Unicode."
            ) from None
    return value
