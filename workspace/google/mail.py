"""A Gmail message's ``payload`` (its MIME tree as JSON) turned into text to read, and
outgoing mail built as MIME (:func:`build_message`, :func:`encode_raw` for Gmail's ``raw``).

The tree is walked depth-first (at most ``MAX_DEPTH`` levels): ``text/plain`` parts are
preferred, else ``text/html`` converted with BeautifulSoup (scripts, styles and the head
dropped, link text kept, nothing fetched). Bodies are base64url-decoded and decoded with
their part's charset (utf-8 with replacement when unknown). Quoted replies are trimmed
and long bodies cut to ``limit`` characters with a note saying how much was left out.
Attachments are listed (name, type, size), never downloaded.

Its guarantee: any input, however malformed or large (an 8 MB body, bad base64, parts
without a type), gives a :class:`MessageText` in time linear in its size, never an error.
Outgoing mail is built by the standard library (``email.policy.SMTP``): non-ASCII names
and subjects are RFC 2047 encoded, and a header cannot carry a line break.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any

from bs4 import BeautifulSoup, NavigableString, PageElement, Tag

from workspace.google.client import dict_at, dicts_at, str_at

DEFAULT_LIMIT = 4000  # characters of text shown
MAX_DEPTH = 32  # multipart nesting followed; deeper parts are ignored
HTML_PARSE_LIMIT = 60_000  # HTML characters parsed (~0.3 s at worst); the rest is cut
DROPPED_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template"})
BREAKS = {  # line breaks around a block element's content: 2 leaves a blank line
    **dict.fromkeys(["div", "li", "tr", "dt", "dd"], 1),
    **dict.fromkeys(["p", "table", "ul", "ol", "blockquote", "pre", "hr"], 2),
    **dict.fromkeys(["h1", "h2", "h3", "h4", "h5", "h6"], 2),
}
CELL_TAGS = frozenset({"td", "th"})
ORIGINAL_MESSAGE = re.compile(r"-{2,}\s*original message\s*-{2,}", re.IGNORECASE)
OUTGOING = SMTP.clone(cte_type="7bit")  # CRLF; bodies quoted-printable or base64, never 8bit
REPLY_PREFIX = re.compile(r"\s*re\s*:", re.IGNORECASE)
FORWARD_PREFIX = re.compile(r"\s*(fwd?|tr)\s*:", re.IGNORECASE)
SPACES = re.compile(r"\s+")
BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str
    size: int


@dataclass(frozen=True)
class MessageText:
    text: str
    truncated: bool
    attachments: tuple[Attachment, ...]


def decode_header_value(value: str) -> str:
    """A header with RFC 2047 encoded-words (``=?utf-8?q?...?=``) decoded."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return value


def headers(part: Mapping[str, Any] | None) -> dict[str, str]:
    """A part's headers by lower-case name (the first of repeated ones), decoded."""
    found: dict[str, str] = {}
    for header in dicts_at(part, "headers"):
        found.setdefault(
            str_at(header, "name").lower(), decode_header_value(str_at(header, "value"))
        )
    return found


def message_text(payload: Mapping[str, Any] | None, *, limit: int = DEFAULT_LIMIT) -> MessageText:
    """The readable text of a message's ``payload``, cut to ``limit`` characters."""
    leaves = list(_leaves(payload))
    attachments = tuple(_attachment(part) for part in leaves if _is_attachment(part))
    bodies = [part for part in leaves if not _is_attachment(part)]
    plain = [text for part in bodies if _mime(part) == "text/plain" and (text := _decoded(part))]
    text, unparsed = ("\n\n".join(plain), 0) if plain else _html_text(bodies)
    text = _without_quotes(text)
    hidden = max(0, len(text) - limit) + unparsed
    if hidden:
        text = f"{text[:limit].rstrip()}\n[… truncated: {hidden} more characters]"
    return MessageText(text, bool(hidden), attachments)


def _html_text(bodies: list[Mapping[str, Any]]) -> tuple[str, int]:
    """The HTML parts as text, and how many characters of HTML were left unparsed."""
    html = "\n".join(_decoded(part) for part in bodies if _mime(part) == "text/html")
    return _html_to_text(html[:HTML_PARSE_LIMIT]), max(0, len(html) - HTML_PARSE_LIMIT)


