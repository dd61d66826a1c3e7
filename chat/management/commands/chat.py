"""``manage.py chat [--thread ID]``: chat with the assistant in the terminal.

The reply streams as the model writes it. Conversations are kept in the Redis
checkpointer (db 1) when Redis answers, so ``--thread`` resumes one started in the web
UI (and the web UI shows what was said here). Without Redis the command still works,
on LangGraph's ``InMemorySaver`` with a warning: the seed makes Redis optional for the
CLI. The command runs the graph itself for what you type; it uses db 0 for `--user`'s
Google credentials and for approvals (below).

Type ``/quit`` (or end the input) to leave; Ctrl-C stops a reply and leaves.

A change to the user's Workspace (a task, an event, a mail...) waits for their approval:
the card is printed (title, summary, details) and ``[a]pprove / [e]dit / [r]eject`` is
asked inline, for each waiting card (again when ``--thread`` resumes a thread with one).
Edit walks the action's fields (:func:`chat.approvals.form_fields`: Enter keeps a value,
``-`` empties it). The decision goes through the same path as the web's
(:meth:`chat.runner.Runner.decide`: queued durably, run under the thread's run lock,
its events published for every open tab); the outcome and the reply are printed from
those events. End of input or Ctrl-C at the question leaves the card waiting. Deciding
needs Redis (the decision is queued there, and an approved action is recorded there
so that it runs once).
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
from chat import events, pending
from chat.approvals import form_fields
from chat.checkpoint import create_redis_checkpointer
from chat.graph import (
    build_graph,
    message_text,
    model_display_name,
    run_config,
    set_aside_approvals,
    settle_turn,
    stream_turn,
    waiting_approvals,
)
from chat.history import as_dict
from chat.messages import tool_data
from chat.render import CONTROL_CHARACTERS, render_tool_text
from chat.runner import InvalidMessage, Runner
from chat.threads import validate_thread_id
from workspace import demo

QUIT = {"/quit", "/exit", "/q"}
PROMPT = "you> "
CHOICES = {"a": "approve", "approve": "approve", "e": "edit", "edit": "edit",
           "r": "reject", "reject": "reject"}  # fmt: skip
TRUE = {"y", "yes", "true", "1", "on"}
FALSE = {"n", "no", "false", "0", "off"}
CLEAR = "-"  # typed for a field's new value: empty it
MOVED_ON = "the user moved on without approving it"
FOLLOW_BLOCK_MS = 1000  # one blocking read of the thread's events while a decision runs


class LeftWaiting(Exception):
    """The input ended at an approval question: the card stays waiting."""


def clean(value: object) -> str:
    """Text for the terminal: no control characters (a mail must not drive the terminal)."""
    return CONTROL_CHARACTERS.sub("", str(value))


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
        self.kept, self.user, self.thread_id = kept, user, thread_id
        self.lines, self.ended = read_lines(stdin), False

        async def the_graph() -> CompiledStateGraph:
            return graph

        # Decisions run as the web's do: queued, under the run lock, events published.
        self.runner = Runner(graph_factory=the_graph)
        try:
            if thread is not None:
                await self.show_history(graph, config)
                if kept and await pending.ahas_pending(thread_id):
                    await self.finish_queued(thread_id)
                await self.ask_approvals(graph, config)
            while not self.ended:
                text = await self.read(PROMPT)
                if text is None:
                    self.stdout.write("")
                    return
                text = text.strip()
                if not text:
                    continue
                if text in QUIT:
                    return
                await self.turn(graph, config, text)
                await self.ask_approvals(graph, config)
        except LeftWaiting:
            return
        except asyncio.CancelledError:  # Ctrl-C: a decision under way stays queued
            await self.runner.aclose()
            raise
        finally:
            await self.runner.drain()

    async def read(self, prompt: str) -> str | None:
        """The next line typed (without its newline), None once the input has ended."""
        if self.ended:
            return None
        self.stdout.write(prompt, ending="")
        self.stdout.flush()
        line = await self.lines.get()
        if not line:
            self.ended = True
            return None
        return line.rstrip("\r\n")

    # --- approvals ------------------------------------------------------------------

    async def ask_approvals(self, graph: CompiledStateGraph, config: dict) -> None:
        """Ask about each waiting card, one at a time, until none waits (or the input
        ends: then they stay waiting, and this says so)."""
        refused: set[str] = set()
        while True:
            waiting = [w for w in await waiting_approvals(graph, config) if w.id not in refused]
            if not waiting:
                return
            if not self.kept:
                self.stdout.write(
                    f"{len(waiting)} action(s) wait for your approval, but deciding needs "
                    "Redis (it is not reachable): nothing was done."
                )
                return
            found = waiting[0]
            card = found.value if isinstance(found.value, dict) else {}
            self.write_card(card)
            try:
                decision = await self.ask_decision(card)
            except asyncio.CancelledError:  # Ctrl-C at the question
                self.stdout.write("")
                self.say_left_waiting(len(waiting))
                raise
            if decision is None:
                self.stdout.write("")
                self.say_left_waiting(len(waiting))
                raise LeftWaiting
            if not await self.decide(found.id, decision):
                refused.add(found.id)  # refused (someone else's thread, a limit): say once

    def say_left_waiting(self, count: int) -> None:
        where = f"manage.py chat --thread {self.thread_id} or the web UI"
        self.stdout.write(
            f"(left waiting: {count} action(s) still need your decision; nothing was done. "
            f"Decide with {where}.)"
        )

    def write_card(self, card: dict) -> None:
        self.stdout.write(f"Approval needed · {clean(card.get('title') or card.get('action'))}")
        self.stdout.write(f"  {clean(card.get('summary', ''))}")
        for row in card.get("details") or []:
            label, value = [*list(row), "", ""][:2]
            lines = clean(value).splitlines() or [""]
            self.stdout.write(f"  {clean(label)}: {lines[0]}")
            for more in lines[1:]:
                self.stdout.write(f"    {more}")
        if card.get("error"):
            self.stdout.write(f"  ! {clean(card['error'])}")

    async def ask_decision(self, card: dict) -> dict | None:
        """The user's decision on ``card`` (None: the input ended)."""
        while True:
            answer = await self.read("[a]pprove / [e]dit / [r]eject? ")
            if answer is None:
                return None
            choice = CHOICES.get(answer.strip().lower())
            if choice == "approve":
                return {"type": "approve"}
            if choice == "reject":
                reason = await self.read("Why not? (optional, Enter to skip) ")
                if reason is None:
                    return None
                return {"type": "reject", "message": reason.strip()}
            if choice == "edit":
                changes = await self.ask_edit(card)
                if changes is None:
                    return None
                if changes:
                    return {"type": "edit", "args": changes}
                self.stdout.write("Nothing changed.")
                continue
            self.stdout.write("Type a, e or r.")

    async def ask_edit(self, card: dict) -> dict | None:
        """The changed arguments, field by field (Enter keeps a value; None: input ended)."""
        self.stdout.write(f"Edit (Enter keeps a value, '{CLEAR}' empties it):")
        changes: dict = {}
        for field in form_fields(card):
            current = field["value"]
            shown = ("yes" if current else "no") if field["kind"] == "checkbox" else current
            hint = f" ({'/'.join(map(str, field['choices']))})" if field["choices"] else ""
            while True:
                typed = await self.read(f"  {field['label']}{hint} [{clean(shown)}]: ")
                if typed is None:
                    return None
                value, problem = self.parse_field(field, typed.strip())
                if problem:
                    self.stdout.write(f"  {problem}")
                    continue
                break
            if value is not None and value != self.parse_field(field, str(shown))[0]:
                changes[field["name"]] = value
        return changes

    @staticmethod
    def parse_field(field: dict, typed: str) -> tuple[object, str]:
        """``(value, "")``, ``(None, "")`` to keep the current one, or ``(None, problem)``."""
        if not typed:
            return None, ""
        kind = field["kind"]
        if kind == "checkbox":
            if typed.lower() in TRUE:
                return True, ""
            if typed.lower() in FALSE:
                return False, ""
            return None, "Type y or n."
        if typed == CLEAR:
            return ([] if kind == "list" else ""), ""
        if kind == "number":
            try:
                return int(typed), ""
            except ValueError:
                return None, "Type a whole number."
        if kind == "choice" and typed not in [str(c) for c in field["choices"]]:
            return None, f"Type one of: {', '.join(map(str, field['choices']))}."
        if kind == "list":
            return [part.strip() for part in typed.split(",") if part.strip()], ""
        return typed, ""

    async def decide(self, interrupt_id: str, decision: dict) -> bool:
        """Send the decision the web's way and print what came of it; False if refused."""
        after = await events.last_id(self.thread_id)
        try:
            mid = await self.runner.decide(self.thread_id, {interrupt_id: decision}, self.user)
        except InvalidMessage as exc:  # gone (409), someone else's thread, a limit
            self.stdout.write(f"Not sent: {exc}")
            return False
        await self.follow(after, mid)
        return True

    async def finish_queued(self, thread_id: str) -> None:
        """A decision or message left queued (a CLI stopped while it ran): run it now."""
        after = await events.last_id(thread_id)
        if await self.runner.recover(thread_id):
            self.stdout.write("(carrying out what was left queued on this thread)")
            await self.follow(after, None)

    async def follow(self, after: str, mid: str | None) -> None:
        """Print the events of run ``mid`` (any run if None) from the thread's stream until
        it ends: the action's outcome, the reply, its status."""
        started = False
        try:
            while True:
                batch = await events.read_since(self.thread_id, after, block_ms=FOLLOW_BLOCK_MS)
                if not batch and not await self.still_running():
                    batch = await events.read_since(self.thread_id, after)
                    if not batch:
                        self.stdout.write("(the decision's run ended without an answer)")
                        return
                for event in batch:
                    after = event["id"]
                    if mid is not None and event.get("message_id") != mid:
                        continue
                    kind = event.get("type")
                    if kind == "token":
                        if not started:
                            self.stdout.write("assistant> ", ending="")
                            started = True
                        self.stdout.write(clean(event.get("text", "")), ending="")
                        self.stdout.flush()
                    elif kind == "tool":
                        if started:
                            self.stdout.write("")
                            started = False
                        self.write_tool(
                            event.get("name", "tool"), event.get("data"), event.get("output", "")
                        )
                    elif kind == "decided" and event.get("decision") == "gone":
                        self.stdout.write("(that action was no longer waiting)")
                    elif kind in ("done", "error", "cancelled"):
                        if started:
                            self.stdout.write("")
                        if kind == "error":
                            self.stderr.write(clean(event.get("reason", "")))
                        elif kind == "cancelled":
                            self.stdout.write("(stopped)")
                        return
        except asyncio.CancelledError:
            self.stdout.write(
                "\n(stopped waiting: the decision is saved and is carried out when the "
                "thread is next opened, here with --thread or in the web UI)"
            )
            raise

    async def still_running(self) -> bool:
        return await pending.ahas_pending(self.thread_id) or await pending.ais_busy(self.thread_id)

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
        # The user moved on (a card they could not decide): the web's rule, see the runner.
        for waiting in await set_aside_approvals(graph, config, MOVED_ON):
            summary = waiting.value.get("summary", "") if isinstance(waiting.value, dict) else ""
            self.stdout.write(f"(set aside, not done: {clean(summary)})")
        speaking = False  # "assistant> " is printed with the first word of each reply
        try:
            async for kind, value in stream_turn(graph, config, message_id, text):
                if kind == "token":
                    partial.append(value)
                    if not speaking:
                        self.stdout.write("assistant> ", ending="")
                        speaking = True
                    self.stdout.write(value, ending="")
                    self.stdout.flush()
                elif kind == "tool":
                    if speaking:
                        self.stdout.write("")
                        speaking = False
                    self.write_tool(value.name, tool_data(value), message_text(value))
                elif kind == "approval":
                    pass  # asked once the run has paused (see ask_approvals)
                else:
                    partial = []
            if speaking:
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
