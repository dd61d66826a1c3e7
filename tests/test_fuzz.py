"""Fuzz the real server with 1,600 generated malformed inputs: not one answer >= 500.

One :class:`LiveServer` (uvicorn + its own redis-server) for the module; inputs come
from ``random.Random(FUZZ_SEED)`` (default 13, named in every failure) so a failure
reproduces. Passing: no HTTP status >= 500, every websocket closed with the code its
input calls for (never 1011, never without a close frame), every ``/api/`` error Django
answers is JSON, no traceback in the server log, and ``/healthz`` still answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio as aredis
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from agenticpal import redis_keys as keys
from tests.e2e_support import CSRF_COOKIE, SESSION_COOKIE, LiveServer, asign_in, ws_connect

SEED = int(os.environ.get("FUZZ_SEED", "13"))
HTTP_CONCURRENCY = 16
WS_SOCKETS = 4
WS_FRAMES = 600
MIN_INPUTS = 1_000
# 1000 normal; 1007 invalid UTF-8; 1009 over uvicorn's --ws-max-size; ours: 44xx.
CLOSE_OK = {1000, 1007, 1009, 4400, 4401, 4403, 4404, 4410}
SSE_ID_TOP = 2**64 - 1

PIECES = [
    *string.ascii_letters,
    *string.digits,
    *string.punctuation,
    " ", "\t", "\n", "\r", "\x00", "\x7f", "\x1b", "é", "ß", "中", "😀", "\u202e",
    "\u200b", "\ufeff", "\u0301", "\uffff", "%", "%00", "%ff", "../", "\\u0000", "{{", "]}",
]  # fmt: skip
LATIN1 = bytes(range(0x20, 0x7F)) + bytes(range(0xA0, 0x100))
URL_SAFE = string.ascii_letters + string.digits + "-_"
WRONG_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**80, 3.14, 1e308, "", " ", "\n\t", [], {}, [1, "a"],
    {"a": {"b": None}}, "x" * 17_000, "Europe/../../etc/passwd", "ü" * 70,
]  # fmt: skip


# --- the tally -----------------------------------------------------------------------


@dataclass
class Tally:
    sent: Counter = field(default_factory=Counter)  # inputs per kind
    outcomes: Counter = field(default_factory=Counter)  # "http 400", "close 4400", ...
    failures: list[str] = field(default_factory=list)

    def fail(self, kind: str, what: Any, why: str) -> None:
        self.failures.append(f"[{kind}] {show(what)} -> {why}")

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def show(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


# --- generators -------------------------------------------------------------------------


def junk(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(length))


def junk_header(rng: random.Random, length: int) -> bytes:
    """Bytes a header value may carry (printable Latin-1: no CR, LF or NUL)."""
    return bytes(rng.choice(LATIN1) for _ in range(length)).strip()


def random_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 4 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 2**63, -(2**70), rng.randint(-1000, 1000)])
    if pick == 3:
        return rng.choice([0.5, -1e300, 1e-300, rng.random()])
    if pick in (4, 5):
        return junk(rng, rng.randint(0, 40))
    if pick in (6, 7):
        return {junk(rng, rng.randint(0, 8)): random_json(rng, depth + 1) for _ in range(3)}
    return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def deep(rng: random.Random) -> str:
    opener = rng.choice(["[", '{"a":', '{"type":', '[{"message":'])
    levels = rng.choice([33, 100, 1_000, rng.randint(40, 20_000), 100_000])
    text = opener * levels
    if rng.random() < 0.5:
        closer = {"[": "]", '{"a":': "}", '{"type":': "}", '[{"message":': "}]"}[opener]
        text += "1" + closer * levels
    return text


def huge(rng: random.Random) -> str:
    size = rng.choice([16_384, 16_385, 30_000, 61_000, 63_000, 66_000, 200_000])
    if rng.random() < 0.7:
        return json.dumps({"type": "message", "message": rng.choice("xé😀") * size})
    return junk(rng, 1) * size


def wrong_fields(rng: random.Random, types: list[str]) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": rng.choice(types)}
    for name in rng.sample(["message", "timezone", "thread_id", "id", "message_id"], 2):
        frame[name] = rng.choice([*WRONG_VALUES, junk(rng, rng.randint(1, 30))])
    return frame


RAW_FRAMES = [
    '{"type": "message", "message": NaN}',
    '{"type": "message", "message": Infinity}',
    '{"type": "message", "message": "\\ud800"}',
    '{"type": "message", "message": "ok \\udfff\\ud800"}',
    '{"type": "message", "message": "x", "type": "ping"}',
    '{"type": "message", "message": "1' + "0" * 5_000 + '"}',
    '{"type": 1' + "0" * 5_000 + "}",
    "\ufeff{}",
    "",
    " ",
    "null",
    '"message"',
]


def ws_frames(rng: random.Random, count: int) -> list[tuple[str, str | bytes, bool]]:
    """(kind, payload, send as a text frame) for the chat socket."""
    out: list[tuple[str, str | bytes, bool]] = []
    kinds = ["binary", "text", "json", "deep", "huge", "fields", "unknown", "raw", "bad utf-8"]
    for _ in range(count):
        kind = rng.choice(kinds)
        if kind == "binary":
            out.append((kind, rng.randbytes(rng.randint(0, 2_000)), False))
        elif kind == "text":
            out.append((kind, junk(rng, rng.randint(0, 400)), True))
        elif kind == "json":
            out.append((kind, json.dumps(random_json(rng)), True))
        elif kind == "deep":
            out.append((kind, deep(rng), True))
        elif kind == "huge":
            out.append((kind, huge(rng), True))
        elif kind == "fields":
            types = ["message", "message", "cancel", "ping"] + (
                ["delete"] if rng.random() < 0.1 else []
            )
            out.append((kind, json.dumps(wrong_fields(rng, types)), True))
        elif kind == "unknown":
            unknown = rng.choice([*WRONG_VALUES, junk(rng, rng.randint(1, 80)), "MESSAGE"])
            out.append((kind, json.dumps({"type": unknown, "message": "hi"}), True))
        elif kind == "raw":
            out.append((kind, rng.choice(RAW_FRAMES), True))
        else:  # invalid UTF-8 in a text frame: the server must close with 1007
            out.append((kind, b"\xff\xfe" + rng.randbytes(rng.randint(0, 50)), True))
    return out


CONTENT_TYPES = [
    "application/json", "application/json", "application/json", "text/plain", "",
    "application/json; charset=utf-16", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zzz", "multipart/form-data", "application/xml", "é/ü",
]  # fmt: skip


def api_bodies(rng: random.Random, count: int) -> list[tuple[str, bytes, str]]:
    """(kind, body, content type) for POST /api/chat."""
    out: list[tuple[str, bytes, str]] = []
    kinds = ["bytes", "text", "json", "deep", "huge", "fields", "raw", "form"]
    for _ in range(count):
        kind = rng.choice(kinds)
        content_type = "application/json" if rng.random() < 0.6 else rng.choice(CONTENT_TYPES)
        if kind == "bytes":
            body = rng.randbytes(rng.randint(0, 3_000))
        elif kind == "text":
            body = junk(rng, rng.randint(0, 500)).encode("utf-8", "surrogatepass")
        elif kind == "json":
            body = json.dumps(random_json(rng)).encode()
        elif kind == "deep":
            body = deep(rng).encode()
        elif kind == "huge":
            body = huge(rng).encode()
            if rng.random() < 0.2:
                body = b'{"message": "' + b"x" * 3_000_000 + b'"}'  # past Django's 2.5 MB
        elif kind == "fields":
            fields = wrong_fields(rng, ["message"])
            fields["message"] = fields.pop("type") if rng.random() < 0.3 else fields.get("id")
            body = json.dumps(fields).encode()
        elif kind == "raw":
            body = rng.choice(RAW_FRAMES).encode()
        else:
            body = "&".join(f"{junk(rng, 3)}={junk(rng, 5)}" for _ in range(20)).encode()
        out.append((kind, body, content_type))
    return out


def odd_thread_ids(rng: random.Random, count: int) -> list[str]:
    """Thread-id path segments, already percent-encoded where needed."""
    fixed = [
        # Literal "." and ".." segments never leave the client (httpx and browsers drop
        # them); "%2e" arrives at the server as ".".
        "", " ", "%2e", "%2e%2e", "a%2Fb", "%00", "%ff", "%C0%AF", "%zz", "%", "%%",
        "a%20b", "%0A", "%0D%0A", "null", "undefined", "-1", "CON", "%3Cscript%3E",
        "x" * 65, "x" * 1_000, "x" * 6_000, "%E2%80%AE", "%F0%9F%98%80", "valid-id_1",
    ]  # fmt: skip
    ids = list(fixed)
    while len(ids) < count:
        ids.append(quote(junk(rng, rng.randint(1, 40)), safe=rng.choice(["", "%", "-_."])))
    return ids[:count]


def last_event_ids(rng: random.Random, count: int) -> list[bytes]:
    fixed = [
        b"99999999999999999999-99999999999999999999",
        b"18446744073709551616-0",
        b"0-18446744073709551616",
        b"18446744073709551615-18446744073709551615",
        b"0-0",
        b"-1-0",
        b"1-",
        b"-",
        b"1-1-1",
        b"0x10-0",
        b"1e3-0",
        b"\xb2-\xb3",  # superscript digits in Latin-1
        b"*",
        b"$",
        b"+",
        b"1" * 200,
    ]
    values = list(fixed)
    while len(values) < count:
        values.append(junk_header(rng, rng.randint(1, 60)) or b"x")
    return values[:count]


def ours(value: str | None) -> bool:
    """Whether the server takes ``value`` as a stream id (then no history is sent)."""
    if not value or not value.isascii():
        return False
    head, sep, tail = value.partition("-")
    parts = [head, tail]
    return (
        sep == "-"
        and all(p.isdigit() and 1 <= len(p) <= 20 and int(p) <= SSE_ID_TOP for p in parts)
        and "-" not in tail
    )


# --- the server and its clients --------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer() as live:
        yield live


@dataclass
class Ctx:
    server: LiveServer
    http: httpx.AsyncClient  # signed in, with the CSRF cookie
    bare: httpx.AsyncClient  # no cookies of its own: forged ones go in the Cookie header
    tally: Tally
    limit: asyncio.Semaphore

    @property
    def cookie(self) -> str:
        return self.http.cookies[SESSION_COOKIE]

    @property
    def csrf(self) -> dict[str, str]:
        return {"X-CSRFToken": self.http.cookies[CSRF_COOKIE]}


def is_api(path: str) -> bool:
    return path.startswith("/api/")


async def hit(
    ctx: Ctx,
    kind: str,
    what: Any,
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    path: str = "",
    method: str = "GET",
) -> httpx.Response | None:
    """Send one request, tally it, and note a failure if it broke the contract."""
    ctx.tally.sent[kind] += 1
    async with ctx.limit:
        try:
            response = await send()
        except httpx.TransportError as exc:
            ctx.tally.outcomes[f"http dropped ({type(exc).__name__})"] += 1
            return None
    status = response.status_code
    ctx.tally.outcomes[f"http {status}"] += 1
    if status >= 500:
        ctx.tally.fail(kind, what, f"HTTP {status}: {text_of(response)}")
    elif is_api(path) and status >= 400 and method != "HEAD":
        reached_django = "x-content-type-options" in response.headers
        if reached_django and not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            ctx.tally.fail(kind, what, f"HTTP {status} on {path} is not JSON: {text_of(response)}")
    return response


def text_of(response: httpx.Response) -> str:
    try:
        return response.text[:300]
    except httpx.ResponseNotRead:
        return "(a stream, not read)"


def forged_cookie_header(value: str | bytes) -> dict[str, bytes]:
    raw = value if isinstance(value, bytes) else value.encode("latin-1", "replace")
    return {"Cookie": SESSION_COOKIE.encode() + b"=" + raw}


# --- websocket drivers -----------------------------------------------------------------


async def drain(ws, inbox: asyncio.Queue) -> None:
    """Everything the server sends, then ``None`` once the socket is closed."""
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            inbox.put_nowait(message)
    inbox.put_nowait(None)


def closing_code(kind: str, payload: str | bytes) -> int | None:
    """The close code a frame must get (the socket ends), or None (it lives on)."""
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8", "replace"))
    if kind == "bad utf-8":
        return 1007
    if size > 65_536:  # LiveServer's --ws-max-size, as agenticpal.serve's
        return 1009
    if '"type": "delete"' in str(payload):
        return 4410
    return None


async def ws_worker(
    ctx: Ctx, worker: int, frames: list[tuple[str, str | bytes, bool]], tally: Tally
) -> None:
    """Send ``frames`` one at a time over the chat socket, each followed by a ping whose
    pong says the frame was handled; a frame that closes the socket is followed by its
    close instead (a frame sent after it would race the close), then a new socket opens."""
    index = 0
    sockets = 0
    while index < len(frames):
        sockets += 1
        thread = f"fuzz-{SEED}-{worker}-{sockets}"
        async with ws_connect(ctx.server, thread, ctx.cookie, max_size=None) as ws:
            inbox: asyncio.Queue = asyncio.Queue()
            reader = asyncio.create_task(drain(ws, inbox))
            expected: int | None = None
            last: tuple[str, Any] = ("connect", thread)
            try:
                while index < len(frames) and expected is None:
                    kind, payload, text = frames[index]
                    index += 1
                    last = (f"ws frame: {kind}", payload)
                    tally.sent[last[0]] += 1
                    expected = closing_code(kind, payload)
                    await ws.send(payload, text=text)
                    if expected is None:
                        await ws.send('{"type": "ping"}')
                    async with asyncio.timeout(15):
                        while (message := await inbox.get()) is not None:
                            check_event(tally, last, message)
                            if expected is None and message == '{"type": "pong"}':
                                break
                        else:
                            if expected is None:
                                break  # closed by the server: the code is checked below
            except ConnectionClosed:
                pass
            except TimeoutError:
                tally.fail(last[0], last[1], "neither a pong nor a close within 15 s")
            await ws.close()
            await reader
        rcvd = ws.protocol.close_rcvd
        code = rcvd.code if rcvd is not None else None
        tally.outcomes[f"close {code}"] += 1
        if code != (expected or 1000):
            reason = rcvd.reason if rcvd is not None else "no close frame"
            tally.fail(last[0], last[1], f"websocket closed with {code} ({reason})")


def check_event(tally: Tally, last: tuple[str, Any], message: Any) -> None:
    try:
        event = json.loads(message)
    except (TypeError, ValueError):
        tally.fail(last[0], last[1], f"the server sent a non-JSON frame {show(message)}")
        return
    if event.get("type") == "error" and not isinstance(event.get("reason"), str):
        tally.fail(last[0], last[1], f"an error event without a reason: {show(event)}")


async def ws_handshake(
    ctx: Ctx, kind: str, path: str, headers: dict[str, str | bytes] | None = None
) -> None:
    """Open ``path``; tally the handshake status or the close code."""
    from websockets.asyncio.client import connect

    ctx.tally.sent[kind] += 1
    url = f"ws://{ctx.server.host}:{ctx.server.port}{path}"
    # websockets takes str header values (bytes would be sent as "b'...'").
    text_headers = {
        name: value.decode("latin-1") if isinstance(value, bytes) else value
        for name, value in (headers or {}).items()
    }
    async with ctx.limit:
        try:
            async with connect(
                url, origin=ctx.server.origin, additional_headers=text_headers, open_timeout=15
            ) as ws:
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    async with asyncio.timeout(5):
                        async for _ in ws:
                            break  # a valid id gets its history: enough
                await ws.close()
                rcvd = ws.protocol.close_rcvd
        except InvalidURI:
            ctx.tally.sent[kind] -= 1  # the client would not send it: not an input
            ctx.tally.outcomes["ws URL refused by the client"] += 1
            return
        except InvalidStatus as exc:
            status = exc.response.status_code
            ctx.tally.outcomes[f"ws handshake {status}"] += 1
            if status >= 500:
                ctx.tally.fail(kind, path, f"handshake answered HTTP {status}")
            return
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            ctx.tally.outcomes[f"ws handshake dropped ({type(exc).__name__})"] += 1
            return
    code = rcvd.code if rcvd is not None else None
    ctx.tally.outcomes[f"close {code}"] += 1
    if code not in CLOSE_OK:
        ctx.tally.fail(kind, path, f"websocket closed with {code}")


# --- HTTP drivers ----------------------------------------------------------------------


async def body_case(ctx: Ctx, kind: str, body: bytes, content_type: str, csrf: bool) -> None:
    headers: dict[str, str | bytes] = {**(ctx.csrf if csrf else {})}
    if content_type:
        headers["Content-Type"] = content_type.encode("latin-1")
    await hit(
        ctx,
        f"POST /api/chat body: {kind}",
        (content_type, body),
        lambda: ctx.http.post("/api/chat", content=body, headers=headers),
        path="/api/chat",
        method="POST",
    )


async def sse_case(ctx: Ctx, value: bytes, in_query: bool, thread: str) -> None:
    kind = "Last-Event-ID " + ("query" if in_query else "header")
    text = value.decode("latin-1")
    params = {"thread_id": thread}
    headers: dict[str, bytes] = {}
    if in_query:
        params["last_event_id"] = text
    else:
        headers["Last-Event-ID"] = value
    ctx.tally.sent[kind] += 1
    async with ctx.limit:
        try:
            async with ctx.http.stream(
                "GET", "/api/chat/stream", params=params, headers=headers
            ) as response:
                ctx.tally.outcomes[f"http {response.status_code}"] += 1
                if response.status_code != 200:
                    if response.status_code >= 500:
                        ctx.tally.fail(kind, value, f"HTTP {response.status_code}")
                    return
                want_history = not ours(text.strip())
                lines: list[str] = []
                async with asyncio.timeout(10):
                    async for line in response.aiter_lines():
                        lines.append(line)
                        if line.startswith("retry:") and not want_history:
                            return
                        if line.startswith("data:") or line.startswith("event:"):
                            break
                first = lines[-1] if lines else ""
                if not first.startswith("data:") or json.loads(first[5:])["type"] != "history":
                    ctx.tally.fail(kind, value, f"no history event first: {show(lines)}")
        except TimeoutError:
            ctx.tally.fail(kind, value, "the stream sent nothing for 10 s")
        except httpx.TransportError as exc:
            ctx.tally.outcomes[f"http dropped ({type(exc).__name__})"] += 1


def session_id_like(rng: random.Random, real: str) -> str:
    """A random id of the real one's shape (URL-safe, same length): it reaches Redis."""
    return "".join(rng.choice(URL_SAFE) for _ in range(len(real)))


