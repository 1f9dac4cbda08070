"""Escaping user-controlled text (labels, file names, model names, messages quoting files).

Streamlit renders markdown in headers, captions and messages, and plotly renders a subset of
HTML in chart text: a class named ``<img src=http://…>`` or ``[x](http://…)`` must show as
those characters, never become an image, a link or a request. Everything a user controls
goes through ``escape_markdown`` before markdown and ``escape_html`` before HTML/plotly.
"""
from __future__ import annotations

import html
import re
import string

_MD_SPECIAL = frozenset(string.punctuation)  # CommonMark: any ASCII punctuation may be escaped
_MD_TOKEN = re.compile(r"\\(.)|\*\*", re.DOTALL)
_ZWSP = "\u200b"
_AUTOLINK = re.compile(r"(://|(?i:www)(?=\.)|@)")
"""GFM links bare URLs, www. names and e-mail addresses *after* escapes are decoded (checked in
Chromium: ``http\\:\\/\\/…`` still became a link), so a zero-width space goes after ``:``,
``www`` and ``@``: the text reads the same and is no longer a link."""


def escape_markdown(text: object) -> str:
    """``text`` as literal characters in Streamlit markdown (one line; no links, images, HTML,
    emphasis, LaTeX, colour or emoji shortcodes, autolinked URLs)."""
    flat = " ".join(str(text).split())  # a newline could start a heading or a list
    flat = _AUTOLINK.sub(lambda m: m.group(1)[0] + _ZWSP + m.group(1)[1:] if m.group(1) == "://"
                         else m.group(1) + _ZWSP, flat)
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in flat)


def escape_html(text: object) -> str:
    """``text`` as literal characters in HTML or plotly labels (quotes included)."""
    return html.escape(str(text), quote=True)


def markdown_to_text(markdown: str) -> str:
    """Plain text of the simple markdown our captions use: ``**`` dropped, escapes undone."""
    text = _MD_TOKEN.sub(lambda m: m.group(1) or "", str(markdown))
    return re.sub(r"(:)\u200b(//)|((?i:www))\u200b(\.)|(@)\u200b", lambda m: "".join(g or "" for g in m.groups()), text)


__all__ = ["escape_markdown", "escape_html", "markdown_to_text"]


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``"1 unusable file"``, ``"3 unusable files"``: the number with its noun in the right number."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"
