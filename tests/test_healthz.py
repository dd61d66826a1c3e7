"""/healthz and the 503 page follow Redis going down and coming back, without a restart."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model


def test_healthz_ok(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["redis"] == "ok"
    assert body["sessions"]["status"] == "ok"
    assert body["checkpoints"]["status"] == "ok"


@pytest.mark.django_db
def test_healthz_and_pages_follow_redis_down_and_up(client, private_redis) -> None:
    assert client.get("/healthz").status_code == 200
    # A signed-in browser: its pages need the session, which lives in Redis. (An
    # anonymous first visit carries no cookie, so it never asks Redis anything.)
    user = get_user_model().objects.create_user("alice", "alice@example.com", "pw")
    client.force_login(user)

    private_redis.stop()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["redis"] == "down"
    assert set(body["failing"]) == {"sessions", "checkpoints"}
    assert "make redis" in body["fix"]

    page = client.get("/")
    assert page.status_code == 503
    text = page.content.decode()
    assert "make redis" in text and "REDIS_URL" in text
    assert "Traceback" not in text

    api = client.get("/api/threads", HTTP_ACCEPT="application/json")
    assert api.status_code == 503
    assert api.json()["error"] == "redis_unavailable"

    private_redis.start()
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code in (200, 302)