async def wrong_type_sessions(ctx: Ctx, rng: random.Random) -> list[Awaitable[None]]:
    """``session:<id>`` keys holding something that is not a session record."""
    assert ctx.server.redis is not None
    client = aredis.Redis.from_url(ctx.server.redis.url)
    cases: list[Awaitable[None]] = []
    try:
        shapes = ["hash", "list", "set", "zset", "stream", "garbage", "json list", "json num"]
        shapes += ["json wrong", "empty", "huge"]
        for shape in shapes:
            sid = session_id_like(rng, ctx.cookie)
            key = keys.session_key(sid)
            if shape == "hash":
                await client.hset(key, mapping={"django": "{}", "user": "x"})
            elif shape == "list":
                await client.rpush(key, "a", "b")
            elif shape == "set":
                await client.sadd(key, "a")
            elif shape == "zset":
                await client.zadd(key, {"a": 1})
            elif shape == "stream":
                await client.xadd(key, {"a": "b"})
            elif shape == "garbage":
                await client.set(key, b"\xff\x00not json")
            elif shape == "json list":
                await client.set(key, "[1, 2]")
            elif shape == "json num":
                await client.set(key, "42")
            elif shape == "json wrong":
                await client.set(key, json.dumps({"django": "x", "thread_ids": 5, "email": []}))
            elif shape == "empty":
                await client.set(key, "")
            else:
                await client.set(key, "[" * 100_000)
            cookie = forged_cookie_header(sid)
            for path in ["/", "/api/threads", "/chat/new", "/login/"]:
                cases.append(
                    hit(
                        ctx,
                        f"session record: {shape}",
                        (shape, path),
                        lambda path=path, cookie=cookie: ctx.bare.get(path, headers=cookie),
                        path=path,
                    )
                )
            cases.append(
                ws_handshake(
                    ctx, f"session record: {shape}", "/ws/chat/fuzz-wrong-type/", headers=cookie
                )
            )
    finally:
        await client.aclose()
    return cases


