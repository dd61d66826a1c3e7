"""``manage.py chat``: a real subprocess fed on stdin, with Redis up and with Redis down;
the conversation's owner (``--user``, by default the local development user; someone
else's thread refused); replies' Markdown made readable for a terminal; approval cards
asked inline (approve, reject, edit, left waiting) on the demo workspace."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chat import history, threads
from chat.management.commands.chat import TerminalMarkdown
from chat.offline_model import words
from chat.runner import Runner
from tests.chat_support import events_until
from workspace import actions
from workspace.views import LOCAL_EMAIL

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chat(
    redis_url: str, lines: list[str], *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
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
    assert "Nice to meet you, Grace Hopper!" in first.stdout  # Markdown, made readable
    assert "**" not in first.stdout
    assert "[current_datetime]" in first.stdout and "(Asia/Tokyo, UTC+09:00)" in first.stdout
    assert "WARNING" not in first.stderr
    thread_id = thread_of(first.stdout)
    # No --user: the local development user's, in their chat list on the web.
    assert f"Thread {thread_id} of {LOCAL_EMAIL}" in first.stdout
    assert threads.owner_of(thread_id) == LOCAL_EMAIL
    assert threads.threads_for(LOCAL_EMAIL) == [thread_id]

    again = chat(redis_server.url, ["what is my name?", "/quit"], "--thread", thread_id)
    assert again.returncode == 0, again.stderr
    assert "you> My name is Grace Hopper" in again.stdout  # the history is shown first
    assert "assistant> Nice to meet you, Grace Hopper!" in again.stdout
    assert "your name is Grace Hopper" in again.stdout
    assert threads.threads_for(LOCAL_EMAIL) == [thread_id]


async def test_thread_resumes_a_conversation_started_on_the_web(redis_server):
    assert await threads.aclaim("ada@example.com", "web-thread-1")  # as the web page does
    runner = Runner()
    await runner.submit("web-thread-1", "My name is Ada", "ada@example.com")
    await events_until("web-thread-1", "done")
    await runner.drain()

    # Ada's thread: the local development user (no --user) is refused, and sees nothing.
    refused = chat(redis_server.url, ["what is my name?"], "--thread", "web-thread-1")
    assert refused.returncode != 0
    assert "belongs to another user" in refused.stderr and "--user" in refused.stderr
    assert "Ada" not in refused.stdout and "Traceback" not in refused.stderr
    before = await history.get_history("web-thread-1")
    assert [m["role"] for m in before] == ["user", "assistant"]  # nothing was added
    assert await threads.aowner_of("web-thread-1") == "ada@example.com"
    assert await threads.athreads_for(LOCAL_EMAIL) == []

    args = ("--thread", "web-thread-1", "--user", "ada@example.com")
    result = chat(redis_server.url, ["what is my name?"], *args)
    assert result.returncode == 0, result.stderr
    assert "your name is Ada" in result.stdout
    users = [m["content"] for m in await history.get_history("web-thread-1") if m["role"] == "user"]
    assert users == ["My name is Ada", "what is my name?"]  # the web UI sees the CLI's turn


def test_without_redis_it_still_chats_in_memory_with_a_warning():
    result = chat(f"redis://127.0.0.1:{closed_port()}", ["My name is Ada", "what is my name?"])
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "NOT be saved" in result.stderr
    assert "in memory only" in result.stdout
    assert "your name is Ada" in result.stdout  # multi-turn within the process
    assert "Traceback" not in result.stderr


def test_a_bad_thread_id_is_refused(redis_server):
    result = chat(redis_server.url, [], "--thread", "bad id!")
    assert result.returncode != 0
    assert "--thread takes" in result.stderr
    assert "Traceback" not in result.stderr
    assert threads.threads_for(LOCAL_EMAIL) == []  # nothing was claimed


# --- Markdown in a terminal ---------------------------------------------------------

REPLIES = [
    ("Nice to meet you, **Grace Hopper**! I will remember.",
     "Nice to meet you, Grace Hopper! I will remember."),
    ("It is **12:00 (Europe/Paris, UTC+01:00)**.", "It is 12:00 (Europe/Paris, UTC+01:00)."),
    ("Set `AGENTICPAL_MODEL` to use *a real* model, _really_.",
     "Set AGENTICPAL_MODEL to use a real model, really."),
    ("# Today\n- **9:00** standup\n* lunch\n1. first", "Today\n• 9:00 standup\n• lunch\n1. first"),
    ("See [the docs](https://example.com/a_b) now.", "See the docs (https://example.com/a_b) now."),
    ("```\nx = a**2 * b\n```\nsnake_case_name and 2 * 3 stay.",
     "x = a**2 * b\nsnake_case_name and 2 * 3 stay."),
    ("no \x1b[2Jescape", "no [2Jescape"),  # control characters never reach the terminal
]  # fmt: skip


@pytest.mark.parametrize(("markdown", "shown"), REPLIES)
def test_replies_are_shown_without_markdown_marks(markdown, shown):
    assert TerminalMarkdown.plain(markdown) == shown
    # The same while it streams, whatever the chunks: the model's words, or characters.
    for chunks in (words(markdown), list(markdown)):
        renderer = TerminalMarkdown()
        assert "".join(renderer.feed(c) for c in chunks) + renderer.flush() == shown


# --- approvals: the card is asked inline and decided the web's way (Runner.decide) -----

USER = "ada@example.com"


def demo_chat(redis_url: str, lines: list[str], *args: str) -> subprocess.CompletedProcess:
    """``manage.py chat --user USER`` on the demo workspace (its data lives in the process)."""
    extra = {"WORKSPACE_DEMO": "true", "AGENTICPAL_OFFLINE_WORD_DELAY": "0"}
    return chat(redis_url, lines, "--user", USER, *args, extra_env=extra)


def listed(output: str, title: str) -> int:
    """How many times the task list printed by "what tasks do I have?" shows ``title``."""
    return len(re.findall(rf"^\s*\[[ x]\] {re.escape(title)}$", output, re.MULTILINE))


async def test_approve_creates_the_task_once(redis_server):
    result = demo_chat(redis_server.url, ["create a task: buy milk", "a", "what tasks do I have?"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Approval needed · Create a task" in out
    assert "  Create the task 'buy milk' in" in out
    assert "[a]pprove / [e]dit / [r]eject?" in out
    assert "Done: Create the task 'buy milk'" in out  # the outcome (the tool event)
    assert "assistant> Done: Created the task 'buy milk'" in out  # the reply
    assert listed(out, "buy milk") == 1
    trail = await actions.audit_trail(thread_of(out))
    assert len(trail) == 1 and trail[0]["approved_by"] == USER
    assert trail[0]["decision"] == "approve"
    assert await history.thread_status(thread_of(out)) == history.IDLE


async def test_reject_creates_nothing_and_tells_the_model_why(redis_server):
    result = demo_chat(
        redis_server.url, ["create a task: buy milk", "r", "I have milk", "what tasks do I have?"]
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Why not?" in out
    assert "Not done: Create the task 'buy milk'" in out
    assert "I have milk" in out.split("Why not?", 1)[1]
    assert listed(out, "buy milk") == 0
    assert await actions.audit_trail(thread_of(out)) == []


async def test_edit_changes_the_title_field_by_field(redis_server):
    # CreateTask's fields: title, notes, due, task list (Enter keeps the value).
    lines = ["create a task: buy milk", "e", "buy almond milk", "", "", "", "what tasks do I have?"]
    result = demo_chat(redis_server.url, lines)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "  Title [buy milk]: " in out and "  Notes []: " in out
    assert "Done: Create the task 'buy almond milk'" in out and "(as edited)" in out
    assert listed(out, "buy almond milk") == 1 and listed(out, "buy milk") == 0
    (entry,) = await actions.audit_trail(thread_of(out))
    assert entry["decision"] == "edit" and "buy almond milk" in entry["summary"]


async def test_the_end_of_input_leaves_the_card_waiting_until_resumed(redis_server):
    first = demo_chat(redis_server.url, ["create a task: buy milk"])
    assert first.returncode == 0, first.stderr
    assert "left waiting: 1 action(s) still need your decision" in first.stdout
    thread_id = thread_of(first.stdout)
    assert len(await history.get_approvals(thread_id)) == 1
    assert await history.thread_status(thread_id) == history.AWAITING_APPROVAL
    assert await actions.audit_trail(thread_id) == []

    again = demo_chat(redis_server.url, ["a"], "--thread", thread_id)  # asked again on resume
    assert again.returncode == 0, again.stderr
    assert "Approval needed · Create a task" in again.stdout
    assert "Done: Create the task 'buy milk'" in again.stdout
    assert await history.get_approvals(thread_id) == []
    assert len(await actions.audit_trail(thread_id)) == 1


def interrupted_at_the_question(redis_url: str) -> tuple[str, str]:
    """Ask for a task, press Ctrl-C (SIGINT) at the approval question: (stdout, stderr)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
        "WORKSPACE_DEMO": "true",
        "AGENTICPAL_OFFLINE_WORD_DELAY": "0",
    }
    env.pop("CHECKPOINT_REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "chat", "--user", USER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    seen: list[str] = []
    asked = threading.Event()

    def pump() -> None:  # the question has no newline: read character by character
        while char := process.stdout.read(1):
            seen.append(char)
            if "".join(seen[-40:]).endswith("[r]eject? "):
                asked.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        process.stdin.write("create a task: buy milk\n")
        process.stdin.flush()  # stdin stays open: the command waits at the question
        assert asked.wait(60), "".join(seen)
        process.send_signal(signal.SIGINT)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    return "".join(seen), process.stderr.read()


async def test_ctrl_c_at_the_question_leaves_the_card_waiting(redis_server):
    out, err = interrupted_at_the_question(redis_server.url)
    assert "left waiting: 1 action(s) still need your decision" in out
    assert "Traceback" not in err
    thread_id = thread_of(out)
    assert len(await history.get_approvals(thread_id)) == 1
    assert await actions.audit_trail(thread_id) == []
