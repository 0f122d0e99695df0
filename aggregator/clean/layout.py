"""Structure and whitespace in the cleaning pass: invalid nesting and table debris repaired, empty elements
dropped, indentation (full-width included) and stray line breaks trimmed."""

from __future__ import annotations

from collections.abc import Collection

from lxml import etree

from .tree import (
    BLANK,
    BLOCKS,
    LEADING,
    MEDIA,
    TEXT_BLOCKS,
    TRAILING,
    collapse_spaces,
    remove_element,
    unwrap_element,
)

_KEEP_EMPTY = frozenset(["img", "br", "hr", "iframe", "video", "audio", "source", "td", "th", "tr", "col", "colgroup", "track"])


_NESTING_BLOCKS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "div", "ul", "ol", "dl", "table", "blockquote", "pre", "figure", "hr")


_NESTING_BLOCK_SET = frozenset(_NESTING_BLOCKS)


_NESTING_OUTER = frozenset(("p", "h1", "h2", "h3", "h4", "h5", "h6", "a", "b", "i", "em", "strong", "u", "s", "small", "sup", "sub", "code"))


_PRE_STRIPPED = (
    "p", "div", "ul", "ol", "li", "dl", "dt", "dd", "table", "caption", "colgroup", "col", "thead", "tbody",
    "tfoot", "tr", "td", "th", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "figure", "figcaption", "hr",
    "pre", "details", "summary",
)