def cookie_cases(ctx: Ctx, rng: random.Random) -> list[Awaitable[None]]:
    real = ctx.cookie
    alnum = string.ascii_lowercase + string.digits
    forged: list[str | bytes] = [
        "", "null", "*", "session:*", "../../etc", '"quoted"', real + "x", real[:-1],
        real[:-1] + ("a" if real[-1] != "a" else "b"), real.upper(), real + ";" + real,
        "x" * 4_000, "\\x00",
    ]  # fmt: skip
    forged += [session_id_like(rng, real) for _ in range(10)]  # well formed, unknown
    forged += ["".join(rng.choice(alnum) for _ in range(32)) for _ in range(3)]
    forged += [junk_header(rng, rng.randint(1, 80)).replace(b";", b"") for _ in range(12)]
    cases: list[Awaitable[None]] = []
    for value in forged:
        header = forged_cookie_header(value)
        for method, path in [("GET", "/"), ("GET", "/api/threads"), ("GET", "/chat/fuzz-c/")]:
            cases.append(
                hit(
                    ctx,
                    "forged session cookie",
                    (path, value),
                    lambda path=path, header=header: ctx.bare.get(path, headers=header),
                    path=path,
                    method=method,
                )
            )
        cases.append(ws_handshake(ctx, "forged session cookie", "/ws/chat/fuzz-c/", header))
    # Huge and many cookies, with the real session among them.
    for size in [4_000, 8_000, 16_000, 60_000, 200_000]:
        blob = b"big=" + b"y" * size + b"; " + SESSION_COOKIE.encode() + b"=" + real.encode()
        for path in ["/", "/api/threads"]:
            cases.append(
                hit(
                    ctx,
                    "huge cookie",
                    (path, size),
                    lambda path=path, blob=blob: ctx.bare.get(path, headers={"Cookie": blob}),
                    path=path,
                )
            )
    for pairs in [100, 1_000, 5_000]:
        many = "; ".join(f"c{i}={i}" for i in range(pairs)) + f"; {SESSION_COOKIE}={real}"
        cases.append(
            hit(
                ctx,
                "huge cookie",
                ("pairs", pairs),
                lambda many=many: ctx.bare.get("/api/threads", headers={"Cookie": many}),
                path="/api/threads",
            )
        )
    # Forged CSRF tokens on a POST: a JSON 403.
    for _ in range(10):
        token = junk_header(rng, rng.randint(0, 70)) or b"x"
        cases.append(
            hit(
                ctx,
                "forged CSRF token",
                token,
                lambda token=token: ctx.http.post(
                    "/api/chat", json={"message": "hi"}, headers={"X-CSRFToken": token}
                ),
                path="/api/chat",
                method="POST",
            )
        )
    return cases


