"""The AgenticPal offline demo model: a deterministic chat model that needs no network.

The default when ``AGENTICPAL_MODEL`` is unset, so a fresh checkout has a working
assistant. A real ``BaseChatModel`` that streams word by word, answers from the
conversation (it recalls names and earlier messages), calls ``current_datetime`` for
time questions, the Workspace read tools for the common phrasings ("what's on my
calendar tomorrow", "show my unread emails") and the write tools for the common changes
("add a meeting with ann@example.com next Tuesday at 2pm", "create a task: buy milk"),
and answers from the tools' structured
results only, never from the external text in them. Written here because LangChain's
fake models replay fixed responses; this one reacts to the conversation and the tools.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from chat.messages import message_text, tool_data
from workspace.dates import resolve_timezone

DISPLAY_NAME = "AgenticPal offline demo model"
DATETIME_TOOL = "current_datetime"

_NAME = re.compile(r"(?i:\bmy name is|\bi am|\bi'm|\bcall me)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)")
# A place after "in"/"for" ("in Tokyo", "in the UK", "for New York City"), up to four
# words; or a zone named anywhere ("UTC", "Europe/Paris").
_TIMEZONE = re.compile(
    r"\b(?:in|for)\s+(?:the\s+)?([^\W\d][\w/+'\u2019.-]*(?:\s+[^\W\d][\w/+'\u2019.-]*){0,3})"
    r"|\b(UTC|GMT|[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z0-9_+-]+){1,2})\b",
    re.IGNORECASE,
)
_ASKS_TIME = re.compile(
    r"\b(what time|time is it|the time|current time|time now|what day|which day|"
    r"today|date|what year)\b",
    re.IGNORECASE,
)
_ASKS_NAME = re.compile(r"\b(what is my name|what's my name|who am i|my name\?)", re.IGNORECASE)
_ASKS_RECALL = re.compile(
    r"\b(what did i (say|ask|tell|write)|earlier|before|remember|recap|summari[sz]e)\b",
    re.IGNORECASE,
)
_GREETING = re.compile(r"^\s*(hello|hi|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)

# Google Workspace phrasings ("what's on my calendar tomorrow", "show my unread emails",
# "what tasks are due this week", "find 30 minutes free on Friday") -> the read tools.
_WHEN = re.compile(
    r"\b(today|tonight|tomorrow|this week(?:end)?|next week|this month|next month|"
    r"next \d+ (?:days|weeks)|(?:on |next )?(?:monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday))\b",
    re.IGNORECASE,
)
_ASKS_CALENDAR = re.compile(
    r"\b(calendar|agenda|schedule|meetings?|events?|appointments?|what'?s on|busy)\b", re.I
)
_ASKS_FREE = re.compile(
    r"\b(?:find|any|have)?\s*(\d+)\s*(min(?:ute)?s?|hours?|h)\b.*\bfree\b|\bfree\b.*?\b(\d+)\s*"
    r"(min(?:ute)?s?|hours?|h)\b|\bfree (?:time|slot)",
    re.I,
)
_ASKS_MAIL = re.compile(r"\b(e-?mails?|mails?|inbox|gmail)\b", re.I)
_MAIL_FROM = re.compile(
    r"\bfrom (?!(?:this|next|last|today|tomorrow|yesterday)\b)([\w.@+-]+)", re.I
)
_ASKS_TASKS = re.compile(r"\b(tasks?|to-?dos?|to do list)\b", re.I)


# Changes ("add a meeting with ann@example.com next Tuesday at 2pm", "create a task: buy
# milk", "reply to Ann's last email saying thanks", "mark the groceries task done",
# "delete tomorrow's 9am", "send an email to ann@example.com saying hi") -> the write
# tools; each waits for the user's approval. Two-step ones look the item up first.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_ADD_EVENT = re.compile(
    r"\b(?:add|schedule|book|create|set up|put)\b.*?\b(meeting|event|call|appointment|lunch)\b"
    r"(?:\s+with\s+([\w.@+-]+))?(.*)$",
    re.I,
)
_AT_TIME = re.compile(r"\b(?:at|from)\s+(\d{1,2}(?::\d{2})?\s*(?:am|pm)?)", re.I)
_NEW_TASK = re.compile(r"\b(?:create|add|new)\s+(?:a\s+)?task\b\s*(?::|to|called)?\s*(.+)$", re.I)
_DONE_TASK = re.compile(
    r"\b(?:mark|tick|complete)\s+(?:the\s+)?(.+?)\s+task\b.*?\b(?:done|complete[d]?)?\b", re.I
)
_REPLY = re.compile(
    r"\breply to\s+([\w.@+-]+?)(?:'s)?\s+(?:last\s+)?e?-?mail\b.*?\bsaying\s+(.+)$", re.I
)
_SEND = re.compile(
    r"\b(send|draft|write)\s+(?:an?\s+)?e-?mail\s+to\s+([\w.@+-]+)\s+(?:saying|that says)\s+(.+)$",
    re.I,
)
_DELETE_EVENT = re.compile(
    r"\b(?:delete|cancel|remove)\s+(today|tomorrow)'?s?\s+(\d{1,2}(?::\d{2})?\s*(?:am|pm)?)", re.I
)


def _call(name: str, args: dict[str, Any], turn: int) -> dict[str, Any]:
    return {"name": name, "args": args, "id": f"call_{name}_{turn}"}


def action_calls(question: str, tool_names: Sequence[str], turn: int) -> list[dict[str, Any]]:
    """The first step of a change the user asks for (a write tool, or the lookup before it)."""
    if match := _REPLY.search(question):
        return [_call("search_email", {"query": f"from:{match.group(1)}", "limit": 1}, turn)]
    if match := _SEND.search(question):
        tool = "draft_email" if match.group(1).lower() in ("draft", "write") else "send_email"
        body = match.group(3).strip().rstrip(".")
        args = {"to": [match.group(2)], "subject": body[:60], "body": body}
        return [_call(tool, args, turn)]
    if match := _DELETE_EVENT.search(question):
        return [_call("calendar_events", {"when": match.group(1).lower()}, turn)]
    if match := _NEW_TASK.search(question):
        title = match.group(1).strip().strip("\"'“”").rstrip(".")
        due = _WHEN.search(title)
        args: dict[str, Any] = {"title": _WHEN.sub("", title).strip(" ,") or title}
        if due:
            args["due"] = due.group(1).lower()
        return [_call("create_task", args, turn)]
    if _DONE_TASK.search(question) and re.search(r"\bdone|complete", question, re.I):
        return [_call("list_tasks", {"include_completed": False}, turn)]
    if match := _ADD_EVENT.search(question):
        kind, who, rest = match.group(1), match.group(2), match.group(3)
        when = _WHEN.search(question)
        at = _AT_TIME.search(rest or question)
        start = " ".join(filter(None, [when.group(1) if when else "tomorrow",
                                       at.group(1) if at else "9am"]))  # fmt: skip
        args = {"title": f"{kind.capitalize()} with {who}" if who else kind.capitalize(),
                "start": start, "attendees": _EMAIL.findall(question)}  # fmt: skip
        return [_call("create_event", args, turn)]
    return []


def _clock(text: str) -> tuple[int, int] | None:
    match = re.match(r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?", text.strip(), re.I)
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if (match.group(3) or "").lower() == "pm" and hour < 12:
        hour += 12
    return hour, minute


def follow_up(question: str, data: dict[str, Any], turn: int) -> list[dict[str, Any]]:
    """The write call that the lookup of a two-step change (its result ``data``) leads to."""
    if (match := _REPLY.search(question)) and data.get("kind") == "inbox" and data["messages"]:
        body = match.group(2).strip().rstrip(".")
        return [_call("reply_email", {"message_id": data["messages"][0]["id"], "body": body}, turn)]
    if (match := _DONE_TASK.search(question)) and data.get("kind") == "tasks":
        wanted = match.group(1).lower()
        for task in data["tasks"]:
            if wanted in task["title"].lower() and not task["done"]:
                return [_call("complete_task", {"task_id": task["id"]}, turn)]
    if (match := _DELETE_EVENT.search(question)) and data.get("kind") == "agenda":
        wanted = _clock(match.group(2))
        for event in data["events"]:
            start = event.get("start") or ""
            if (
                wanted
                and not event["all_day"]
                and start[11:16] == f"{wanted[0]:02d}:{wanted[1]:02d}"
            ):
                return [_call("delete_event", {"event_id": event["id"]}, turn)]
    return []


@dataclass
class Reply:
    """What the model says next: text, or a tool call (or both)."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return f"“{text if len(text) <= limit else text[: limit - 1] + '…'}”"


