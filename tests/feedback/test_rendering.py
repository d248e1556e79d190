"""Untrusted text is rendered through an allowlist: nothing executable survives (../shared/SECURITY.md)."""

from html.parser import HTMLParser

import pytest

from feedback.rendering import markdown_to_safe_html

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)><circle r=1 /></svg>",
    '<div hx-get="/api/v1/projects/" hx-trigger="load">x</div>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![img](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=https://example.org></iframe>",
    "<style>body{display:none}</style>",
    '<form action="/accounts/logout/" method="post"><button>x</button></form>',
    "<p onclick=alert(1)>hi</p>",
    '[x](https://ok.example/ "title" onmouseover=alert(1))',
]


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.seen.append((tag, dict(attrs)))


SAFE_TAGS = {"p", "a", "code", "pre", "em", "strong", "br"}
SAFE_ATTRS = {"href", "title", "rel", "class"}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_renders_inert(payload):
    parser = _Elements()
    parser.feed(markdown_to_safe_html(payload))
    for tag, attrs in parser.seen:
        assert tag in SAFE_TAGS, (payload, tag)
        assert set(attrs) <= SAFE_ATTRS, (payload, attrs)
        href = (attrs.get("href") or "https:").strip().lower()
        assert href.startswith(("https:", "http:", "mailto:")), (payload, href)


def test_markdown_and_code_still_render():
    html = markdown_to_safe_html(
        "**Bold**, `x < y` and\n\n```python\nprint('<b>')\n```\n\n[docs](https://docs.example.org)"
    )
    assert "<strong>Bold</strong>" in html
    assert "<code>x &lt; y</code>" in html
    assert "<pre><code class=\"language-python\">print('&lt;b&gt;')" in html
    assert '<a href="https://docs.example.org" rel="noopener noreferrer nofollow">docs</a>' in html
