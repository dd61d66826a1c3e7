"""A Gmail payload to text: part choice, charsets, HTML, quoted replies, truncation, and
malformed or huge input (bad base64, no types, deep nesting, 8 MB bodies)."""

from __future__ import annotations

import time

import pytest

from tests.google_bodies import attachment, b64, multipart, part
from workspace.google.mail import (
    HTML_PARSE_LIMIT,
    MAX_DEPTH,
    Attachment,
    MessageText,
    decode_header_value,
    headers,
    message_text,
)


def text_of(payload, **kwargs) -> str:
    return message_text(payload, **kwargs).text


def test_plain_text_is_preferred_over_html():
    payload = multipart(
        "multipart/alternative", part("text/html", "<p>HTML</p>"), part("text/plain", "Plain")
    )
    assert text_of(payload) == "Plain"


def test_html_only_mail_becomes_readable_text():
    html = """<!DOCTYPE html><html><head><title>Newsletter</title>
      <style>p { color: red }</style><script>alert("x")</script></head>
      <body><!-- tracking --><h1>Spring   sale</h1>
      <p>Hello&nbsp;Alice,<br>our <b>best</b>
         prices &amp; offers are <a href="https://shop.example/x">on the site</a>.</p>
      <img src="https://tracker.example/pixel.gif"><table><tr><td>A</td><td>B</td></tr></table>
      <ul><li>One</li><li>Two</li></ul><div>x</div>tail<br><br>after</body></html>"""
    payload = multipart(
        "multipart/related", part("text/html", html), attachment("logo.png", "image/png", 512)
    )
    result = message_text(payload)
    assert result.text == (
        "Spring sale\n\nHello Alice,\nour best prices & offers are on the site.\n\n"
        "A B\n\nOne\nTwo\n\nx\ntail\n\nafter"
    )
    assert result.attachments == (Attachment("logo.png", "image/png", 512),)


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("iso-8859-1", "Grüße, café"),
        ("windows-1252", "\u201cquoted\u201d \u2013 \u20ac5"),
        ("shift_jis", "こんにちは"),
    ],
)
def test_the_parts_charset_is_used(charset, text):
    assert text_of(part("text/plain", text, charset=charset)) == text


@pytest.mark.parametrize("charset", ["x-no-such-charset", "base64"])
def test_unknown_or_non_text_charsets_fall_back_to_utf8(charset):
    payload = part("text/plain", "naïve ☕".encode(), charset=charset)
    assert text_of(payload) == "naïve ☕"


def test_invalid_utf8_is_replaced_not_raised():
    assert text_of(part("text/plain", b"caf\xe9 ok")) == "caf\ufffd ok"


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"mimeType": "text/plain"},
        {"mimeType": "text/plain", "body": {"size": 0}},
        {"mimeType": "text/plain", "body": {"data": "!!!not base64!"}},
        {"mimeType": "text/plain", "body": {"data": "é-non-ascii"}},
        {"mimeType": "text/plain", "body": "nope"},
        {"mimeType": "multipart/mixed", "parts": ["junk", 7, None]},
        {"mimeType": "multipart/mixed", "parts": []},
        "not a payload",
    ],
)
def test_malformed_payloads_give_empty_text(payload):
    assert message_text(payload) == MessageText("", False, ())


def test_parts_without_a_mime_type_are_plain_text_by_default():
    payload = {"parts": [{"body": {"data": b64("untyped text")}}]}
    assert text_of(payload) == "untyped text"


def test_deep_nesting_is_bounded():
    shallow = deep = part("text/plain", "deep")
    for _ in range(MAX_DEPTH + 5):
        deep = multipart("multipart/mixed", deep)
    for _ in range(3):
        shallow = multipart("multipart/mixed", shallow)
    assert text_of(multipart("multipart/mixed", deep, part("text/plain", "top"))) == "top"
    assert text_of(shallow) == "deep"


def test_attachments_are_listed_not_read():
    payload = multipart(
        "multipart/mixed",
        part("text/plain", "See attached."),
        attachment("report.xlsx", "application/vnd.ms-excel", 9000),
        {"mimeType": "image/png", "body": {"attachmentId": "ANGj-inline", "size": "big"}},
    )
    result = message_text(payload)
    assert result.text == "See attached."
    assert result.attachments == (
        Attachment("report.xlsx", "application/vnd.ms-excel", 9000),
        Attachment("", "image/png", 0),
    )


@pytest.mark.parametrize(
    "reply",
    [
        "Sounds good.\n\nOn Tue, 3 Mar 2026 at 10:15, Bob <bob@example.com> wrote:\n> Lunch?\n> Bob",
        "Sounds good.\n\nOn Tue, Mar 3, 2026 at 10:15 AM Bob Example <\nbob@example.com> wrote:\n\nLunch?",
        "Sounds good.\n\n-----Original Message-----\nFrom: Bob\nSent: Tuesday\n\nLunch?",
        "> Lunch?\nSounds good.\n>> earlier",
    ],
)
def test_quoted_replies_are_trimmed(reply):
    assert text_of(part("text/plain", reply)) == "Sounds good."


def test_a_message_that_is_all_quote_is_kept():
    assert text_of(part("text/plain", "> only quoted")) == "> only quoted"


def test_long_bodies_are_truncated_with_a_note():
    result = message_text(part("text/plain", "x" * 150), limit=100)
    assert result.truncated
    assert result.text == "x" * 100 + "\n[… truncated: 50 more characters]"


def test_an_8_mb_body_is_truncated_fast():
    body = ("A long line of text in a very large message. " * 20 + "\n") * 9_000
    assert len(body) > 8_000_000
    started = time.monotonic()
    result = message_text(part("text/plain", body))
    assert time.monotonic() - started < 1
    assert result.truncated and result.text.startswith("A long line")
    assert result.text.endswith(f"[… truncated: {len(body.strip()) - 4000} more characters]")


def test_an_8_mb_html_body_is_parsed_only_in_part():
    html = "<p>Hello <b>there</b></p>\n" * 320_000
    started = time.monotonic()
    result = message_text(part("text/html", html))
    assert time.monotonic() - started < 1
    assert result.truncated and result.text.startswith("Hello there\n\nHello there")
    assert int(result.text.rsplit(": ", 1)[1].split()[0]) > len(html) - HTML_PARSE_LIMIT


def test_headers_are_found_by_any_case_and_decoded():
    payload = {
        "headers": [
            {"name": "SUBJECT", "value": "=?utf-8?q?Caf=C3=A9?="},
            {"name": "Received", "value": "first"},
            {"name": "received", "value": "second"},
            {"name": "X-Odd"},
            "junk",
        ]
    }
    assert headers(payload) == {"subject": "Café", "received": "first", "x-odd": ""}


def test_a_broken_encoded_word_is_kept_as_it_is():
    assert decode_header_value("=?no-such-charset?q?abc?=") == "=?no-such-charset?q?abc?="
    assert decode_header_value("Plain =? text") == "Plain =? text"
