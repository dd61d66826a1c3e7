"""The chat pages without JavaScript: deleting a chat says so on the chat list, an empty
(or whitespace-only) message gets a hint and is not queued, a stopped reply is marked
"Stopped", a new chat is marked untitled in the thread list (the page names it from its
first message) and the home page's wording holds wherever the list is (left or above)."""

from __future__ import annotations

import pytest
from django.test import AsyncClient
from langchain_core.messages import HumanMessage

from chat import history, pending, threads
from chat.graph import build_graph, get_checkpointer, run_config, settle_turn
from chat.offline_model import OfflineChatModel
from chat.views import EMPTY_MESSAGE_HINT
from tests.chat_support import signed_in_client

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "ada@example.com"


async def opened(client: AsyncClient, thread_id: str) -> str:
    """The thread's page (opening a new id makes it the user's chat)."""
    response = await client.get(f"/chat/{thread_id}/")
    assert response.status_code == 200
    return response.content.decode()


async def test_deleting_a_chat_says_so_on_the_chat_list():
    client = await signed_in_client(EMAIL)
    await opened(client, "pages-delete")
    assert await threads.athreads_for(EMAIL) == ["pages-delete"]

    response = await client.post("/chat/pages-delete/delete", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"
    page = response.content.decode()
    assert '<ul class="messages">' in page and "Chat deleted." in page
    assert "No chats yet." in page
    assert await threads.athreads_for(EMAIL) == []

    again = (await client.get("/")).content.decode()
    assert "Chat deleted." not in again  # said once


@pytest.mark.parametrize("typed", ["", "   ", " \n\t "])
async def test_an_empty_message_gets_a_hint_and_is_not_sent(typed):
    client = await signed_in_client(EMAIL)
    await opened(client, "pages-empty")

    response = await client.post("/chat/pages-empty/send", {"message": typed}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/chat/pages-empty/"
    assert EMPTY_MESSAGE_HINT in response.content.decode()
    assert not await pending.ahas_pending("pages-empty")
    assert await history.get_history("pages-empty") == []


async def test_a_stopped_reply_is_marked_stopped():
    client = await signed_in_client(EMAIL)
    await opened(client, "pages-stopped")
    graph = build_graph(model=OfflineChatModel(), checkpointer=await get_checkpointer())
    config = run_config("pages-stopped", user_email=EMAIL)
    await graph.aupdate_state(
        config, {"messages": [HumanMessage("tell me a story", id="m1")]}, as_node="agent"
    )
    await settle_turn(graph, config, "m1", stopped_text="Once upon a **time**")

    page = await opened(client, "pages-stopped")
    assert '<li class="msg assistant stopped">' in page
    assert "<strong>time</strong>" in page  # the part said, rendered like any reply
    assert '<span class="stopped-mark"' in page and ">Stopped</span>" in page


async def test_a_new_chat_is_untitled_until_its_first_message():
    client = await signed_in_client(EMAIL)
    page = await opened(client, "pages-title")
    assert 'data-thread-id="pages-title" data-status="idle" data-untitled' in page
    assert '<span class="thread-title">New chat</span>' in page
    assert 'id="composer-hint"' in page  # where the page's script says what is wrong

    graph = build_graph(model=OfflineChatModel(), checkpointer=await get_checkpointer())
    config = run_config("pages-title", user_email=EMAIL)
    await graph.aupdate_state(
        config, {"messages": [HumanMessage("Plan my week", id="m1")]}, as_node="agent"
    )
    page = await opened(client, "pages-title")
    assert "data-untitled" not in page
    assert '<span class="thread-title">Plan my week</span>' in page


async def test_the_home_page_does_not_say_where_the_list_is():
    """The list is on the left on a wide screen and above the chat on a phone."""
    client = await signed_in_client(EMAIL)
    page = (await client.get("/")).content.decode()
    assert "Start a new chat" in page
    assert "on the left" not in page
    assert 'id="thread-drawer"' in page and "<summary>Your chats" in page


async def test_a_new_chat_page_does_not_read_back_a_history(monkeypatch):
    """The claim just found no checkpoints: the page renders without reading the history
    and approvals back (the chat list beside it still reads each chat's status); a chat
    that has them reads them as always."""
    reads = []
    real_history, real_approvals = history.get_history, history.get_approvals

    async def counted_history(thread_id):
        reads.append(("history", thread_id))
        return await real_history(thread_id)

    async def counted_approvals(thread_id):
        reads.append(("approvals", thread_id))
        return await real_approvals(thread_id)

    monkeypatch.setattr(history, "get_history", counted_history)
    monkeypatch.setattr(history, "get_approvals", counted_approvals)
    client = await signed_in_client(EMAIL)
    page = await opened(client, "pages-fresh")
    assert 'data-thread-id="pages-fresh"' in page
    assert reads == [("approvals", "pages-fresh")]  # the chat list's status, not the page
    graph = build_graph(model=OfflineChatModel(), checkpointer=await get_checkpointer())
    config = run_config("pages-fresh", user_email=EMAIL)
    await graph.aupdate_state(
        config, {"messages": [HumanMessage("Plan my week", id="m1")]}, as_node="agent"
    )
    page = await opened(client, "pages-fresh")
    assert "Plan my week" in page
    assert reads[1:].count(("history", "pages-fresh")) == 1
    assert reads[1:].count(("approvals", "pages-fresh")) == 2  # the page's and the list's