_TABLE_CHILDREN = {
    # td/th directly in a table or section get an implied <tr> from browsers: they stay
    "table": frozenset(("caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "td", "th")),
    "thead": frozenset(("tr", "td", "th")), "tbody": frozenset(("tr", "td", "th")), "tfoot": frozenset(("tr", "td", "th")),
    "tr": frozenset(("td", "th")),
}


def _text_before(anchor: etree._Element, text: str) -> None:
    prev = anchor.getprevious()
    if prev is not None:
        prev.tail = (prev.tail or "") + text
    else:
        parent = anchor.getparent()
        if parent is not None:
            parent.text = (parent.text or "") + text


def _fix_tables(root: etree._Element) -> None:
    """Do what a browser does with misplaced table content (foster parenting), so libxml2 and html5ever,
    and hence a second cleaning, agree: stray text and elements move before their table."""
    for el in list(root.iter("table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "colgroup", "col")):
        table = el if el.tag == "table" else next(el.iterancestors("table"), None)
        if table is None:
            unwrap_element(el)  # table parts outside a table: browsers ignore the tag
            continue
        allowed = _TABLE_CHILDREN.get(el.tag)
        if allowed is None:
            continue
        if el.text and el.text.strip(BLANK):
            _text_before(table, el.text)
        el.text = None
        for child in list(el):
            if child.tag not in allowed:
                table.addprevious(child)  # carries its tail along
            elif child.tail and child.tail.strip(BLANK):
                tail, child.tail = child.tail, None
                _text_before(table, tail)


def repair_structure(root: etree._Element, keep_tags: Collection[str], tags: Collection[str]) -> None:
    """tags: every tag the tree may hold (restructure's _tags)."""
    # what the sanitizer would strip anyway (span, font, center, tt...) goes here, text kept; strip_tags is
    # linear in C, where unwrapping one by one re-copies a growing text for every wrapper
    strays = set(tags).difference(keep_tags)
    if strays:
        etree.strip_tags(root, *strays)
    if "pre" in tags:
        for pre in root.iter("pre"):  # libxml2 ends a <pre> at a block; browsers nest it: keep only the text
            etree.strip_tags(pre, *_PRE_STRIPPED)
    if ("table" in tags or "tr" in tags or "td" in tags) and (
        root.find(".//table") is not None or root.find(".//tr") is not None or root.find(".//td") is not None
    ):
        _fix_tables(root)
    # A block inside <p>, a heading or an inline element is parsed differently by libxml2 and by
    # browsers (html5ever in nh3); unwrapping the outer element makes every parser agree (idempotency).
    outer = _NESTING_OUTER.intersection(tags)
    nesting = _NESTING_BLOCK_SET.intersection(tags)
    for el in list(root.iter(*outer)) if outer and nesting else ():
        if len(el) and el is not root and next(el.iterdescendants(*nesting), None) is not None:
            if el.tag == "a" and el.get("href"):
                continue
            unwrap_element(el)
    for div in list(root.iter("div")) if "div" in tags else ():
        if div is root:
            continue
        if any(child.tag in BLOCKS for child in div):
            unwrap_element(div)
        else:
            div.tag = "p"  # a div holding only text/inline content is a paragraph
            div.attrib.clear()


def _is_empty(el: etree._Element) -> bool:
    """No text and nothing but <br> inside. Called innermost first, so empty children are already gone."""
    if (el.text or "").strip(BLANK):
        return False
    return all(child.tag == "br" and not (child.tail or "").strip(BLANK) for child in el)


def tidy_whitespace(root: etree._Element) -> None:
    """One walk for attributes and whitespace, then empty elements (innermost first), then block edges."""
    has_pre = next(root.iterdescendants("pre"), None) is not None
    in_pre = {e for pre in root.iter("pre") for e in pre.iter() if e is not pre} if has_pre else set()
    elements = list(root.iter())
    for el in reversed(elements):
        tag = el.tag
        if tag in _KEEP_EMPTY or tag == "pre" or el is root:
            continue
        if not in_pre:
            text = el.text
            if text and text.strip(BLANK):
                continue  # _is_empty's first test, without the call
            if _is_empty(el) and el.getparent() is not None:
                remove_element(el)
        elif el in in_pre:
            if not el.text and len(el) == 0:  # inside <pre> even a space is content: only truly empty goes
                remove_element(el)
        elif _is_empty(el) and el.getparent() is not None:
            remove_element(el)
    # each el.tag/.text/.tail read builds a new str in lxml: read once, write only what changes.
    # Attributes are the sanitizer's job (its allowlist is per element and stricter than any list here).
    for el in root.iter():
        tag = el.tag
        if in_pre and el in in_pre:
            continue
        text = el.text
        if text:
            new = text.lstrip("\r\n") if tag == "pre" else collapse_spaces(text)  # HTML parsers drop a newline
            if new != text:  # right after <pre>: drop them all, so a re-parse agrees
                el.text = new
        tail = el.tail
        if tail:
            new = "\n" if tag in BLOCKS and not tail.strip() else collapse_spaces(tail)
            if new != tail:
                el.tail = new
    for el in root.iter(*TEXT_BLOCKS):
        if el is root or (in_pre and el in in_pre):
            continue
        if len(el):
            _trim_br(el)
            _strip_edges(el)
            continue
        # a leaf block (most paragraphs): _trim_br has nothing to do; _strip_edges inlined
        text = el.text
        if text and text.strip(BLANK):
            if text[0] in BLANK:
                text = LEADING.sub("", text)
                el.text = text
            if text and text[-1] in BLANK:
                el.text = TRAILING.sub("", text)
        else:
            el.text = LEADING.sub("", text or "")
    _trim_br(root)


def _strip_edges(el: etree._Element) -> None:
    """Strip leading indentation (incl. U+3000 and nbsp runs) and trailing blanks of a block."""
    text = el.text
    if text and text.strip(BLANK):
        if text[0] in BLANK:
            el.text = LEADING.sub("", text)
    elif len(el) == 0:
        el.text = LEADING.sub("", text or "")
    else:
        el.text = None
        first = el[0]
        while first is not None and isinstance(first.tag, str) and first.tag not in BLOCKS and first.tag != "br":
            if first.text and first.text.strip(BLANK):
                if first.text[0] in BLANK:
                    first.text = LEADING.sub("", first.text)
                break
            if len(first) or first.tag in MEDIA:
                break
            first.text = None
            if first.tail and first.tail.strip(" \t\n\r\u3000\u00a0\u200b\ufeff"):
                first.tail = LEADING.sub("", first.tail)  # e.g. <p><br>, then indented text
                break
            first = first.getnext()
    _strip_trailing(el)


def _strip_trailing(el: etree._Element) -> None:
    """Trailing blanks go, also from the end of the last inline child (e.g. <p>x <b>y </b></p>)."""
    node = el
    while True:
        if len(node) == 0:
            text = node.text
            if text and text[-1] in BLANK:
                node.text = TRAILING.sub("", text)
            return
        last = node[-1]
        tail = last.tail
        if tail and tail.strip(BLANK):
            if tail[-1] in BLANK:
                last.tail = TRAILING.sub("", tail)
            return
        last.tail = None
        if last.tag in MEDIA or last.tag in _KEEP_EMPTY or last.tag in BLOCKS:
            return
        node = last


def _trim_br(el: etree._Element) -> None:
    """No <br> at the start or end of a block."""
    while len(el) and el[-1].tag == "br" and not (el[-1].tail or "").strip():
        el.remove(el[-1])
    while len(el) and el[0].tag == "br" and not (el.text or "").strip():
        tail = el[0].tail
        el.remove(el[0])
        el.text = LEADING.sub("", tail or "") or None
