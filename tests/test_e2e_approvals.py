"""End to end: an approval waits in Redis across a crash of the server process and a
restart of Redis (AOF), and the approved action reaches Google exactly once.

Real parts throughout: uvicorn in a subprocess, its redis-server with the append-only
file, and the Workspace emulator in a process of its own as Google
(``GOOGLE_API_BASE_URL``), whose access log counts what Google received.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e_support import CSRF_COOKIE, LiveServer, WorkspaceStub

EMAIL = "developer@localhost"  # who a local sign-in is
TOKEN = f"demo.{EMAIL}"
INSERT_TASK = r"POST /tasks/v1/lists/[^/ ]+/tasks[ ?]"


@pytest.fixture(scope="module")
def google(tmp_path_factory) -> Iterator[WorkspaceStub]:
    stub = WorkspaceStub(0, Path(tmp_path_factory.mktemp("stub")) / "stub.log").start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def server(google: WorkspaceStub) -> Iterator[LiveServer]:
    env = {"WORKSPACE_DEMO": "false", "GOOGLE_API_BASE_URL": google.url}
    with LiveServer(extra_env=env, redis_aof=True) as live:
        code = (
            "from datetime import UTC, datetime, timedelta\n"
            "from workspace.credentials import GoogleCredentials, save_credentials\n"
            "expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)\n"
            f"save_credentials({EMAIL!r}, GoogleCredentials({TOKEN!r}, 'refresh', 'cid', "
            "'secret', [], expiry))\n"
        )
        result = live.manage("shell", "-c", code)
        assert result.returncode == 0, result.stderr
        yield live


def thread_state(client: httpx.Client, thread_id: str, want: str, within: float = 30) -> dict:
    deadline = time.monotonic() + within
    while True:
        found = client.get(f"/api/threads/{thread_id}")
        if found.status_code == 200 and found.json()["status"] == want:
            return found.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {thread_id} never became {want}: {found.text[:500]}")
        time.sleep(0.05)


def google_tasks(google: WorkspaceStub) -> list[str]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    lists = httpx.get(f"{google.url}/tasks/v1/users/@me/lists", headers=headers).json()
    titles = []
    for found in lists.get("items", []):
        url = f"{google.url}/tasks/v1/lists/{found['id']}/tasks?showHidden=true"
        titles += [t["title"] for t in httpx.get(url, headers=headers).json().get("items", [])]
    return titles


def test_an_approval_survives_a_crash_and_a_redis_restart_and_runs_once(server, google):
    client = server.signed_in_client(timeout=30)
    headers = {"X-CSRFToken": client.cookies[CSRF_COOKIE]}
    sent = client.post(
        "/api/chat",
        json={"message": "create a task: water the plants", "thread_id": "e2e-approve"},
        headers=headers,
    )
    assert sent.status_code == 202, sent.text
    waiting = thread_state(client, "e2e-approve", "awaiting_approval")
    (card,) = waiting["approvals"]
    assert card["card"]["summary"].startswith("Create the task 'water the plants'")
    assert google.logged(INSERT_TASK) == 0

    server.restart_app(kill=True)  # the process dies with the approval waiting
    server.redis.stop()  # and Redis restarts from its append-only file
    server.redis.start()
    again = thread_state(client, "e2e-approve", "awaiting_approval")
    assert again["approvals"][0]["interrupt_id"] == card["interrupt_id"]

    decision = {"decisions": {card["interrupt_id"]: {"type": "approve"}}}
    answer = client.post("/api/threads/e2e-approve/decisions", json=decision, headers=headers)
    assert answer.status_code == 202, answer.text
    done = thread_state(client, "e2e-approve", "idle")
    assert done["approvals"] == []
    outcome = [m for m in done["messages"] if m["role"] == "tool"][-1]
    assert outcome["data"]["status"] == "done"
    assert google.logged(INSERT_TASK) == 1
    assert google_tasks(google).count("water the plants") == 1

    repeat = client.post("/api/threads/e2e-approve/decisions", json=decision, headers=headers)
    assert repeat.status_code == 409 and repeat.json()["error"] == "not_waiting"
    assert google.logged(INSERT_TASK) == 1
