"""No 500 on any input: one focused test per way a request used to end in a 500 or an
empty HTML error (the fuzz in tests/test_fuzz.py throws the generated variety)."""

from __future__ import annotations

import io
import json

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.test import AsyncClient, Client, override_settings

from chat import api, frames
from chat.consumers import CLOSE_BAD_THREAD, CLOSE_NOT_FOUND
from chat.threads import MAX_MESSAGE_BYTES
from tests import oauth_support
from tests.chat_support import communicator, connected, receive, session_cookie, signed_in_client
from tests.oauth_support import TOKEN_URL, calls_to, start_flow
from tests.test_api_chat import post

google = oauth_support.google
google_settings = oauth_support.google_settings
db = pytest.mark.django_db(transaction=True)
OUT_OF_RANGE_ID = "99999999999999999999-99999999999999999999"  # matches \d{1,20}-\d{1,20}


async def close_code(comm: WebsocketCommunicator) -> int:
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


def assert_json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = response.json()
    assert body["error"] == code and body["detail"], body
    return body


# --- the websocket route: every path reaches a consumer -----------------------------


@db
# The communicator unquotes the path as a server does: "a%0Ab" arrives as "a\nb".
@pytest.mark.parametrize("thread_id", ["bad id", "a/b", "x" * 65, "ü", "", "..", "a%0Ab", "%zz"])
async def test_any_thread_segment_is_closed_with_4400_not_a_500(thread_id: str) -> None:
    client = await signed_in_client("ada@example.com")
    comm = communicator(thread_id, session_cookie(client))
    ok, _ = await comm.connect()
    assert ok
    assert await close_code(comm) == CLOSE_BAD_THREAD


@db
@pytest.mark.parametrize("path", ["/ws/elsewhere/", "/ws/chat/no-slash", "/", "/ws/"])
async def test_other_websocket_paths_are_closed_with_4404(path: str) -> None:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    from agenticpal.asgi import application

    comm = WebsocketCommunicator(application, path, headers=headers)
    ok, _ = await comm.connect()
    assert ok
    assert await close_code(comm) == CLOSE_NOT_FOUND


@pytest.mark.parametrize("error", [RuntimeError("after sending 'websocket.close'"), OSError()])
async def test_an_event_for_a_socket_the_server_already_closed_is_dropped(error) -> None:
    """uvicorn closes a socket itself (1007, 1009) before the consumer hears of it; a token
    of a run arriving in between used to fail the consumer (a traceback in the log)."""
    from chat.consumers import ChatConsumer

    consumer = ChatConsumer()
    calls = []

    async def closed_socket(message: dict) -> None:
        calls.append(message["type"])
        raise error

    consumer.base_send = closed_socket
    await consumer.chat_event({"event": {"type": "token", "text": "hi"}})
    await consumer.send_event({"type": "pong"})
    await consumer.close(code=4410)
    assert consumer.socket_gone and calls == ["websocket.send"]


# --- depth and size bounds: one parser for frames and bodies -------------------------


def test_the_parser_measures_depth_outside_strings() -> None:
    assert frames.nesting_depth('{"a": [{"b": "[[[[{{"}], "c": "\\"]"}') == 3
    assert frames.parse('["[' + "[" * 100 + '"]') == ["[" + "[" * 100]
    with pytest.raises(frames.FrameError, match="more than 32 levels deep"):
        frames.parse("[" * 33 + "]" * 33)
    assert frames.parse("[" * 32 + "]" * 32) is not None


@db
@pytest.mark.parametrize(
    "body",
    ["[" * 50_000, '{"message": ' + "[" * 40 + "]" * 40 + "}", '{"a":' * 5_000 + "1" + "}" * 5_000],
)
async def test_deeply_nested_json_body_is_a_400(body: str) -> None:
    client = await signed_in_client("ada@example.com")
    response = await client.post("/api/chat", body, content_type="application/json")
    detail = assert_json_error(response, 400, "bad_request")["detail"]
    assert "levels deep" in detail


@db
async def test_deeply_nested_frame_is_an_error_event_and_the_socket_lives_on() -> None:
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-deep", session_cookie(client))
    await comm.send_to(text_data="[" * 50_000)
    event = await receive(comm)
    assert event["type"] == "error" and "levels deep" in event["reason"]
    await comm.send_json_to({"type": "ping"})
    assert (await receive(comm)) == {"type": "pong"}
    await comm.disconnect()