def id_cases(ctx: Ctx, ids: list[str]) -> list[Awaitable[None]]:
    cases: list[Awaitable[None]] = []
    form = {"message": "hi", "csrfmiddlewaretoken": ctx.http.cookies[CSRF_COOKIE]}
    signed_in = forged_cookie_header(ctx.cookie)
    for thread in ids:
        for method, path in [
            ("GET", f"/chat/{thread}/"),
            ("GET", f"/api/threads/{thread}"),
            ("DELETE", f"/api/threads/{thread}"),
            ("POST", f"/chat/{thread}/send"),
        ]:
            if method == "POST":
                send = lambda path=path: ctx.http.post(path, data=form)  # noqa: E731
            else:
                send = lambda method=method, path=path: ctx.http.request(  # noqa: E731
                    method, path, headers=ctx.csrf
                )
            kind = f"thread id in {method} /{path.split('/')[1]}/…"
            cases.append(hit(ctx, kind, path, send, path=path, method=method))
        cases.append(ws_handshake(ctx, "thread id in /ws/chat/…", f"/ws/chat/{thread}/", signed_in))
    for path in ["/ws/", "/ws/chat/", "/ws/chat/x", "/ws/chat/a/b/", "/nothing/", "/ws/chat/%2F/"]:
        cases.append(ws_handshake(ctx, "other websocket path", path, signed_in))
    return cases


METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO"]
PATHS = [
    "/", "/api/chat", "/api/chat/stream?thread_id=fuzz-m", "/api/threads", "/api/threads/fuzz-m",
    "/api/nothing", "/chat/new", "/chat/fuzz-m/", "/chat/fuzz-m/send", "/chat/fuzz-m/cancel",
    "/chat/fuzz-m/delete", "/login/", "/healthz", "/login/google-oauth2/",
    "/complete/google-oauth2/", "/admin/", "/logout/", "/logout/everywhere/",
]  # fmt: skip
SIGN_OUT = {"/logout/", "/logout/everywhere/"}


def method_cases(ctx: Ctx, rng: random.Random, count: int) -> list[Awaitable[None]]:
    cases: list[Awaitable[None]] = []
    for _ in range(count):
        method, path = rng.choice(METHODS), rng.choice(PATHS)
        with_csrf = rng.random() < 0.7
        # Signing out would end the fuzz's own session: those go without one.
        client = ctx.bare if path in SIGN_OUT else ctx.http
        headers = ctx.csrf if with_csrf else {}
        body = rng.choice([b"", b"{}", b"x=1", rng.randbytes(64)])

        async def send(method=method, path=path, client=client, headers=headers, body=body):
            request = client.build_request(method, path, headers=headers, content=body)
            response = await client.send(request, stream=True)
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                await response.aclose()  # an SSE stream would not end by itself
            else:
                await response.aread()
            return response

        what = (method, path, bool(with_csrf))
        cases.append(hit(ctx, "method", what, send, path=path, method=method))
    return cases


