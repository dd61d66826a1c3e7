"""Secrets stay out of logs and pages: the redaction filter, the real server's access log
(uvicorn, its own logging configuration), and the 503 page's detail for staff only."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import path
from uvicorn.logging import AccessFormatter
from websockets.exceptions import InvalidStatus

from agenticpal.log_redaction import REDACTED, RedactingFilter, redact, short_session_id
from agenticpal.redis_clients import display_url
from tests.e2e_support import LiveServer, ws_connect

SESSION_ID = "Zq3" + "x" * 40
LEAKY = [
    ("GET /complete/google-oauth2/?state=ST8xyz&code=4/0AcodeXYZ HTTP/1.1", ["ST8xyz", "4/0Acode"]),
    ("GET /login/local/tok_123-abc/ HTTP/1.1", ["tok_123-abc"]),
    (f"Cookie: sessionid={SESSION_ID}; csrftoken=CSRFvalue", [SESSION_ID, "CSRFvalue"]),
    ("Authorization: Bearer abcdefghijklmnop.qrstuv", ["abcdefghijklmnop"]),
    ("token ya29.a0AfH6SMB-secret and 1//0gRefresh-secret", ["a0AfH6SMB", "0gRefresh"]),
    ('{"access_token": "AT-secret", "refresh_token": "RT-secret"}', ["AT-secret", "RT-secret"]),
    (f"Session record session:{SESSION_ID} is unreadable", [SESSION_ID]),
    ("GETDEL oauth_state:S3cr3tState login_token:L0g1n", ["S3cr3tState", "L0g1n"]),
]


@pytest.mark.parametrize(("line", "secrets"), LEAKY)
def test_redact_removes_every_kind_of_secret(line: str, secrets: list[str]) -> None:
    cleaned = redact(line)
    for secret in secrets:
        assert secret not in cleaned
    assert redact(cleaned) == cleaned  # idempotent: two filters on one record are harmless


def test_redact_leaves_ordinary_lines_alone() -> None:
    for line in [
        '127.0.0.1:5555 - "GET /api/threads?limit=20 HTTP/1.1" 200',
        "Redis unavailable while serving /ws/chat/t-1/: Connection refused",
        "status_code=500 thread_id=t-42",
    ]:
        assert redact(line) == line


def test_short_session_id_is_a_prefix_too_short_to_use() -> None:
    assert short_session_id(SESSION_ID) == "Zq3xxxxxxx…"
    assert short_session_id(None) == "(none)"


def test_uvicorn_access_records_keep_their_shape() -> None:
    """uvicorn's AccessFormatter unpacks the five arguments: the filter edits them in place."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/login/local/T0ken/?code=C0de&state=St4te", "1.1", 302),
        None,
    )
    assert RedactingFilter().filter(record)
    line = AccessFormatter(fmt="%(client_addr)s - %(request_line)s %(status_code)s").format(record)
    assert "T0ken" not in line and "C0de" not in line and "St4te" not in line
    assert f"/login/local/{REDACTED}/?code={REDACTED}&state={REDACTED}" in line
    assert line.endswith("302 Found")


def test_a_secret_split_between_message_and_arguments_is_redacted() -> None:
    record = logging.LogRecord(
        "sessions_redis",
        logging.WARNING,
        __file__,
        1,
        "record session:%s is bad",
        (SESSION_ID,),
        None,
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "record session:Zq3xxxxxxx… is bad"


def test_tracebacks_are_redacted_too() -> None:
    try:
        raise ValueError("callback /complete/?code=SECRETCODE failed")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed: %s", ("state=S3",), sys.exc_info()
        )
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "SECRETCODE" not in text and "S3" not in text and "ValueError" in text


# --- the real server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    # INFO: Django's own lines too (uvicorn logs access and websocket lines at INFO anyway).
    with LiveServer(extra_env={"LOG_LEVEL": "INFO"}) as server:
        yield server


