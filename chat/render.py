"""HTML for people: assistant replies (Markdown, sanitised) and Workspace tool results.

Replies are rendered with ``markdown`` and cleaned by ``nh3`` (an allow-list
sanitiser, no images), so a reply can never inject HTML, script or an outside fetch. Tool results are rendered by
one template (``chat/_tool_result.html``, auto-escaped) for the page, the no-JS page
and the live stream alike (the ``tool`` event carries it as ``html``); the terminal
chat uses its plain-text twin (``chat/_tool_result.txt``).
"""

from __future__ import annotations

import re
from typing import Any

import markdown
import nh3
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

MARKDOWN_EXTENSIONS = ["fenced_code", "sane_lists", "nl2br"]
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 but \t \n
# No images: an image URL in a reply (say, one an email talked the model into writing)
# would be fetched by the browser and could carry data out. The CSP blocks them too.
SAFE_TAGS = nh3.ALLOWED_TAGS - {"img"}


def render_markdown(text: str) -> SafeString:
    """Markdown -> HTML with only harmless tags and attributes left (links get rel=noopener)."""
    html = markdown.markdown(text, extensions=MARKDOWN_EXTENSIONS, output_format="html")
    return mark_safe(nh3.clean(html, tags=SAFE_TAGS, link_rel="noopener noreferrer nofollow"))


def render_tool(data: dict[str, Any] | None) -> SafeString | None:
    """A tool result's structured part as HTML (None when it has none)."""
    if not data:
        return None
    return mark_safe(render_to_string("chat/_tool_result.html", {"data": data}).strip())


def render_tool_text(data: dict[str, Any]) -> str:
    """The same for a terminal (``manage.py chat``): plain text lines, with the control
    characters of external text removed (an email must not drive the terminal)."""
    text = render_to_string("chat/_tool_result.txt", {"data": data}).rstrip()
    return CONTROL_CHARACTERS.sub("", text)


def render_approval(
    thread_id: str, interrupt_id: str, card: dict[str, Any] | None, request: Any = None
) -> SafeString | None:
    """An approval card (``chat/_approval.html``): what will happen, Approve / Edit /
    Reject, as a form that works without JavaScript (``app.js`` sends it as a frame).
    With ``request`` (the page) the form carries its CSRF token; ``app.js`` fills it in
    for cards that arrive as events."""
    if not isinstance(card, dict):
        return None
    from chat.approvals import form_fields

    context = {"thread_id": thread_id, "interrupt_id": interrupt_id, "card": card,
               "fields": form_fields(card)}  # fmt: skip
    html = render_to_string("chat/_approval.html", context, request=request)
    return mark_safe(html.strip())
