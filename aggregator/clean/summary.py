"""Plain text from HTML: titles, and summaries cut CJK-aware at a sentence end; no HTML out."""

from __future__ import annotations

import html as html_lib
import re

from lxml import etree

from ..text import collapse_whitespace
from .tree import parse_fragment

_TAG = re.compile(r"<[A-Za-z/!?]")
_SENTENCE_END = re.compile(r"[。！？!?]|\.(?=\s|$)")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_JUNK = re.compile(r"^(read more|continue reading|more|阅读全文|查看全文|点击查看|全文)\W*$", re.IGNORECASE)
_NON_WORD = re.compile(r"\W+")


_BLOCK_TAGS = ("p", "div", "li", "br", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote", "pre", "figcaption")
_BLOCK_SET = frozenset(_BLOCK_TAGS)


def html_to_text(fragment: str) -> str:
    """Visible text of an HTML fragment, one space between blocks, whitespace collapsed."""
    if not fragment or not fragment.strip():
        return ""
    if not _TAG.search(fragment):
        return collapse_whitespace(html_lib.unescape(fragment))
    try:
        root = parse_fragment(fragment)
    except (etree.ParserError, ValueError):
        return collapse_whitespace(html_lib.unescape(re.sub(r"<[^>]*>", " ", fragment)))
    for el in list(root.iter("script", "style", "noscript", "template")):
        el.getparent().remove(el)
    return root_text(root)


def root_text(root: etree._Element, limit: int = 0) -> str:
    """Visible text of a parsed fragment, a space between blocks; with limit, about its first `limit` chars."""
    parts: list[str] = []
    size = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        if event == "start":
            text = el.text
        else:
            if el.tag in _BLOCK_SET:
                parts.append(" ")
            if el is root:
                continue  # the root's tail is not its text
            text = el.tail
        if text:
            parts.append(text)
            size += len(text)
            if limit and size > limit:
                break
    return collapse_whitespace("".join(parts))


def plain_title(title: str) -> str:
    """Entities decoded once, tags stripped, whitespace collapsed."""
    if _TAG.search(title):
        return html_to_text(title)
    return collapse_whitespace(html_lib.unescape(title))


def truncate_text(text: str, length: int) -> str:
    """At most about `length` characters, cut at a sentence end (。！？ or '. ') in the second half when possible."""
    text = collapse_whitespace(text)
    if len(text) <= length:
        return text
    window = text[: length + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() >= length // 2]
    if ends:
        return window[: ends[-1]].strip()
    cut = text[:length]
    if not _CJK.search(cut[-20:]):
        space = cut.rfind(" ")
        if space >= length // 2:
            cut = cut[:space]
    return cut.rstrip(" ,;:，、；：") + "…"


def is_useful_summary(summary_text: str, content_text: str) -> bool:
    """False when the feed's summary is empty, junk, or only the content again."""
    if not summary_text or _JUNK.match(summary_text):
        return False
    if not content_text:
        return True
    # Both tests below need the two texts to start with the same 16 word characters. Dropping \W from a
    # prefix gives a prefix of the whole result, so the starts alone settle most summaries.
    head_a = _NON_WORD.sub("", summary_text[:80])[:16]
    head_b = _NON_WORD.sub("", content_text[:80])[:16]
    if len(head_a) == len(head_b) == 16 and head_a != head_b:
        return True
    a = _NON_WORD.sub("", summary_text)
    b = _NON_WORD.sub("", content_text[: len(summary_text) * 2 + 100])
    # the content again (maybe truncated by the publisher, maybe with an ellipsis)
    return not (a == b or (len(a) > 40 and b.startswith(a.rstrip("…."))))


def title_from_summary(summary: str, length: int = 80) -> str:
    first = _SENTENCE_END.search(summary)
    sentence = summary[: first.end()] if first and first.end() <= length else summary
    return truncate_text(sentence, length)