def wait_for_log(server: LiveServer, *markers: str, within: float = 10.0) -> str:
    deadline = time.monotonic() + within
    while True:
        text = server.log_path.read_text(errors="replace")
        if all(m in text for m in markers) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_the_access_log_of_the_real_server_shows_no_token_state_or_code(live) -> None:
    login_url = live.login_url()
    token = login_url.rstrip("/").rsplit("/", 1)[1]
    with httpx.Client(base_url=live.url) as client:
        assert client.get(login_url, follow_redirects=False).status_code == 302
        session_id = client.cookies["sessionid"]
        assert client.get(login_url, follow_redirects=False).status_code == 410  # replayed
        client.get("/complete/google-oauth2/", params={"state": "STATEabc123", "code": "CODEq9"})
        client.get("/", params={"token": "TOKENz8", "access_token": "ya29.LEAKED"})

    async def websocket_with_query() -> None:
        from websockets.asyncio.client import connect

        url = live.ws_url("t-logs") + "?state=WSSTATE77"
        async with connect(url, origin=live.origin, open_timeout=15):
            pass

    asyncio.run(websocket_with_query())
    log = wait_for_log(
        live,
        f"/login/local/{REDACTED}/",
        f"state={REDACTED}&code={REDACTED}",
        f"token={REDACTED}",
        f"?state={REDACTED}",  # uvicorn's websocket line
        f"Gone: /login/local/{REDACTED}/",  # Django's django.request warning
    )
    for secret in (token, session_id, "STATEabc123", "CODEq9", "TOKENz8", "LEAKED", "WSSTATE77"):
        assert secret not in log, f"{secret!r} leaked into the server log:\n{log[-3000:]}"
    # The lines were logged (so the absence above means something), redacted:
    assert re.search(rf'"GET /login/local/{re.escape(REDACTED)}/ HTTP/1.1" 302', log), log[-3000:]
    assert f"/complete/google-oauth2/?state={REDACTED}&code={REDACTED}" in log
    assert f'"WebSocket /ws/chat/t-logs/?state={REDACTED}" [accepted]' in log
    assert f"Gone: /login/local/{REDACTED}/" in log


async def test_the_real_server_checks_the_origin_port(live) -> None:
    """A page on another port of the same host is another origin: refused at the handshake."""
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(live, "t-port", None, origin=f"http://{live.host}:9999"):
            pass
    assert refused.value.response.status_code == 403
    async with ws_connect(live, "t-port", None):  # the server's own origin: accepted
        pass


# --- the 503 page ---------------------------------------------------------------------

REASON = "Error 111 connecting to 10.9.8.7:6379. Connection refused."


def redis_down(request):
    raise redis.exceptions.ConnectionError(REASON)


def redis_down_after_reading_the_user(request):
    assert request.user.is_authenticated  # the session is read before Redis goes away
    raise redis.exceptions.ConnectionError(REASON)


urlpatterns = [
    path("down", redis_down),
    path("down-after-user", redis_down_after_reading_the_user),
    path("api/down", redis_down),
]


def shows_detail(response) -> bool:
    text = response.content.decode()
    return REASON in text or display_url() in text


@pytest.mark.urls(__name__)
def test_visitors_in_production_get_the_plain_503(client) -> None:
    page = client.get("/down")
    assert page.status_code == 503 and not shows_detail(page)
    assert "make redis" in page.content.decode()  # what to do, without the internals
    api = client.get("/api/down")
    assert api.status_code == 503 and api.json()["error"] == "redis_unavailable"
    assert not shows_detail(api)


@pytest.mark.urls(__name__)
@pytest.mark.django_db
@pytest.mark.parametrize(("staff", "detail"), [(False, False), (True, True)])
def test_staff_see_the_redis_url_and_the_error(client, staff: bool, detail: bool) -> None:
    user = get_user_model().objects.create_user("op", "op@example.com", "pw", is_staff=staff)
    client.force_login(user)
    assert shows_detail(client.get("/down-after-user")) is detail
    api = client.get("/down-after-user", HTTP_ACCEPT="application/json")
    assert api.status_code == 503 and shows_detail(api) is detail


@pytest.mark.urls(__name__)
def test_debug_shows_the_detail(client) -> None:
    with override_settings(DEBUG=True):
        page = client.get("/down")
    assert page.status_code == 503 and shows_detail(page)
    assert "10.9.8.7" in page.content.decode()


def test_a_clients_invalid_utf8_is_one_warning_line_not_a_traceback():
    import logging
    import sys

    from agenticpal.log_redaction import RedactingFilter

    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1,
                               "Invalid UTF-8 sequence received from client.", (), exc_info)  # fmt: skip
    assert RedactingFilter().filter(record)
    assert record.exc_info is None and record.levelname == "WARNING"
    assert "Traceback" not in logging.Formatter().format(record)
