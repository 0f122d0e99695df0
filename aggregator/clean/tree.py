"""The lxml tree the cleaning pass works on: parse a fragment, serialize it, remove or unwrap an element, read
its text; and Explain, the record of what was removed. No cleaning decisions."""

from __future__ import annotations

import re

from lxml import etree

BLOCKS = frozenset(
    ["p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dd", "dt", "td", "th", "blockquote", "figcaption", "caption", "pre", "ul", "ol", "dl", "table", "tbody", "thead", "tfoot", "tr", "figure", "hr", "details", "summary", "section", "article"]
)


TEXT_BLOCKS = ("p", "li", "dd", "dt", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "caption", "blockquote", "div")


MEDIA = ("img", "iframe", "video", "audio", "picture")


_WS = re.compile(r"[ \t\n\r\f\v]+")


LEADING = re.compile(r"^[\s\u3000\u00a0\u200b\ufeff]+")


TRAILING = re.compile(r"[\s\u3000\u00a0\u200b\ufeff]+$")


class Explain:
    """Collects one line per removal; a no-op when the caller asked for no explanation."""

    def __init__(self, lines: list[str] | None) -> None:
        self.lines = lines

    def add(self, el: etree._Element, rule: str) -> None:
        if self.lines is None:
            return
        text = _WS.sub(" ", text_of(el) if isinstance(el.tag, str) else "").strip()
        cls = el.get("class", "") if isinstance(el.tag, str) else ""
        what = f"<{el.tag}{' class=' + repr(cls) if cls else ''}>" if isinstance(el.tag, str) else "comment"
        src = el.get("src", "") if isinstance(el.tag, str) else ""
        self.lines.append(f"removed {what}{' ' + src if src else ''}{' ' + repr(text[:60]) if text else ''} by {rule}")


def remove_element(el: etree._Element) -> None:
    """Remove el but keep its tail text."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    if tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


def unwrap_element(el: etree._Element) -> None:
    """Replace el by its children and text. O(children): no index() or slicing over the siblings."""
    parent = el.getparent()
    if parent is None:
        return
    if el.text:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + el.text
        else:
            parent.text = (parent.text or "") + el.text
    if len(el):
        children = list(el)
        if el.tail:
            children[-1].tail = (children[-1].tail or "") + el.tail
            el.tail = None
        for child in children:
            el.addprevious(child)  # moves the child with its tail
    remove_element(el)


def text_of(el: etree._Element) -> str:
    return "".join(el.itertext())


def short_text(el: etree._Element, limit: int) -> str | None:
    """el's text when it has at most `limit` characters, else None; stops reading at the limit."""
    parts, size = [], 0
    for text in el.itertext():
        size += len(text) + 10  # +10: a deep run of empty inline elements counts too
        if size > limit:
            return None
        parts.append(text)
    return "".join(parts)


BLANK = " \t\n\r\u3000\u00a0\u200b\ufeff"


def collapse_spaces(text: str) -> str:
    if "  " in text or "\n" in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text:
        return _WS.sub(" ", text)
    return text


# Plain etree elements (no lxml.html element classes: their lookup cost ~10% of the pass);
# comments and processing instructions never reach the tree.
_DOC_TAGS = re.compile(r"</?(?:html|body|head)\b[^<>]*>", re.IGNORECASE)


_PARSER = etree.HTMLParser(remove_comments=True, remove_pis=True, huge_tree=True, no_network=True)


def parse_fragment(html_text: str) -> etree._Element:
    """The fragment as children of one <body> element (never None)."""
    # libxml2 drops whatever follows </html> and strays after </body>: those tags carry nothing.
    html_text = _DOC_TAGS.sub("", html_text)
    doc = etree.fromstring("<html><body>" + html_text, _PARSER)  # body first: no text lands in <head>
    body = doc.find("body") if doc is not None else None
    if body is None:
        return etree.Element("body")
    return body


def serialize(root: etree._Element) -> str:
    """The children of root (a <body>) as HTML."""
    whole = str(etree.tostring(root, method="html", encoding="unicode", with_tail=False))
    if whole.startswith("<body>") and whole.endswith("</body>"):  # one C call instead of one per child
        return whole[6:-7].strip(" \t\n\r\f\v")
    parts = [html_lib_escape(root.text or "")]
    parts.extend(etree.tostring(child, method="html", encoding="unicode", with_tail=True) for child in root)
    return "".join(parts).strip(" \t\n\r\f\v")


def html_lib_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