def _user_name(said: Sequence[str]) -> str | None:
    for text in reversed(said):
        match = _NAME.search(text)
        if match:
            return match.group(1)
    return None


def _timezone(said: Sequence[str]) -> str:
    """The place or zone the latest message names, as written ("Tokyo"), or ""."""
    for text in reversed(said):
        for match in _TIMEZONE.finditer(text):
            if match[2]:
                if resolve_timezone(match[2]):
                    return match[2]
                continue
            words = match[1].rstrip(".'\u2019-").split()
            for size in range(len(words), 0, -1):  # "New York right now" -> "New York"
                candidate = " ".join(words[:size]).rstrip(".'\u2019-")
                if resolve_timezone(candidate):
                    return candidate
    return ""


def _when(question: str, default: str, near: re.Pattern | None = None) -> str:
    """The range phrase that follows ``near`` (e.g. "tasks ... this week"), else any."""
    keyword = near.search(question) if near else None
    match = (keyword and _WHEN.search(question, keyword.end())) or _WHEN.search(question)
    return match.group(1).lower() if match else default


def _mail_query(question: str) -> str:
    terms = ["in:inbox"]
    if re.search(r"\bunread\b|\bnew\b", question, re.I):
        terms.append("is:unread")
    if sender := _MAIL_FROM.search(question):
        terms.append(f"from:{sender.group(1)}")
    if re.search(r"\bthis week\b", question, re.I):
        terms.append("newer_than:7d")
    elif re.search(r"\btoday\b", question, re.I):
        terms.append("newer_than:1d")
    return " ".join(terms)


