"""The AgenticPal offline demo model: a deterministic chat model that needs no network.

It is the default when ``AGENTICPAL_MODEL`` is unset, so a fresh checkout has a working
assistant, and it makes the product's moving parts visible without a provider key:

* it is a real LangChain ``BaseChatModel`` and streams its reply word by word, so
  LangGraph's ``stream_mode="messages"`` and every transport see real token streams;
* it answers from the conversation (it recalls the user's name and earlier messages:
  "You told me earlier that ..."), so multi-turn context from checkpoints is visible;
* it calls a real tool: asked for the time or date, it emits a ``current_datetime``
  tool call (with a timezone if one was mentioned) and then answers from the result.

It is written here rather than taken from ``langchain_core``'s fake models because
those replay fixed responses; this one has to react to the conversation and to tools.
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

from chat.messages import message_text
from chat.tools import resolve_timezone

DISPLAY_NAME = "AgenticPal offline demo model"
DATETIME_TOOL = "current_datetime"

_NAME = re.compile(r"(?i:\bmy name is|\bi am|\bi'm|\bcall me)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)")
_TIMEZONE = re.compile(r"\b(UTC|[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z0-9_+-]+){1,2})\b")
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
    for text in reversed(said):
        for candidate in _TIMEZONE.findall(text):
            if resolve_timezone(candidate):
                return candidate
    return ""


def plan_reply(messages: Sequence[BaseMessage], tool_names: Sequence[str] = ()) -> Reply:
    """The deterministic reply to a conversation (the whole brain of the model)."""
    last = messages[-1] if messages else None
    if isinstance(last, ToolMessage):
        result = message_text(last)
        if result.startswith("Unknown timezone"):
            return Reply(f"I could not look that up. {result}")
        return Reply(f"It is **{result}**.")

    said = [message_text(m) for m in messages if isinstance(m, HumanMessage)]
    if not said:
        return Reply(f"Hello! I am the **{DISPLAY_NAME}**. Ask me anything.")
    question, earlier = said[-1], said[:-1]
    name = _user_name(said)

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
        return Reply(f"You told me earlier that {quotes}.")

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