@db
async def test_a_body_over_the_limit_is_a_json_413_and_a_full_message_still_fits() -> None:
    client = await signed_in_client("ada@example.com")
    too_big = json.dumps({"message": "x" * (frames.MAX_BYTES + 1)})
    response = await client.post("/api/chat", too_big, content_type="application/json")
    detail = assert_json_error(response, 413, "too_large")["detail"]
    assert f"limit is {frames.MAX_BYTES} bytes" in detail
    # The largest message, escaped as Python's json.dumps does (3x for "é"), is accepted.
    largest = "é" * (MAX_MESSAGE_BYTES // 2)
    response = await client.post(
        "/api/chat", json.dumps({"message": largest}), content_type="application/json"
    )
    assert response.status_code == 202, response.content


def test_a_body_past_django_s_own_limit_without_content_length_is_413() -> None:
    scope = {"type": "http", "method": "POST", "path": "/api/chat", "headers": []}
    request = ASGIRequest(scope, io.BytesIO(b"[" * 200))
    with (
        override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100),
        pytest.raises(frames.FrameTooLarge, match="larger than 100 bytes"),
    ):
        api.json_body(request)


@db
async def test_a_frame_over_the_limit_is_an_error_event() -> None:
    client = await signed_in_client("ada@example.com")
    comm, _ = await connected("t-huge", session_cookie(client))
    await comm.send_to(text_data=json.dumps({"type": "message", "message": "y" * 70_000}))
    event = await receive(comm)
    assert event["type"] == "error" and f"limit is {frames.MAX_BYTES} bytes" in event["reason"]
    await comm.disconnect()


@db
async def test_an_unpaired_surrogate_is_refused_not_a_500() -> None:
    client = await signed_in_client("ada@example.com")
    response = await post(client, '{"message": "hi \\ud800"}')
    assert "unpaired surrogate" in assert_json_error(response, 400, "bad_request")["detail"]
    comm, _ = await connected("t-surrogate", session_cookie(client))
    await comm.send_to(text_data='{"type": "message", "message": "\\udc00"}')
    event = await receive(comm)
    assert event["type"] == "error" and "unpaired surrogate" in event["reason"]
    await comm.disconnect()


# --- SSE: an out-of-range Last-Event-ID starts over like a garbage one ----------------


def test_stream_ids_must_fit_in_64_bits() -> None:
    top = 2**64 - 1
    assert api.valid_stream_id(f"{top}-{top}")
    assert api.valid_stream_id("0-0")
    assert not api.valid_stream_id(f"{top + 1}-0")
    assert not api.valid_stream_id(f"0-{top + 1}")
    assert not api.valid_stream_id(OUT_OF_RANGE_ID)
    assert not api.valid_stream_id(None)
    assert not api.valid_stream_id("١٢-٣")  # digits, but not ASCII ones: Redis refuses them


@db
@pytest.mark.parametrize("header", [True, False])
async def test_out_of_range_last_event_id_replays_the_history(header: bool) -> None:
    client = await signed_in_client("ada@example.com")
    params = {"thread_id": "sse-range"}
    headers = None
    if header:
        headers = {"Last-Event-ID": OUT_OF_RANGE_ID}
    else:
        params["last_event_id"] = OUT_OF_RANGE_ID
    response = await client.get("/api/chat/stream", params, headers=headers)
    assert response.status_code == 200
    stream = response.streaming_content
    async for chunk in stream:
        if b"data: " in chunk:
            data = json.loads(chunk.decode().split("data: ", 1)[1])
            assert data["type"] == "history" and data["messages"] == []
            break
    await stream.aclose()


# --- every /api/ error is JSON ---------------------------------------------------------


@db
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("get", "/api/chat", "POST"),
        ("put", "/api/chat", "POST"),
        ("post", "/api/chat/stream", "GET"),
        ("patch", "/api/threads", "GET"),
        ("put", "/api/threads/t-1", "GET, DELETE"),
        ("options", "/api/threads/t-1", "GET, DELETE"),
    ],
)
async def test_wrong_method_is_a_json_405_with_allow(method: str, path: str, allow: str) -> None:
    client = await signed_in_client("ada@example.com")
    response = await getattr(client, method)(path)
    assert_json_error(response, 405, "method_not_allowed")
    assert response["Allow"] == allow


