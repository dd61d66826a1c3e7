"""``manage.py chat``: a real subprocess fed on stdin, with Redis up and with Redis down."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from chat import history
from chat.runner import Runner
from tests.chat_support import events_until

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chat(redis_url: str, lines: list[str], *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CHECKPOINT_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", "chat", *args],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def thread_of(output: str) -> str:
    return re.search(r"Thread ([0-9a-f]{32})", output).group(1)


def test_a_conversation_is_kept_in_redis_and_resumed(redis_server):
    first = chat(redis_server.url, ["My name is Grace Hopper", "what time is it in Asia/Tokyo?"])
    assert first.returncode == 0, first.stderr
    assert "offline demo model" in first.stdout
    assert "Nice to meet you, **Grace Hopper**!" in first.stdout
    assert "[current_datetime]" in first.stdout and "(Asia/Tokyo, UTC+09:00)" in first.stdout
    assert "WARNING" not in first.stderr
    thread_id = thread_of(first.stdout)

    again = chat(redis_server.url, ["what is my name?", "/quit"], "--thread", thread_id)
    assert again.returncode == 0, again.stderr
    assert "you> My name is Grace Hopper" in again.stdout  # the history is shown first
    assert "your name is **Grace Hopper**" in again.stdout


async def test_thread_resumes_a_conversation_started_on_the_web(redis_server):
    runner = Runner()
    await runner.submit("web-thread-1", "My name is Ada", "ada@example.com")
    await events_until("web-thread-1", "done")
    await runner.drain()

    result = chat(redis_server.url, ["what is my name?"], "--thread", "web-thread-1")
    assert result.returncode == 0, result.stderr
    assert "your name is **Ada**" in result.stdout
    users = [m["content"] for m in await history.get_history("web-thread-1") if m["role"] == "user"]
    assert users == ["My name is Ada", "what is my name?"]  # the web UI sees the CLI's turn


def test_without_redis_it_still_chats_in_memory_with_a_warning():
    result = chat(f"redis://127.0.0.1:{closed_port()}", ["My name is Ada", "what is my name?"])
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "NOT be saved" in result.stderr
    assert "in memory only" in result.stdout
    assert "your name is **Ada**" in result.stdout  # multi-turn within the process
    assert "Traceback" not in result.stderr


def test_a_bad_thread_id_is_refused(redis_server):
    result = chat(redis_server.url, [], "--thread", "bad id!")
    assert result.returncode != 0
    assert "--thread takes" in result.stderr
