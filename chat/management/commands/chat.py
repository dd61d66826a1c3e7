"""``manage.py chat [--thread ID] [--user EMAIL]``: chat with the assistant in the terminal.

The reply streams as the model writes it, its Markdown made readable for a terminal
(:class:`TerminalMarkdown`: no ``**`` or backticks, bullets, links as "text (url)").
Conversations are kept in the Redis checkpointer (db 1) when Redis answers, so
``--thread`` resumes one started in the web UI (and the web UI shows what was said
here). A conversation has an owner, ``--user`` (by default the local development user,
``developer@localhost``, who a local sign-in on the web is): the thread is claimed for
them (:func:`chat.threads.aclaim`), so it is in their chat list on the web, and a thread
of someone else is refused. Without Redis the command still works, on LangGraph's
``InMemorySaver`` with a warning: the seed makes Redis optional for the CLI. The command
runs the graph itself for what you type; it uses db 0 for the owner, `--user`'s Google
credentials and approvals (below).

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
import re
import sys
import threading
import uuid
from typing import TextIO

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph

from agenticpal.redis_clients import UNAVAILABLE_ERRORS, unavailable_message
from chat import events, pending, threads
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
from workspace.views import LOCAL_EMAIL

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


# --- Markdown for a terminal ------------------------------------------------------------

_PIECES = re.compile(r"\n|[^\S\n]+|\S+")
_OPENING = "([{\"'\u201c\u2018"
_CLOSING = ")]}\"'\u201d\u2019.,;:!?"
_LEAD_MARK = re.compile(rf"^([{re.escape(_OPENING)}]*)(\*{{1,3}}|_{{2,3}})(?=[^\s*_])")
_TRAIL_MARK = re.compile(rf"(?<=[^\s*_])(\*{{1,3}}|_{{2,3}})([{re.escape(_CLOSING)}]*)$")
_UNDERSCORED = re.compile(
    rf"^([{re.escape(_OPENING)}]*)_(?=[^\s_])(.*[^\s_])_([{re.escape(_CLOSING)}]*)$"
)
_LINK = re.compile(r"!?\[([^\]\n]*)\]\(([^)\s]+)\)")
_LINK_LIKE = re.compile(r"\[[^\]\n]*(?:\](?:\([^)\s]*\)?)?)?")  # a link, maybe unfinished
_LINK_WAIT = 300  # the longest text held back for a link to finish
_HEADING = re.compile(r"#{1,6}")
_BULLET = {"-", "*", "+"}
_RULE = re.compile(r"([-*_])\1{2,}")


def _link_text(link: re.Match) -> str:
    text, url = link[1].strip(), link[2]
    return url if not text or text == url else f"{text} ({url})"


class TerminalMarkdown:
    """A reply's Markdown made readable in a terminal, as it streams: ``**bold**``,
    ``*em*``, ``__strong__`` and backticks lose their marks, ``# Title`` its hashes, a
    list item gets a bullet, ``[text](url)`` reads "text (url)", a fenced block is shown
    as it is without its fences. Text is written a word at a time (the part after the
    last space waits for the next chunk; so does a link until it is complete), so a mark
    split over two chunks is still removed. ``feed`` returns what can be written now,
    ``flush`` the rest."""

    def __init__(self) -> None:
        self.pending = ""
        self.line_start = True
        self.in_fence = False
        self.skip_line = False  # a fence's own line is not shown
        self.swallow_space = False  # the space after a heading's hashes
        self.in_code = False  # between backticks

    def feed(self, text: str) -> str:
        self.pending += text
        end = max(self.pending.rfind(" "), self.pending.rfind("\n"), self.pending.rfind("\t")) + 1
        end = self._cut(self.pending, end)
        ready, self.pending = self.pending[:end], self.pending[end:]
        return self._render(ready) if ready else ""

    @staticmethod
    def _cut(text: str, end: int) -> int:
        """``end``, or the start of the word of a link that a cut there would split (one
        with a space in its text, or one still being written)."""
        line_start = text.rfind("\n", 0, end) + 1
        for link in _LINK_LIKE.finditer(text, line_start):
            unfinished = link.end() == len(text) and not link[0].endswith(")")
            if link.start() < end <= link.end() or unfinished:
                if len(text) - link.start() > _LINK_WAIT:
                    return end  # not a link after all, or a very long one: show it
                before = text[line_start : link.start()]
                return line_start + max(before.rfind(" "), before.rfind("\t")) + 1
        return end

    def flush(self) -> str:
        ready, self.pending = self.pending, ""
        return self._render(ready)

    @classmethod
    def plain(cls, text: str) -> str:
        """A whole reply at once (the history of a resumed thread)."""
        renderer = cls()
        return renderer.feed(text) + renderer.flush()

    def _render(self, text: str) -> str:
        out: list[str] = []
        for piece in _PIECES.findall(self._links(text)):
            if piece == "\n":
                if not self.skip_line:
                    out.append("\n")
                self.line_start, self.skip_line, self.swallow_space = True, False, False
                self.in_code = False  # a code span ends with its line
            elif self.skip_line:
                continue
            elif piece.isspace():
                if not self.swallow_space:
                    out.append(piece)
                self.swallow_space = False
            else:
                out.append(self._word(piece))
                self.line_start = False
        return clean("".join(out))

    def _links(self, text: str) -> str:
        """``[text](url)`` -> ``text (url)``, line by line, except in a fenced block."""
        lines = text.split("\n")
        fenced, at_start = self.in_fence, self.line_start
        for index, line in enumerate(lines):
            fence = (at_start or index) and line.lstrip().startswith(("```", "~~~"))
            if not fenced and not fence:
                lines[index] = _LINK.sub(_link_text, line)
            fenced ^= bool(fence)
        return "\n".join(lines)

    def _word(self, word: str) -> str:
        if self.line_start and word.startswith(("```", "~~~")):
            self.in_fence, self.skip_line = not self.in_fence, True
            return ""
        if self.in_fence:
            return word
        if self.line_start and not self.in_code:
            if _HEADING.fullmatch(word):
                self.swallow_space = True
                return ""
            if word in _BULLET:
                return "•"
            if _RULE.fullmatch(word):
                return "─" * 24
        if "`" not in word and self.in_code:
            return word
        parts = word.split("`")
        shown = []
        for index, part in enumerate(parts):
            if index:
                self.in_code = not self.in_code
            shown.append(part if self.in_code else self._inline(part))
        return "".join(shown)

    @staticmethod
    def _inline(text: str) -> str:
        if not text:
            return text
        text = _UNDERSCORED.sub(r"\1\2\3", text)
        for _ in range(2):  # "**_both_**"
            text = _LEAD_MARK.sub(r"\1", text)
            text = _TRAIL_MARK.sub(r"\2", text)
        return text


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
            help="whose conversation this is and whose Google Workspace the assistant reads "
            f"(an email; default {LOCAL_EMAIL}, the local development user); the thread is "
            "in their chat list on the web. Their stored Google credentials are used (sign "
            "in on the web once); with WORKSPACE_DEMO on, the demo workspace",
        )

    def handle(
        self, *args, thread: str | None = None, timezone: str = "", user: str = "", **options
    ) -> None:
        if thread is not None and not validate_thread_id(thread):
            raise CommandError("--thread takes 1-64 letters, digits, '_' or '-'.")
        user = (user or "").strip() or LOCAL_EMAIL
        try:
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
        if kept:  # before anything is shown: someone else's thread shows nothing
            await self.claim(thread_id, user, resumed=thread is not None)
            if demo.enabled():
                await asyncio.to_thread(demo.connect, user)
        self.stdout.write(f"AgenticPal — {model_display_name()}")
        if kept:
            self.stdout.write(
                f"Thread {thread_id} of {user} (resume with: manage.py chat --thread {thread_id})"
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

    async def claim(self, thread_id: str, user: str, *, resumed: bool) -> None:
        """Make ``thread_id`` ``user``'s (it joins their chat list on the web), or refuse."""
        try:
            ours = await threads.aclaim(user, thread_id)
        except threads.TooManyThreads as exc:
            raise CommandError(str(exc)) from None
        if not ours:
            raise CommandError(
                f"Thread {thread_id} is not a conversation of {user}: it belongs to another "
                "user. Give its owner's email with --user, or leave out --thread to start a "
                "new conversation."
                if resumed
                else f"Thread {thread_id} is taken; try again."
            )

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
        reply = TerminalMarkdown()
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
                        self.stdout.write(reply.feed(str(event.get("text", ""))), ending="")
                        self.stdout.flush()
                    elif kind == "tool":
                        if started:
                            self.stdout.write(reply.flush())
                            started = False
                        self.write_tool(
                            event.get("name", "tool"), event.get("data"), event.get("output", "")
                        )
                    elif kind == "decided" and event.get("decision") == "gone":
                        self.stdout.write("(that action was no longer waiting)")
                    elif kind in ("done", "error", "cancelled"):
                        if started:
                            self.stdout.write(reply.flush())
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
            elif item["role"] == "user":
                self.stdout.write(f"you> {clean(item['content'])}")
            else:
                stopped = " (stopped)" if item.get("stopped") else ""
                self.stdout.write(f"assistant> {TerminalMarkdown.plain(item['content'])}{stopped}")
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
        reply = TerminalMarkdown()
        try:
            async for kind, value in stream_turn(graph, config, message_id, text):
                if kind == "token":
                    partial.append(value)
                    if not speaking:
                        self.stdout.write("assistant> ", ending="")
                        speaking = True
                    self.stdout.write(reply.feed(value), ending="")
                    self.stdout.flush()
                elif kind == "tool":
                    if speaking:
                        self.stdout.write(reply.flush())
                        speaking = False
                    self.write_tool(value.name, tool_data(value), message_text(value))
                elif kind == "approval":
                    pass  # asked once the run has paused (see ask_approvals)
                else:
                    partial = []
            if speaking:
                self.stdout.write(reply.flush())
        except asyncio.CancelledError:  # Ctrl-C: keep what was said, then leave
            await settle_turn(graph, config, message_id, stopped_text="".join(partial))
            self.stdout.write(f"{reply.flush()} (stopped)")
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
