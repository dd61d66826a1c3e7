"""The Google REST client: tokens, retries, the error model, pages, the pooled client.

Google is stubbed with respx at the HTTP layer; retries record their waits instead of
sleeping (``retry_sleeps``), so nothing here waits for real except the timeout test.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tests.google_bodies import (
    BASE,
    FRESH_TOKEN,
    SCOPE_ERROR,
    TOKEN,
    FakeTokens,
    error_body,
)
from workspace.google import client as google
from workspace.google.client import (
    BadRequest,
    Conflict,
    GoogleClient,
    GoogleUnavailable,
    MissingPermission,
    NotFound,
    RateLimited,
    SignInAgain,
    gather_bounded,
)

EVENTS = "/calendar/v3/calendars/primary/events"
MESSAGES = "/gmail/v1/users/me/messages"


def ok(body: dict | None = None, **kwargs) -> httpx.Response:
    return httpx.Response(200, json=body or {"ok": True}, **kwargs)


async def test_get_sends_the_bearer_token_and_fields_to_the_configured_base_url(
    google_api, google_client
):
    route = google_api.get(EVENTS).mock(return_value=ok({"items": []}))
    assert await google_client.get(EVENTS, params={"q": "lunch"}, fields="items(id)") == {
        "items": []
    }
    request = route.calls.last.request
    assert str(request.url).startswith(f"{BASE}{EVENTS}?")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert dict(request.url.params) == {"q": "lunch", "fields": "items(id)"}


async def test_a_401_refreshes_the_token_once_and_retries(google_api, google_client):
    route = google_api.get(EVENTS).mock(side_effect=[httpx.Response(401), ok()])
    assert await google_client.get(EVENTS) == {"ok": True}
    assert [call.request.headers["Authorization"] for call in route.calls] == [
        f"Bearer {TOKEN}",
        f"Bearer {FRESH_TOKEN}",
    ]
    assert google_client.tokens.stale == [TOKEN]


async def test_a_second_401_asks_to_sign_in_again(google_api, google_client):
    route = google_api.get(EVENTS).mock(return_value=httpx.Response(401))
    with pytest.raises(SignInAgain) as info:
        await google_client.get(EVENTS)
    assert route.call_count == 2
    assert google_client.tokens.stale == [TOKEN]
    assert info.value.status == 401
    assert info.value.user_message == (
        "Your Google access has ended; please sign in with Google again."
    )


async def test_a_refresh_that_fails_asks_to_sign_in_again(google_api, retry_sleeps):
    client = GoogleClient(FakeTokens(refreshes_left=0))
    route = google_api.get(EVENTS).mock(return_value=httpx.Response(401))
    with pytest.raises(SignInAgain):
        await client.get(EVENTS)
    assert route.call_count == 1


async def test_invalid_grant_in_a_body_asks_to_sign_in_again(google_api, google_client):
    google_api.get(EVENTS).mock(
        return_value=httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "Bad"}
        )
    )
    with pytest.raises(SignInAgain):
        await google_client.get(EVENTS)


@pytest.mark.parametrize(
    ("path", "service", "scope"),
    [
        (MESSAGES, "Gmail", "https://www.googleapis.com/auth/gmail.modify"),
        (EVENTS, "Calendar", "https://www.googleapis.com/auth/calendar.events"),
        ("/tasks/v1/users/@me/lists", "Tasks", "https://www.googleapis.com/auth/tasks"),
    ],
)
async def test_insufficient_scopes_name_the_missing_scope(
    google_api, google_client, path, service, scope
):
    route = google_api.get(path).mock(return_value=httpx.Response(403, json=SCOPE_ERROR))
    with pytest.raises(MissingPermission) as info:
        await google_client.get(path)
    assert route.call_count == 1
    error = info.value
    assert (error.scope, error.service, error.status) == (scope, service, 403)
    assert error.user_message == (
        f"AgenticPal may not use your Google {service} yet; sign in with Google again "
        f"and allow access to {service}."
    )
    assert error.to_dict() == {
        "error": "missing_permission",
        "message": error.user_message,
        "service": service,
        "status": 403,
        "scope": scope,
    }


async def test_a_scope_error_without_the_v1_errors_list_is_recognised(google_api, google_client):
    body = {
        "error": {
            "code": 403,
            "status": "PERMISSION_DENIED",
            **{"details": SCOPE_ERROR["error"]["details"]},
        }
    }
    google_api.get(MESSAGES).mock(return_value=httpx.Response(403, json=body))
    with pytest.raises(MissingPermission):
        await google_client.get(MESSAGES)


async def test_429_honours_retry_after_seconds(google_api, google_client, retry_sleeps):
    route = google_api.get(MESSAGES).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "1"}), ok()]
    )
    assert await google_client.get(MESSAGES) == {"ok": True}
    assert route.call_count == 2
    assert retry_sleeps == [1.0]


async def test_429_honours_retry_after_as_an_http_date(google_api, google_client, retry_sleeps):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    google_api.get(MESSAGES).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": when}), ok()]
    )
    await google_client.get(MESSAGES)
    assert len(retry_sleeps) == 1 and 1.5 < retry_sleeps[0] <= 3.0


async def test_a_long_retry_after_gives_up_at_once(google_api, google_client, retry_sleeps):
    route = google_api.get(MESSAGES).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "120"})
    )
    with pytest.raises(RateLimited) as info:
        await google_client.get(MESSAGES)
    assert route.call_count == 1 and retry_sleeps == []
    assert info.value.retry_after == 120.0
    assert info.value.user_message == (
        "Google Gmail is getting too many requests from your account; try again in a minute."
    )


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
async def test_rate_limit_403s_back_off_exponentially_then_give_up(
    google_api, google_client, retry_sleeps, reason
):
    body = error_body(403, reason, "User Rate Limit Exceeded")
    route = google_api.post(MESSAGES).mock(return_value=httpx.Response(403, json=body))
    with pytest.raises(RateLimited):
        await google_client.request(
            "POST", MESSAGES, json={"raw": "..."}
        )  # rejected, so safe to resend
    assert route.call_count == google.MAX_ATTEMPTS
    assert len(retry_sleeps) == google.MAX_ATTEMPTS - 1
    for attempt, waited in enumerate(retry_sleeps):
        floor = google.BACKOFF_BASE * 2**attempt
        assert floor <= waited <= floor + google.BACKOFF_BASE


async def test_5xx_is_retried_for_get(google_api, google_client, retry_sleeps):
    route = google_api.get(EVENTS).mock(
        side_effect=[httpx.Response(503), httpx.Response(500, text="<html>oops</html>"), ok()]
    )
    assert await google_client.get(EVENTS) == {"ok": True}
    assert route.call_count == 3 and len(retry_sleeps) == 2


@pytest.mark.parametrize(
    ("method", "calls"), [("POST", 1), ("PATCH", 1), ("PUT", 4), ("DELETE", 4)]
)
async def test_5xx_is_retried_only_for_idempotent_methods(google_api, google_client, method, calls):
    route = google_api.route(method=method, path=EVENTS).mock(return_value=httpx.Response(502))
    with pytest.raises(GoogleUnavailable) as info:
        await google_client.request(method, EVENTS, json={"summary": "Lunch"})
    assert route.call_count == calls
    assert info.value.status == 502
    assert info.value.user_message == (
        "Google Calendar is not answering right now; try again in a moment."
    )


async def test_a_connection_error_is_retried_for_get_only(google_api, google_client):
    route = google_api.get(EVENTS).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(GoogleUnavailable):
        await google_client.get(EVENTS)
    assert route.call_count == google.MAX_ATTEMPTS
    post = google_api.post(EVENTS).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(GoogleUnavailable):
        await google_client.request("POST", EVENTS, json={})
    assert post.call_count == 1


async def test_a_slow_google_times_out_quickly(google_api, google_client, settings):
    settings.GOOGLE_API_TIMEOUT = 0.05

    requests: list[httpx.Request] = []

    async def hang(request):
        requests.append(request)
        await asyncio.sleep(5)

    google_api.get(EVENTS).mock(side_effect=hang)
    started = time.monotonic()
    with pytest.raises(GoogleUnavailable) as info:
        await google_client.get(EVENTS)
    assert time.monotonic() - started < 1
    assert len(requests) == google.MAX_ATTEMPTS
    assert info.value.status is None


async def test_a_malformed_json_body_is_an_unreadable_answer(google_api, google_client):
    route = google_api.get(EVENTS).mock(return_value=httpx.Response(200, text='{"items": ['))
    with pytest.raises(GoogleUnavailable, match="unreadable body"):
        await google_client.get(EVENTS)
    assert route.call_count == google.MAX_ATTEMPTS
    google_api.post(EVENTS).mock(return_value=httpx.Response(200, json=["not", "an", "object"]))
    with pytest.raises(GoogleUnavailable):
        await google_client.request("POST", EVENTS, json={})


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Bad Request</body></html>",
        b'{"error": {"errors": "not a list", "message": 7}}',
        b'["error"]',
        b'{"error": null}',
        b"",
    ],
)
async def test_odd_error_bodies_still_map_cleanly(google_api, google_client, body):
    google_api.get(EVENTS).mock(return_value=httpx.Response(400, content=body))
    with pytest.raises(BadRequest) as info:
        await google_client.get(EVENTS)
    assert info.value.user_message == "Google Calendar refused the request."


@pytest.mark.parametrize(
    ("status", "error"), [(404, NotFound), (410, NotFound), (409, Conflict), (400, BadRequest)]
)
async def test_4xx_answers(google_api, google_client, status, error):
    body = error_body(status, "invalid", "Invalid attendee email.", "INVALID_ARGUMENT")
    route = google_api.get(EVENTS).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(error) as info:
        await google_client.get(EVENTS)
    assert route.call_count == 1 and info.value.status == status


async def test_bad_request_carries_googles_message(google_api, google_client):
    body = error_body(400, "invalid", "Invalid attendee email.", "INVALID_ARGUMENT")
    google_api.get(EVENTS).mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(BadRequest) as info:
        await google_client.get(EVENTS)
    assert info.value.user_message == (
        "Google Calendar refused the request: Invalid attendee email."
    )
    assert "Invalid attendee email." in str(info.value) and "400" in str(info.value)


async def test_not_found_says_so_plainly(google_api, google_client):
    google_api.get(f"{EVENTS}/gone").mock(return_value=httpx.Response(410))
    with pytest.raises(NotFound) as info:
        await google_client.get(f"{EVENTS}/gone")
    assert info.value.user_message == (
        "Google Calendar could not find that item; it may have been deleted."
    )


async def test_the_token_is_never_logged_nor_in_errors(google_api, google_client, caplog):
    caplog.set_level(logging.DEBUG)
    google_api.get(EVENTS).mock(side_effect=[httpx.Response(401)] + [httpx.Response(503)] * 4)
    with pytest.raises(GoogleUnavailable) as info:
        await google_client.get(EVENTS)
    assert "Google GET calendar/v3/calendars/primary/events failed" in caplog.text
    for text in (caplog.text, str(info.value), repr(info.value), str(info.value.to_dict())):
        assert TOKEN not in text and FRESH_TOKEN not in text


async def test_an_empty_answer_is_an_empty_dict(google_api, google_client):
    google_api.delete(f"{EVENTS}/abc").mock(return_value=httpx.Response(204))
    assert await google_client.request("DELETE", f"{EVENTS}/abc") == {}


async def test_get_all_follows_page_tokens_up_to_the_limit(google_api, google_client):
    route = google_api.get(EVENTS).mock(
        side_effect=[
            ok(
                {
                    "timeZone": "Europe/Paris",
                    "items": [{"id": "1"}, {"id": "2"}],
                    "nextPageToken": "p2",
                }
            ),
            ok({"items": [{"id": "3"}, "junk", {"id": "4"}], "nextPageToken": "p3"}),
        ]
    )
    listing = await google_client.get_all(EVENTS, limit=3, page_size=2, fields="items(id)")
    assert [item["id"] for item in listing.items] == ["1", "2", "3"]
    assert listing.first_page["timeZone"] == "Europe/Paris"
    first, second = (dict(call.request.url.params) for call in route.calls)
    assert first == {"maxResults": "2", "fields": "nextPageToken,items(id)"}
    assert second == {"maxResults": "1", "pageToken": "p2", "fields": "nextPageToken,items(id)"}


async def test_get_all_stops_when_google_repeats_a_page_token(google_api, google_client):
    route = google_api.get(EVENTS).mock(return_value=ok({"items": [], "nextPageToken": "same"}))
    listing = await google_client.get_all(EVENTS, limit=10, page_size=5)
    assert listing.items == [] and route.call_count == 2


async def test_gather_bounded_keeps_order_and_the_bound():
    running = peak = 0

    async def job(number: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (5 - number % 5))
        running -= 1
        return number

    assert await gather_bounded((job(n) for n in range(12)), limit=4) == list(range(12))
    assert peak == 4


async def test_gather_bounded_cancels_the_rest_on_the_first_failure():
    finished: list[int] = []

    async def job(number: int) -> int:
        if number == 0:
            raise NotFound("gone")
        await asyncio.sleep(0.05)
        finished.append(number)
        return number

    with pytest.raises(NotFound):
        await gather_bounded([job(n) for n in range(5)], limit=2)
    await asyncio.sleep(0.1)
    assert finished == []


async def test_one_pooled_client_per_loop_reset_when_settings_change(settings):
    first = google.http_client()
    assert google.http_client() is first
    settings.GOOGLE_API_TIMEOUT = 3
    second = google.http_client()
    assert second is not first
    assert (second.timeout.read, second.timeout.connect) == (3, 3)
    settings.GOOGLE_API_TIMEOUT = 30
    assert (google.http_client().timeout.read, google.http_client().timeout.connect) == (30, 5)


def test_path_segments_cannot_escape_and_times_need_an_offset():
    assert google.path_segment("a/b?c#d") == "a%2Fb%3Fc%23d"
    assert google.path_segment("alice@example.com") == "alice@example.com"
    assert google.path_segment("..") == "%2E%2E"
    assert google.rfc3339(datetime(2026, 3, 1, 9, tzinfo=UTC)) == "2026-03-01T09:00:00+00:00"
    with pytest.raises(ValueError, match="no timezone"):
        google.rfc3339(datetime(2026, 3, 1, 9))