@pytest.mark.parametrize(
    ("length", "error"), [(str(frames.MAX_BYTES + 1), "too_large"), ("2, 2", "bad_request")]
)
def test_the_content_length_header_is_checked_before_the_body_is_read(length, error) -> None:
    scope = {"type": "http", "method": "POST", "path": "/api/chat"}
    scope["headers"] = [(b"content-length", length.encode())]
    with pytest.raises(frames.FrameError) as refused:
        api.json_body(ASGIRequest(scope, io.BytesIO(b"{}")))
    assert refused.value.code == error


FORM_BODIES = [
    ("application/x-www-form-urlencoded", b"a=1&" * 2_000),  # past 1,000 fields
    ("multipart/form-data; boundary=zzz", b"--zzz\r\ngarbage"),
    ("multipart/form-data", b"no boundary at all"),
]
FORM_ANSWERS = {
    "/api/chat": (415, "unsupported_media_type"),
    "/api/threads": (405, "method_not_allowed"),
    "/api/nothing": (404, "not_found"),
}


@db
@pytest.mark.parametrize(("content_type", "body"), FORM_BODIES)
@pytest.mark.parametrize("path", list(FORM_ANSWERS))
async def test_form_bodies_are_never_parsed_under_api(content_type, body, path) -> None:
    """Django's form parsers would answer an HTML 400 (or a 500 once a multipart body was
    streamed): the API answers JSON without parsing, CSRF checks included."""
    client = await signed_in_client("ada@example.com")
    client.handler.enforce_csrf_checks = True
    response = await client.post(path, body, content_type=content_type)
    assert_json_error(response, *FORM_ANSWERS[path])


@db
async def test_the_api_still_enforces_csrf_for_post_and_delete() -> None:
    client = await signed_in_client("ada@example.com")
    client.handler.enforce_csrf_checks = True
    assert_json_error(await post(client, {"message": "no token"}), 403, "csrf_failed")
    assert_json_error(await client.delete("/api/threads/t-csrf"), 403, "csrf_failed")
    await client.get("/")  # sets the csrftoken cookie
    token = {"X-CSRFToken": client.cookies["csrftoken"].value}
    response = await post(client, {"message": "hi", "thread_id": "t-csrf"}, headers=token)
    assert response.status_code == 202, response.content
    response = await client.delete("/api/threads/t-csrf", headers=token)
    assert response.status_code == 200, response.content


@db
@pytest.mark.parametrize(
    "path", ["/api/nothing", "/api/chat/", "/api/threads/a/b", "/api/", "/api"]
)
@pytest.mark.parametrize("method", ["get", "post", "delete"])
async def test_unknown_api_paths_are_a_json_404(path: str, method: str) -> None:
    response = await getattr(AsyncClient(), method)(path)
    assert_json_error(response, 404, "not_found")


@db
@pytest.mark.parametrize("thread_id", ["bad id", "x" * 65, "ü"])
async def test_an_invalid_thread_id_in_the_api_path_is_a_json_400(thread_id: str) -> None:
    client = await signed_in_client("ada@example.com")
    assert_json_error(await client.get(f"/api/threads/{thread_id}"), 400, "bad_thread_id")


# --- the Google callback without a code -------------------------------------------------


@pytest.mark.django_db
def test_callback_with_a_valid_state_but_no_code_says_not_completed(google) -> None:
    client = Client()
    state = start_flow(client)
    response = client.get("/complete/google-oauth2/", {"state": state})
    assert response.status_code == 400
    assert b"Sign-in was not completed" in response.content
    assert b"could not be reached" not in response.content
    assert calls_to(google, TOKEN_URL) == 0  # no empty code was sent to Google
    assert settings.SESSION_COOKIE_NAME not in client.cookies or "_auth_user_id" not in (
        client.session
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "body"), [("multipart/form-data", b"no boundary"), *FORM_BODIES[:1]]
)
def test_a_posted_callback_with_a_broken_form_says_not_completed(google, content_type, body):
    response = Client().post("/complete/google-oauth2/", body, content_type=content_type)
    assert response.status_code == 400
    assert b"Sign-in was not completed" in response.content
