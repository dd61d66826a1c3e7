"""``manage.py chat [--thread ID]``: chat with the assistant in the terminal.

The reply streams as the model writes it. Conversations are kept in the Redis
checkpointer (db 1) when Redis answers, so ``--thread`` resumes one started in the web
UI (and the web UI shows what was said here). Without Redis the command still works,
on LangGraph's ``InMemorySaver`` with a warning: the seed makes Redis optional for the
CLI. The command runs the graph itself; it reads db 0 only for `--user`'s Google credentials.

Type ``/quit`` (or end the input) to leave; Ctrl-C stops a reply and leaves.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from typing import TextIO

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message
from chat.checkpoint import create_redis_checkpointer
from chat.graph import (
    build_graph,
    message_text,
    model_display_name,
    run_config,
    settle_turn,
    stream_turn,
)
from chat.history import as_dict
from chat.messages import tool_data
from chat.render import render_tool_text
from chat.threads import validate_thread_id
from workspace import demo

QUIT = {"/quit", "/exit", "/q"}
PROMPT = "you> "


def read_lines(stdin: TextIO) -> asyncio.Queue[str]:
    """Lines of ``stdin`` as they are typed ("" at the end), read by a daemon thread.

    A blocking read on the event loop would keep Ctrl-C from stopping a reply, and a
    thread of the loop's executor would keep the process alive at exit.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        try:
            for line in iter(stdin.readline, ""):
                loop.call_soon_threadsafe(queue.put_nowait, line)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=pump, name="chat-stdin", daemon=True).start()
    return queue


class Command(BaseCommand):
    help = "Chat with the assistant in the terminal (Redis optional: without it nothing is kept)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--thread", help="resume this conversation (a thread id, e.g. from the web UI's URL)"
        )
        parser.add_argument(
            "--timezone", default="", help="your IANA timezone for date/time answers"
        )
        parser.add_argument(
            "--user",
            default="",
            help="whose Google Workspace the assistant reads (an email with stored Google "
            "credentials: sign in on the web once); with WORKSPACE_DEMO on, the demo workspace",
        )

    def handle(
        self, *args, thread: str | None = None, timezone: str = "", user: str = "", **options
    ) -> None:
        if thread is not None and not validate_thread_id(thread):
            raise CommandError("--thread takes 1-64 letters, digits, '_' or '-'.")
        try:
            if user and demo.enabled():
                demo.connect(user)
            asyncio.run(self.chat(thread, timezone, user, sys.stdin))
        except KeyboardInterrupt:
            self.stdout.write("")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        except UNAVAILABLE_ERRORS as exc:
            raise CommandError(unavailable_message(exc, "checkpoints")) from None

    async def chat(self, thread: str | None, timezone: str, user: str, stdin: TextIO) -> None:
        saver = await create_redis_checkpointer(fallback=True)
        graph = build_graph(checkpointer=saver)
        thread_id = thread or uuid.uuid4().hex
        kept = not isinstance(saver, InMemorySaver)
        self.stdout.write(f"AgenticPal — {model_display_name()}")
        if kept:
            self.stdout.write(
                f"Thread {thread_id} (resume with: manage.py chat --thread {thread_id})"
            )
        else:
            self.stdout.write(f"Thread {thread_id} (in memory only: lost when you leave)")
        self.stdout.write("Type /quit to leave.\n")
        config = run_config(thread_id, timezone, user)
        if thread is not None:
            await self.show_history(graph, config)
        lines = read_lines(stdin)
        while True:
            self.stdout.write(PROMPT, ending="")
            self.stdout.flush()
            line = await lines.get()
            if not line:
                self.stdout.write("")
                return
            text = line.strip()
            if not text:
                continue
            if text in QUIT:
                return
            await self.turn(graph, config, text)

    async def show_history(self, graph: CompiledStateGraph, config: dict) -> None:
        state = await graph.aget_state(config)
        shown = [item for m in state.values.get("messages", []) if (item := as_dict(m))]
        if not shown:
            self.stdout.write("(this thread has no messages yet)\n")
            return
        for item in shown:
            if item["role"] == "tool":
                self.write_tool(item["name"], item.get("data"), item["content"])
            else:
                label = "you" if item["role"] == "user" else "assistant"
                self.stdout.write(f"{label}> {item['content']}")
        self.stdout.write("")

    def write_tool(self, name: str, data: dict | None, text: str) -> None:
        """A tool result: an agenda, an inbox, a checklist (or the tool's text)."""
        shown = render_tool_text(data) if data else f"[{name}] {text}"
        self.stdout.write("\n".join(f"  {line}" for line in shown.splitlines()))

    async def turn(self, graph: CompiledStateGraph, config: dict, text: str) -> None:
        """Stream one reply; a model error is reported and the turn undone."""
        message_id = uuid.uuid4().hex
        partial: list[str] = []
        self.stdout.write("assistant> ", ending="")
        try:
            async for kind, value in stream_turn(graph, config, message_id, text):
                if kind == "token":
                    partial.append(value)
                    self.stdout.write(value, ending="")
                    self.stdout.flush()
                elif kind == "tool":
                    self.write_tool(value.name, tool_data(value), message_text(value))
                    self.stdout.write("assistant> ", ending="")
                else:
                    partial = []
            self.stdout.write("")
        except asyncio.CancelledError:  # Ctrl-C: keep what was said, then leave
            await settle_turn(graph, config, message_id, stopped_text="".join(partial))
            self.stdout.write(" (stopped)")
            raise
        except UNAVAILABLE_ERRORS:
            raise
        except Exception as exc:
            self.stdout.write("")
            self.stderr.write(
                f"The assistant could not answer ({type(exc).__name__}: {exc}). "
                "That message was not kept; try again."
            )
            await settle_turn(graph, config, message_id, stopped_text=None)
