"""The structural DOM pass (lxml.html): junk removal, unwrapping, URL fixes, whitespace; sanitizing is sanitize.py's job."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import lru_cache

from lxml import etree

from aggregator.patterns import SafePattern
from aggregator.tracking import strip_tracking

from .images import is_pixel, needs_no_referrer
from .rules import SiteRule, active_selector, drop_text_patterns, is_tracker, required_texts
from .sanitize import ALLOWED_TAGS
from .urls import host_of, resolve_url

# Elements removed with their content; the sanitizer would drop most, but their text must go too.
_DROP = frozenset(
    ["script", "style", "noscript", "template", "object", "embed", "applet", "form", "input", "button", "select", "textarea", "option", "svg", "math", "frame", "frameset", "link", "meta", "base", "head", "title", "nav", "canvas", "dialog", "map", "area", "param"]
)
# Wrappers removed but whose children are kept (presentational or layout only).
_UNWRAP = frozenset(["font", "center", "span", "section", "article", "main", "header", "footer", "aside", "big", "basefont", "o:p", "label"])
_BLOCKS = frozenset(
    ["p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dd", "dt", "td", "th", "blockquote", "figcaption", "caption", "pre", "ul", "ol", "dl", "table", "tbody", "thead", "tfoot", "tr", "figure", "hr", "details", "summary", "section", "article"]
)
_TEXT_BLOCKS = ("p", "li", "dd", "dt", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "caption", "blockquote", "div")
_KEEP_EMPTY = frozenset(["img", "br", "hr", "iframe", "video", "audio", "source", "td", "th", "tr", "col", "colgroup", "track"])
_MEDIA = ("img", "iframe", "video", "audio", "picture")
_LAZY_SRC = ("data-src", "data-original", "data-lazy-src", "data-actualsrc", "data-original-src", "data-url", "file")
_LAZY_SRCSET = ("data-srcset", "data-lazy-srcset")
_WS = re.compile(r"[ \t\n\r\f\v]+")
_LEADING = re.compile(r"^[\s\u3000\u00a0\u200b\ufeff]+")
_TRAILING = re.compile(r"[\s\u3000\u00a0\u200b\ufeff]+$")
_RELATED = re.compile(r"^(related( posts| articles| stories| reading)?|you (may|might) also like|more from .{1,40}|相关(阅读|文章|推荐|新闻)|延伸阅读|推荐阅读)\s*[:：]?$", re.IGNORECASE)


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


def _remove(el: etree._Element) -> None:
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


def _unwrap(el: etree._Element) -> None:
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
    _remove(el)


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


def _fix_lazy(img: etree._Element) -> None:
    src = img.get("src", "")
    for attr in _LAZY_SRC:
        lazy = img.get(attr, "")
        if lazy and not lazy.startswith("data:") and (not src or src.startswith("data:") or "placeholder" in src or "lazy" in src or "blank" in src):
            img.set("src", lazy)
            break
    for attr in _LAZY_SRCSET:
        if img.get(attr) and not img.get("srcset"):
            img.set("srcset", img.get(attr, ""))


def _resolve_srcset(value: str, base: str) -> str:
    out = []
    for candidate in value.split(","):
        parts = candidate.split()
        if parts:
            url = resolve_url(parts[0], base)
            if url:
                out.append(" ".join([url, *parts[1:2]]))
    return ", ".join(out)


def _noscript_images(root: etree._Element) -> None:
    """A <noscript> fallback after a lazy image gives that image its real src; other noscripts go."""
    for ns in list(root.iter("noscript")):
        inner = (ns.text or "") + "".join(etree.tostring(c, encoding="unicode") for c in ns)
        if "<img" not in inner.lower():
            continue
        try:
            frag = parse_fragment(inner)
        except (etree.ParserError, ValueError):
            continue
        imgs = frag.xpath(".//img[@src]")
        if not imgs:
            continue
        prev = ns.getprevious()
        if prev is not None and prev.tag == "img" and (not prev.get("src") or prev.get("src", "").startswith("data:")):
            prev.set("src", imgs[0].get("src"))
        elif prev is None or prev.tag != "img":
            new = etree.Element("img", src=imgs[0].get("src"), alt=imgs[0].get("alt", ""))
            ns.addprevious(new)


def _forget_images(el: etree._Element, base: str, removed: set[str]) -> None:
    """Remember images inside removed junk, so the lead image is never one of them."""
    for img in el.iter("img"):
        for attr in ("src", *_LAZY_SRC):
            if img.get(attr):
                removed.add(resolve_url(img.get(attr, ""), base))


def _apply_rules(
    root: etree._Element, raw: str, rules: tuple[SiteRule, ...], why: Explain, removed: set[str], base: str
) -> None:
    if why.lines is not None:
        _apply_rules_explained(root, rules, why, removed, base)
        return
    remove = active_selector(rules, "remove", raw)
    if remove is not None:
        for el in remove(root):
            if el is not root and el.getparent() is not None:
                _forget_images(el, base, removed)
                _remove(el)
    unwrap = active_selector(rules, "unwrap", raw)
    if unwrap is not None:
        for el in unwrap(root):
            if el is not root:
                _unwrap(el)
    found = drop_text_patterns(rules)
    if found:
        _drop_text(root, [("site rules", pattern) for pattern in found], why, removed, base)


def _apply_rules_explained(root: etree._Element, rules: Sequence[SiteRule], why: Explain, removed: set[str], base: str) -> None:
    """The same as the fast path, one selector at a time, so each removal names its rule."""
    for rule in rules:
        for css, selector in rule.remove:
            gone: set[etree._Element] = set()
            for el in selector(root):
                gone.add(el)
                if el is not root and el.getparent() is not None and not any(a in gone for a in el.iterancestors()):
                    why.add(el, f"{rule.name} remove {css}")
                    _forget_images(el, base, removed)
                    _remove(el)
        for _css, selector in rule.unwrap:
            for el in selector(root):
                if el is not root:
                    _unwrap(el)
    patterns = [(f"{rule.name} drop_text {p.pattern}", p) for rule in rules for p in rule.drop_text]
    if patterns:
        _drop_text(root, patterns, why, removed, base)


def _has_text_block(el: etree._Element) -> bool:
    """A block child with visible text (an empty one will be removed later, so it does not count)."""
    if el.tag not in _BLOCKS:
        return False
    text = short_text(el, 600)
    return text is None or bool(text.strip(_BLANK)) or el.find(".//img") is not None


def _holds_any(root: etree._Element, needles: tuple[str, ...]) -> bool:
    """False when no block can match: each block's text is a piece of the whole text, so a string
    every match must contain (rules.required_texts) has to occur in the whole text too."""
    text = str(etree.tostring(root, method="text", encoding="unicode", with_tail=False))  # one C call
    return any(needle in text for needle in needles)


@lru_cache(maxsize=256)
def _needles(patterns: tuple[SafePattern, ...]) -> tuple[str, ...] | None:
    """Strings one of which a text must hold for any of these patterns to match; None: unknown."""
    needles: list[str] = []
    for pattern in patterns:
        required = required_texts(pattern)
        if required is None:
            return None
        needles.extend(required)
    return tuple(dict.fromkeys(needles))


def _drop_text(root: etree._Element, patterns: Sequence[tuple[str, SafePattern]], why: Explain, removed: set[str], base: str) -> None:
    needles = _needles(tuple(pattern for _name, pattern in patterns))
    if needles is not None and not _holds_any(root, needles):
        return  # one substring search per pattern instead of reading every block's text
    for el in list(root.iter(*_TEXT_BLOCKS)):
        size = len(el)
        if el is root or size > 12 or el.getparent() is None:
            continue
        if size:
            short = short_text(el, 600)
        else:  # a leaf: short_text without the iterator
            short = el.text or ""
            if len(short) + 10 > 600:
                short = None
        if short is None:
            continue
        # A whitespace-free needle in the collapsed text is in the raw text too: a block without one
        # cannot match, and skips the innermost test (a text read per child).
        if needles is not None and not any(needle in short for needle in needles):
            continue
        if size and any(_has_text_block(c) for c in el):
            continue  # only innermost blocks: reading every ancestor's text would be quadratic in depth
        text = _collapse(short).strip(_BLANK)
        if not text or len(text) > 400:
            continue
        for name, pattern in patterns:
            if pattern.search(text):
                why.add(el, name)
                _forget_images(el, base, removed)
                nxt = el.getnext()
                if _RELATED.match(text) and nxt is not None and nxt.tag in ("ul", "ol"):
                    why.add(nxt, f"{name} (the related list after it)")
                    _remove(nxt)
                _remove(el)
                break


_EMOJI_CLASS = re.compile(r"\b(wp-smiley|emoji|emoticon)\b", re.IGNORECASE)


def _replace_with_text(el: etree._Element, text: str) -> None:
    el.tail = text + (el.tail or "")
    _remove(el)


def _fix_media(root: etree._Element, base: str, why: Explain, removed: set[str], tags: Collection[str]) -> None:
    for img in list(root.iter("img")) if "img" in tags else ():
        if _EMOJI_CLASS.search(img.get("class", "")) and img.get("alt"):
            _replace_with_text(img, img.get("alt", ""))  # an emoji drawn as an image reads as the emoji
            continue
        _fix_lazy(img)
        src = resolve_url(img.get("src", ""), base)
        srcset = _resolve_srcset(img.get("srcset", ""), base) if img.get("srcset") else ""
        if not src and srcset:
            src = srcset.split(",")[0].split()[0]
        if not src or is_tracker(src) or is_pixel(img):
            if src:
                removed.add(src)
            why.add(img, "pixel/tracker" if src else "image without usable src")
            _remove(img)
            continue
        for attr in list(img.attrib):
            if attr not in ("alt", "title", "width", "height"):
                del img.attrib[attr]
        img.set("src", src)
        if srcset:
            img.set("srcset", srcset)
        if needs_no_referrer(src):
            img.set("referrerpolicy", "no-referrer")
    players = _PLAYERS.intersection(tags)
    for el in root.iter(*players) if players else ():
        for attr in ("src", "poster"):
            if el.get(attr) is not None:
                url = resolve_url(el.get(attr, ""), base)
                if url:
                    el.set(attr, url)
                else:
                    del el.attrib[attr]
        if el.get("srcset"):
            el.set("srcset", _resolve_srcset(el.get("srcset", ""), base))


_PLAYERS = frozenset(("video", "audio", "source", "track"))
_CITING = frozenset(("blockquote", "q", "del", "ins"))


def _fix_links(root: etree._Element, base: str, tags: Collection[str]) -> None:
    for a in list(root.iter("a")) if "a" in tags else ():
        href = a.get("href", "")
        url = resolve_url(href, base) if href else ""
        if not url or url.startswith(("http://", "https://")) and not host_of(url):
            _unwrap(a)  # a link to nowhere (javascript:, #anchor without base) reads as text
            continue
        clean = strip_tracking(url)
        if clean != href:
            a.set("href", clean)
    citing = _CITING.intersection(tags)
    for el in root.iter(*citing) if citing else ():
        if el.get("cite"):
            url = resolve_url(el.get("cite", ""), base)
            if url:
                el.set("cite", url)
            else:
                del el.attrib["cite"]


def _fix_iframes(root: etree._Element, base: str, iframe_hosts: Collection[str], why: Explain) -> None:
    hosts = {h.lower() for h in iframe_hosts}
    for frame in list(root.iter("iframe")):
        src = resolve_url(frame.get("src") or frame.get("data-src") or "", base)
        if src.startswith("http://"):
            src = "https://" + src[7:]
        if not src or host_of(src) not in hosts:
            why.add(frame, "iframe host not allowlisted")
            _remove(frame)
            continue
        keep = {k: frame.get(k, "") for k in ("width", "height", "allowfullscreen") if frame.get(k) is not None}
        frame.attrib.clear()
        frame.set("src", src)
        for k, v in keep.items():
            frame.set(k, v)
        frame.text = None
        for child in list(frame):
            frame.remove(child)


_STYLED = etree.XPath("//*[@style]")
# XPath's translate(translate(@style, ' ', ''), 'A..Z', 'a..z'): spaces out, ASCII letters lowered
_LOWER_NO_SPACE = {**{ord(c): ord(c.lower()) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}, ord(" "): None}


def _hidden(root: etree._Element) -> list[etree._Element]:
    """Elements whose style hides them, in document order (the test in Python: XPath's translate()
    on every element cost more than the rest of the pass on styled pages)."""
    out = []
    for el in _STYLED(root):
        style = str(el.get("style", "")).translate(_LOWER_NO_SPACE)
        if "display:none" in style or "visibility:hidden" in style:
            out.append(el)
    return out
_KEEP_TAGS_WITH_IFRAME = ALLOWED_TAGS | {"iframe"}
_NESTING_BLOCKS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "div", "ul", "ol", "dl", "table", "blockquote", "pre", "figure", "hr")
_NESTING_BLOCK_SET = frozenset(_NESTING_BLOCKS)
_NESTING_OUTER = frozenset(("p", "h1", "h2", "h3", "h4", "h5", "h6", "a", "b", "i", "em", "strong", "u", "s", "small", "sup", "sub", "code"))
_FLOW_ONLY = frozenset(("p", "h1", "h2", "h3", "h4", "h5", "h6"))


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
            _unwrap(el)  # table parts outside a table: browsers ignore the tag
            continue
        allowed = _TABLE_CHILDREN.get(el.tag)
        if allowed is None:
            continue
        if el.text and el.text.strip(_BLANK):
            _text_before(table, el.text)
        el.text = None
        for child in list(el):
            if child.tag not in allowed:
                table.addprevious(child)  # carries its tail along
            elif child.tail and child.tail.strip(_BLANK):
                tail, child.tail = child.tail, None
                _text_before(table, tail)


def _structure(root: etree._Element, keep_tags: Collection[str], tags: Collection[str]) -> None:
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
            _unwrap(el)
    for div in list(root.iter("div")) if "div" in tags else ():
        if div is root:
            continue
        if any(child.tag in _BLOCKS for child in div):
            _unwrap(div)
        else:
            div.tag = "p"  # a div holding only text/inline content is a paragraph
            div.attrib.clear()


_BLANK = " \t\n\r\u3000\u00a0\u200b\ufeff"


def _is_empty(el: etree._Element) -> bool:
    """No text and nothing but <br> inside. Called innermost first, so empty children are already gone."""
    if (el.text or "").strip(_BLANK):
        return False
    return all(child.tag == "br" and not (child.tail or "").strip(_BLANK) for child in el)


def _collapse(text: str) -> str:
    if "  " in text or "\n" in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text:
        return _WS.sub(" ", text)
    return text




def _tidy(root: etree._Element) -> None:
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
            if text and text.strip(_BLANK):
                continue  # _is_empty's first test, without the call
            if _is_empty(el) and el.getparent() is not None:
                _remove(el)
        elif el in in_pre:
            if not el.text and len(el) == 0:  # inside <pre> even a space is content: only truly empty goes
                _remove(el)
        elif _is_empty(el) and el.getparent() is not None:
            _remove(el)
    # each el.tag/.text/.tail read builds a new str in lxml: read once, write only what changes.
    # Attributes are the sanitizer's job (its allowlist is per element and stricter than any list here).
    for el in root.iter():
        tag = el.tag
        if in_pre and el in in_pre:
            continue
        text = el.text
        if text:
            new = text.lstrip("\r\n") if tag == "pre" else _collapse(text)  # HTML parsers drop a newline
            if new != text:  # right after <pre>: drop them all, so a re-parse agrees
                el.text = new
        tail = el.tail
        if tail:
            new = "\n" if tag in _BLOCKS and not tail.strip() else _collapse(tail)
            if new != tail:
                el.tail = new
    for el in root.iter(*_TEXT_BLOCKS):
        if el is root or (in_pre and el in in_pre):
            continue
        if len(el):
            _trim_br(el)
            _strip_edges(el)
            continue
        # a leaf block (most paragraphs): _trim_br has nothing to do; _strip_edges inlined
        text = el.text
        if text and text.strip(_BLANK):
            if text[0] in _BLANK:
                text = _LEADING.sub("", text)
                el.text = text
            if text and text[-1] in _BLANK:
                el.text = _TRAILING.sub("", text)
        else:
            el.text = _LEADING.sub("", text or "")
    _trim_br(root)


def _strip_edges(el: etree._Element) -> None:
    """Strip leading indentation (incl. U+3000 and nbsp runs) and trailing blanks of a block."""
    text = el.text
    if text and text.strip(_BLANK):
        if text[0] in _BLANK:
            el.text = _LEADING.sub("", text)
    elif len(el) == 0:
        el.text = _LEADING.sub("", text or "")
    else:
        el.text = None
        first = el[0]
        while first is not None and isinstance(first.tag, str) and first.tag not in _BLOCKS and first.tag != "br":
            if first.text and first.text.strip(_BLANK):
                if first.text[0] in _BLANK:
                    first.text = _LEADING.sub("", first.text)
                break
            if len(first) or first.tag in _MEDIA:
                break
            first.text = None
            if first.tail and first.tail.strip(" \t\n\r\u3000\u00a0\u200b\ufeff"):
                first.tail = _LEADING.sub("", first.tail)  # e.g. <p><br>, then indented text
                break
            first = first.getnext()
    _strip_trailing(el)


def _strip_trailing(el: etree._Element) -> None:
    """Trailing blanks go, also from the end of the last inline child (e.g. <p>x <b>y </b></p>)."""
    node = el
    while True:
        if len(node) == 0:
            text = node.text
            if text and text[-1] in _BLANK:
                node.text = _TRAILING.sub("", text)
            return
        last = node[-1]
        tail = last.tail
        if tail and tail.strip(_BLANK):
            if tail[-1] in _BLANK:
                last.tail = _TRAILING.sub("", tail)
            return
        last.tail = None
        if last.tag in _MEDIA or last.tag in _KEEP_EMPTY or last.tag in _BLOCKS:
            return
        node = last


def _trim_br(el: etree._Element) -> None:
    """No <br> at the start or end of a block."""
    while len(el) and el[-1].tag == "br" and not (el[-1].tail or "").strip():
        el.remove(el[-1])
    while len(el) and el[0].tag == "br" and not (el.text or "").strip():
        tail = el[0].tail
        el.remove(el[0])
        el.text = _LEADING.sub("", tail or "") or None


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


def _drop_junk(root: etree._Element, raw: str, rules: tuple[SiteRule, ...], why: Explain, removed_images: set[str], base: str,
               tags: Collection[str]) -> None:
    """Hidden elements, dangerous or junk elements, then the site rules: everything that takes text away."""
    if "display" in raw or "visibility" in raw:
        for el in _hidden(root):  # hidden in the page (popovers, share menus, tracking): hidden here too
            if el.getparent() is not None:
                why.add(el, "hidden by its style")
                _forget_images(el, base, removed_images)
                _remove(el)
    dropped = _DROP.intersection(tags)
    if dropped:
        for el in root.iter(*dropped):
            _forget_images(el, base, removed_images)
            if el.tag not in ("noscript", "head", "meta", "link", "base"):
                why.add(el, f"element <{el.tag}>")
        etree.strip_elements(root, *dropped, with_tail=False)
    _apply_rules(root, raw, rules, why, removed_images, base)  # before attributes go: rules select on class and id


def _tags(root: etree._Element) -> set[str]:
    """Every tag below root as parsed. The steps only remove elements (a noscript fallback may add an
    img, a div may become a p), so each step skips the searches for tags the tree never had: lxml's
    iter() with a list of tags costs a few µs to set up, which adds up on short items."""
    return {str(e.tag) for e in root.iterdescendants()}


def restructure(
    html_text: str,
    base: str,
    rules: tuple[SiteRule, ...],
    iframe_hosts: Collection[str],
    why: Explain,
    removed_images: set[str],
) -> tuple[str, etree._Element]:
    """The DOM pass, in order: drop dangerous/junk elements, site rules, media, links, unwrap, whitespace."""
    root = parse_fragment(html_text)
    tags = _tags(root)
    if "noscript" in tags:
        _noscript_images(root)
        tags.add("img")  # a noscript fallback may add one
    for img in root.iter("img") if "img" in tags else ():
        _fix_lazy(img)
    _drop_junk(root, html_text, rules, why, removed_images, base, tags)
    if "iframe" in tags:
        _fix_iframes(root, base, iframe_hosts, why)
    _fix_media(root, base, why, removed_images, tags)
    _fix_links(root, base, tags)
    _structure(root, _KEEP_TAGS_WITH_IFRAME if iframe_hosts else ALLOWED_TAGS, tags)
    _tidy(root)
    return serialize(root), root


def junk_free_tree(html_text: str, base: str, rules: tuple[SiteRule, ...], removed_images: set[str]) -> etree._Element:
    """The tree after only the steps that take text away: enough to read a summary's text, at a
    fraction of the whole pass (no URLs, structure, whitespace, serializing or sanitizing)."""
    root = parse_fragment(html_text)
    tags = _tags(root)
    for img in root.iter("img") if "img" in tags else ():
        _fix_lazy(img)
    _drop_junk(root, html_text, rules, Explain(None), removed_images, base, tags)
    for img in list(root.iter("img")) if "img" in tags else ():  # emoji drawn as images read as the emoji, as in _fix_media
        if _EMOJI_CLASS.search(img.get("class", "")) and img.get("alt"):
            _replace_with_text(img, img.get("alt", ""))
    return root