def _leaves(part: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    if not isinstance(part, Mapping):
        return
    children = part.get("parts")
    if not isinstance(children, list) or not children:
        yield part
    elif depth < MAX_DEPTH:
        for child in children:
            yield from _leaves(child, depth + 1)


def _mime(part: Mapping[str, Any]) -> str:
    return (str_at(part, "mimeType") or "text/plain").lower()  # MIME's default type


def _is_attachment(part: Mapping[str, Any]) -> bool:
    return bool(str_at(part, "filename")) or bool(str_at(dict_at(part, "body"), "attachmentId"))


def _attachment(part: Mapping[str, Any]) -> Attachment:
    size = dict_at(part, "body").get("size")
    return Attachment(
        filename=str_at(part, "filename"),
        mime_type=_mime(part),
        size=size if isinstance(size, int) else 0,
    )


def _charset(part: Mapping[str, Any]) -> str:
    content_type = email.message.Message()
    content_type["Content-Type"] = headers(part).get("content-type", "")
    return content_type.get_content_charset("utf-8")


def _decoded(part: Mapping[str, Any]) -> str:
    data = str_at(dict_at(part, "body"), "data")
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return ""
    try:
        return raw.decode(_charset(part), errors="replace")
    except LookupError:  # unknown, or not a text encoding (e.g. "base64")
        return raw.decode("utf-8", errors="replace")


def _html_to_text(markup: str) -> str:
    """The text of some HTML, in one walk of the tree (bs4's tree edits cost O(siblings)).

    Block elements start and end lines (paragraphs leave a blank line), ``<br>`` adds a
    line break, table cells are separated by a space; whitespace runs become one space.
    """
    chunks: list[str] = []
    owed = 0  # line breaks due before the next text
    stack: list[PageElement | int] = [BeautifulSoup(markup, "html.parser")]
    while stack:
        node = stack.pop()
        if isinstance(node, int):  # the end of a block
            owed = max(owed, node)
        elif type(node) is NavigableString:  # not comments, doctypes, CDATA
            text = SPACES.sub(" ", node)
            if text.strip():
                chunks.append("\n" * owed if chunks else "")
                owed = 0
            if text.strip() or not owed:
                chunks.append(text)
        elif isinstance(node, Tag) and node.name not in DROPPED_TAGS:
            if node.name == "br":
                owed += 1
            elif breaks := BREAKS.get(node.name, 0):
                owed = max(owed, breaks)
                stack.append(breaks)
            elif node.name in CELL_TAGS:
                stack.append(NavigableString(" "))
            stack.extend(reversed(node.contents))
    lines = (" ".join(line.split()) for line in "".join(chunks).split("\n"))
    return BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _starts_quote(line: str, next_line: str) -> bool:
    """An "On <date>, <name> wrote:" attribution (maybe wrapped) or Outlook's separator."""
    if ORIGINAL_MESSAGE.fullmatch(line):
        return True
    return line.startswith("On ") and (line.endswith("wrote:") or next_line.endswith("wrote:"))


def _without_quotes(text: str) -> str:
    """The text before the quoted conversation; ``>`` lines dropped (kept if all quoted)."""
    lines = text.splitlines()
    stripped = [line.strip() for line in lines]
    kept: list[str] = []
    for index, line in enumerate(stripped):
        following = stripped[index + 1] if index + 1 < len(stripped) else ""
        if _starts_quote(line, following):
            break
        if not line.startswith(">"):
            kept.append(lines[index])
    return "\n".join(kept).strip() or text.strip()


# --- Outgoing mail -----------------------------------------------------------------------


def build_message(
    *,
    sender: str,
    to: Iterable[str],
    cc: Iterable[str] = (),
    bcc: Iterable[str] = (),
    subject: str,
    body: str,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
) -> EmailMessage:
    """A text/plain mail; ``message_id`` (``<...>``) is generated when not given.

    Raises ValueError for a recipient that is not an email address or a header with a
    line break in it.
    """
    message = EmailMessage(policy=OUTGOING)
    message["From"] = sender
    for name, addresses in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        if found := [address.strip() for address in addresses if address.strip()]:
            message[name] = ", ".join(found)
            _check_addresses(message, name)
    if not any(message[name] for name in ("To", "Cc", "Bcc")):
        raise ValueError("A mail needs at least one recipient.")
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain=_domain(sender))
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    message.set_content(body)
    return message


def reply_subject(subject: str) -> str:
    """``Re: <subject>``, unless it already starts with ``Re:`` (any case)."""
    return subject if REPLY_PREFIX.match(subject) else f"Re: {subject}".rstrip()


def forward_subject(subject: str) -> str:
    """``Fwd: <subject>``, unless it already starts with ``Fwd:``/``Fw:`` (any case)."""
    return subject if FORWARD_PREFIX.match(subject) else f"Fwd: {subject}".rstrip()


def encode_raw(message: EmailMessage) -> str:
    """The message as Gmail's ``raw``: its RFC 5322 bytes (CRLF), base64url."""
    return base64.urlsafe_b64encode(message.as_bytes(policy=OUTGOING)).decode()


def _check_addresses(message: EmailMessage, name: str) -> None:
    header = message[name]
    defects = getattr(header, "defects", ())
    addresses = getattr(header, "addresses", ())
    bad = [str(a) for a in addresses if not a.username or not a.domain] or defects
    if bad or not addresses:
        raise ValueError(f"Not an email address in {name}: {header}")


def _domain(address: str) -> str:
    domain = address.rpartition("@")[2].strip().rstrip(">").strip()
    return domain if domain and "@" in address else "localhost"