def _minutes(question: str) -> int:
    match = _ASKS_FREE.search(question)
    number = match and (match.group(1) or match.group(3))
    unit = ((match and (match.group(2) or match.group(4))) or "min").lower()
    return int(number) * (60 if unit.startswith("h") else 1) if number else 30


def workspace_calls(question: str, tool_names: Sequence[str], turn: int) -> list[dict[str, Any]]:
    """The Workspace tool calls a question asks for (several run in one step)."""
    wanted: list[tuple[str, dict[str, Any]]] = []
    if _ASKS_FREE.search(question):
        args = {"minutes": _minutes(question), "when": _when(question, "this week")}
        wanted.append(("find_free_time", args))
    elif _ASKS_CALENDAR.search(question):
        wanted.append(("calendar_events", {"when": _when(question, "today", _ASKS_CALENDAR)}))
    if _ASKS_MAIL.search(question):
        wanted.append(("search_email", {"query": _mail_query(question), "limit": 20}))
    if _ASKS_TASKS.search(question):
        wanted.append(("list_tasks", {"due": _when(question, "", _ASKS_TASKS)}))
    return [
        {"name": name, "args": args, "id": f"call_{name}_{turn}"}
        for name, args in wanted
        if name in tool_names
    ]


def _results(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    """The tool results of the model's last step (one per tool call, in order)."""
    found: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        found.append(message)
    return found[::-1]


def _answered(messages: Sequence[BaseMessage], tool: str) -> bool:
    """Whether this turn already called ``tool`` (a two-step change runs its write once)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return False
        if isinstance(message, ToolMessage) and message.name == tool:
            return True
    return False


def describe(result: ToolMessage) -> str:
    """One paragraph about a tool result, from its structured part: counts and times,
    never external text (a title could carry Markdown, a link, instructions)."""
    data = tool_data(result)
    if data is None:
        text = message_text(result)
        if text.startswith("Unknown timezone"):
            return f"I could not look that up. {text}"
        return f"It is **{text}**."
    kind = data["kind"]
    if kind == "notice":
        return data["text"]
    if kind == "action":
        if data["status"] == "done":
            return f"Done: {data['text']}"
        if data["status"] == "rejected":
            return f"OK, I did not do it ({data.get('reason') or 'you said no'})."
        return f"That did not work. {data['text']}"
    if kind == "agenda":
        events = data["events"]
        if not events:
            return f"Nothing on your calendar for **{data['title']}**."
        return (
            f"You have **{len(events)} event(s)** for **{data['title']}**; the first starts "
            f"{events[0]['when']}."
        )
    if kind == "slots":
        slots = data["slots"]
        if not slots:
            return f"I found no free {data['minutes']}-minute slot for **{data['title']}**."
        return f"I found **{len(slots)} free slot(s)** of {data['minutes']} minutes or more; the first is {slots[0]['when']}."
    if kind in ("inbox", "thread"):
        messages = data["messages"]
        unread = sum(1 for m in messages if m["unread"])
        return f"I found **{len(messages)} message(s)** ({unread} unread)."
    if kind == "tasks":
        open_tasks = [t for t in data["tasks"] if not t["done"]]
        return f"You have **{len(open_tasks)} open task(s)**" + (
            f" due by {data['title']}." if data["title"] != "all" else "."
        )
    return "Here is what I found."


def plan_reply(messages: Sequence[BaseMessage], tool_names: Sequence[str] = ()) -> Reply:
    """The deterministic reply to a conversation (the whole brain of the model)."""
    results = _results(messages)
    said = [message_text(m) for m in messages if isinstance(m, HumanMessage)]
    if results:
        if said and len(results) == 1 and (data := tool_data(results[0])) is not None:
            calls = [c for c in follow_up(said[-1], data, len(messages)) if c["name"] in tool_names]
            if calls and not _answered(messages, calls[0]["name"]):
                return Reply(tool_calls=calls)
        return Reply(" ".join(describe(result) for result in results))

    if not said:
        return Reply(f"Hello! I am the **{DISPLAY_NAME}**. Ask me anything.")
    question, earlier = said[-1], said[:-1]
    name = _user_name(said)

    calls = [
        c for c in action_calls(question, tool_names, len(messages)) if c["name"] in tool_names
    ]
    calls = calls or workspace_calls(question, tool_names, len(messages))
    if calls:
        return Reply(tool_calls=calls)
    if _ASKS_TIME.search(question) and DATETIME_TOOL in tool_names:
        call_id = f"call_{DATETIME_TOOL}_{len(messages)}"
        args = {"timezone": _timezone(said)}
        return Reply(tool_calls=[{"name": DATETIME_TOOL, "args": args, "id": call_id}])
    if _ASKS_NAME.search(question):
        if name:
            return Reply(f"You told me earlier that your name is **{name}**.")
        return Reply("You have not told me your name yet. Say “My name is …” and I will remember.")
    if _NAME.search(question) and name:
        return Reply(
            f"Nice to meet you, **{name}**! I will remember your name for the rest of "
            "this conversation."
        )
    if _ASKS_RECALL.search(question):
        if not earlier:
            return Reply("This is the first thing you have told me in this conversation.")
        quotes = ", then ".join(_quote(text) for text in earlier[-3:])
        end = "" if quotes[-2:-1] in {".", "!", "?", "…"} else "."  # no “Hello.”.
        return Reply(f"You told me earlier that {quotes}{end}")

    greeting = f"Hello, {name}! " if name and _GREETING.search(question) else ""
    if not greeting and _GREETING.search(question):
        greeting = "Hello! "
    recall = f"Earlier you told me {_quote(earlier[-1], 60)}. " if earlier else ""
    return Reply(
        f"{greeting}You said {_quote(question)}. {recall}I am the **{DISPLAY_NAME}**: "
        "I work without a network, remember this conversation and can tell you the "
        "date and time (ask “what time is it?”). Set `AGENTICPAL_MODEL` to use a real model."
    )


def words(text: str) -> list[str]:
    """``"Hello, Ada!"`` -> ``["Hello, ", "Ada!"]``: the chunks the model streams."""
    return re.findall(r"\s*\S+\s*", text) if text.strip() else []


class OfflineChatModel(BaseChatModel):
    """A deterministic, network-free chat model that streams word by word and calls tools."""

    display_name: ClassVar[str] = DISPLAY_NAME
    word_delay: float = 0.0
    """Seconds to wait between streamed words (0 streams as fast as possible)."""

    @property
    def _llm_type(self) -> str:
        return "agenticpal-offline"

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _plan(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Reply:
        names = [t["function"]["name"] for t in kwargs.get("tools") or ()]
        return plan_reply(messages, names)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._plan(messages, kwargs)
        message = AIMessage(content=reply.text, tool_calls=reply.tool_calls)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _chunks(self, reply: Reply) -> Iterator[ChatGenerationChunk]:
        for word in words(reply.text):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
        for index, call in enumerate(reply.tool_calls):
            chunk = {
                "name": call["name"],
                "args": json.dumps(call["args"]),
                "id": call["id"],
                "index": index,
            }
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # The base class reports each chunk to the callbacks (LangGraph's stream).
        yield from self._chunks(self._plan(messages, kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for n, chunk in enumerate(self._chunks(self._plan(messages, kwargs))):
            if n and self.word_delay:
                await asyncio.sleep(self.word_delay)
            yield chunk
