"""Redis goes away during a request: a 503 page, nothing half-written, and the next
request after Redis is back works without restarting anything."""

import json

import pytest
from django.http import JsonResponse
from django.urls import path

from agenticpal import redis_keys as keys

SERVER = {}


def write(request):
    request.session["n"] = request.session.get("n", 0) + 1
    request.session["big"] = "x" * 10_000
    return JsonResponse({"n": request.session["n"]})


def write_then_redis_dies(request):
    request.session["n"] = request.session.get("n", 0) + 100
    SERVER["redis"].stop()  # the save at the end of the request meets no Redis
    return JsonResponse({"n": request.session["n"]})


def read(request):
    return JsonResponse({"n": request.session.get("n")})


async def aread(request):
    return JsonResponse({"n": await request.session.aget("n")})


urlpatterns = [
    path("write", write),
    path("write-then-redis-dies", write_then_redis_dies),
    path("read", read),
    path("aread", aread),
]
pytestmark = pytest.mark.urls(__name__)


@pytest.fixture
def server(private_redis):
    SERVER["redis"] = private_redis
    yield private_redis
    SERVER.clear()


def stored(server, session_key):
    import redis

    with redis.Redis.from_url(server.url, db=keys.SESSIONS_DB) as client:
        return json.loads(client.get(keys.session_key(session_key)))


@pytest.mark.parametrize("url", ["/read", "/aread"])
def test_reading_with_redis_down_is_a_503_page_then_recovers(client, server, url):
    assert client.get("/write").json() == {"n": 1}
    server.stop()
    page = client.get(url)
    assert page.status_code == 503
    assert "make redis" in page.content.decode() and "Traceback" not in page.content.decode()
    api = client.get(url, HTTP_ACCEPT="application/json")
    assert api.status_code == 503 and api.json()["error"] == "redis_unavailable"
    server.start()  # AOF: the session survived the restart of Redis
    assert client.get(url).json() == {"n": 1}


def test_redis_down_while_saving_is_a_503_and_writes_nothing(client, server):
    assert client.get("/write").json() == {"n": 1}
    key = client.cookies["sessionid"].value
    before = stored(server, key)
    response = client.get("/write-then-redis-dies")
    assert response.status_code == 503
    assert "sessionid" not in response.cookies
    server.start()
    assert stored(server, key) == before  # the old record, whole
    assert client.get("/write").json() == {"n": 2}
    assert stored(server, key)["django"]["n"] == 2