# --- the test ----------------------------------------------------------------------------


async def test_fuzzed_inputs_never_get_a_5xx(server: LiveServer) -> None:
    rng = random.Random(SEED)
    tally = Tally()
    started = time.monotonic()
    timeout = httpx.Timeout(30)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=timeout) as http,
        httpx.AsyncClient(base_url=server.url, timeout=timeout) as bare,
    ):
        await asign_in(http, server.login_url())
        ctx = Ctx(server, http, bare, tally, asyncio.Semaphore(HTTP_CONCURRENCY))

        frames = ws_frames(rng, WS_FRAMES)
        chunks = [frames[i::WS_SOCKETS] for i in range(WS_SOCKETS)]
        ws_jobs = [ws_worker(ctx, i, chunk, tally) for i, chunk in enumerate(chunks)]

        http_jobs: list[Awaitable[Any]] = []
        for kind, body, content_type in api_bodies(rng, 260):
            http_jobs.append(body_case(ctx, kind, body, content_type, csrf=rng.random() < 0.9))
        for i, value in enumerate(last_event_ids(rng, 80)):
            http_jobs.append(sse_case(ctx, value, in_query=i % 3 == 0, thread=f"fuzz-sse-{i}"))
        http_jobs += cookie_cases(ctx, rng)
        http_jobs += await wrong_type_sessions(ctx, rng)
        http_jobs += id_cases(ctx, odd_thread_ids(rng, 60))
        http_jobs += method_cases(ctx, rng, 150)

        await asyncio.gather(*ws_jobs, *http_jobs)
        health = await bare.get("/healthz")
    elapsed = time.monotonic() - started

    summary = "\n".join(f"  {kind}: {n}" for kind, n in sorted(tally.sent.items()))
    outcomes = ", ".join(f"{k}: {n}" for k, n in sorted(tally.outcomes.items()))
    print(
        f"\nfuzz seed {SEED}: {tally.total} inputs in {elapsed:.1f} s\n{summary}\n"
        f"outcomes: {outcomes}"
    )
    log = server.log_path.read_text(errors="replace")
    assert tally.total >= MIN_INPUTS, tally.sent
    assert not tally.failures, (
        f"FUZZ_SEED={SEED}: {len(tally.failures)} inputs broke the contract:\n"
        + "\n".join(failure[:400] for failure in tally.failures[:25])
        + f"\nServer log tail:\n{server.log_tail()}"
    )
    at = log.find("Traceback")
    assert at < 0, f"FUZZ_SEED={SEED}: a traceback in the server log:\n{log[at - 500 : at + 4000]}"
    assert server.process is not None and server.process.poll() is None, "the server died"
    assert health.status_code == 200, health.text
