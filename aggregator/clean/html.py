"""The structural DOM pass (lxml.html) in its order: junk removal (site rules, text patterns, hidden and ad
elements) here, then media.py (images, links, iframes) and layout.py (nesting, whitespace); sanitizing is
sanitize.py's job."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import lru_cache

from lxml import etree

from aggregator.patterns import SafePattern

from .layout import repair_structure, tidy_whitespace
from .media import (
    EMOJI_CLASS,
    fix_iframes,
    fix_lazy,
    fix_links,
    fix_media,
    forget_images,
    noscript_images,
    replace_with_text,
)
from .rules import SiteRule, active_selector, drop_text_patterns, required_texts
from .sanitize import ALLOWED_TAGS
from .tree import (
    BLANK,
    BLOCKS,
    TEXT_BLOCKS,
    Explain,
    collapse_spaces,
    parse_fragment,
    remove_element,
    serialize,
    short_text,
    unwrap_element,
)

# Elements removed with their content; the sanitizer would drop most, but their text must go too.
_DROP = frozenset(
    ["script", "style", "noscript", "template", "object", "embed", "applet", "form", "input", "button", "select", "textarea", "option", "svg", "math", "frame", "frameset", "link", "meta", "base", "head", "title", "nav", "canvas", "dialog", "map", "area", "param"]
)


_RELATED = re.compile(r"^(related( posts| articles| stories| reading)?|you (may|might) also like|more from .{1,40}|相关(阅读|文章|推荐|新闻)|延伸阅读|推荐阅读)\s*[:：]?$", re.IGNORECASE)


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
                forget_images(el, base, removed)
                remove_element(el)
    unwrap = active_selector(rules, "unwrap", raw)
    if unwrap is not None:
        for el in unwrap(root):
            if el is not root:
                unwrap_element(el)
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
                    forget_images(el, base, removed)
                    remove_element(el)
        for _css, selector in rule.unwrap:
            for el in selector(root):
                if el is not root:
                    unwrap_element(el)
    patterns = [(f"{rule.name} drop_text {p.pattern}", p) for rule in rules for p in rule.drop_text]
    if patterns:
        _drop_text(root, patterns, why, removed, base)


def _has_text_block(el: etree._Element) -> bool:
    """A block child with visible text (an empty one will be removed later, so it does not count)."""
    if el.tag not in BLOCKS:
        return False
    text = short_text(el, 600)
    return text is None or bool(text.strip(BLANK)) or el.find(".//img") is not None


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
    for el in list(root.iter(*TEXT_BLOCKS)):
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
        text = collapse_spaces(short).strip(BLANK)
        if not text or len(text) > 400:
            continue
        for name, pattern in patterns:
            if pattern.search(text):
                why.add(el, name)
                forget_images(el, base, removed)
                nxt = el.getnext()
                if _RELATED.match(text) and nxt is not None and nxt.tag in ("ul", "ol"):
                    why.add(nxt, f"{name} (the related list after it)")
                    remove_element(nxt)
                remove_element(el)
                break


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


def _drop_junk(root: etree._Element, raw: str, rules: tuple[SiteRule, ...], why: Explain, removed_images: set[str], base: str,
               tags: Collection[str]) -> None:
    """Hidden elements, dangerous or junk elements, then the site rules: everything that takes text away."""
    if "display" in raw or "visibility" in raw:
        for el in _hidden(root):  # hidden in the page (popovers, share menus, tracking): hidden here too
            if el.getparent() is not None:
                why.add(el, "hidden by its style")
                forget_images(el, base, removed_images)
                remove_element(el)
    dropped = _DROP.intersection(tags)
    if dropped:
        for el in root.iter(*dropped):
            forget_images(el, base, removed_images)
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
        noscript_images(root)
        tags.add("img")  # a noscript fallback may add one
    for img in root.iter("img") if "img" in tags else ():
        fix_lazy(img)
    _drop_junk(root, html_text, rules, why, removed_images, base, tags)
    if "iframe" in tags:
        fix_iframes(root, base, iframe_hosts, why)
    fix_media(root, base, why, removed_images, tags)
    fix_links(root, base, tags)
    repair_structure(root, _KEEP_TAGS_WITH_IFRAME if iframe_hosts else ALLOWED_TAGS, tags)
    tidy_whitespace(root)
    return serialize(root), root


def junk_free_tree(html_text: str, base: str, rules: tuple[SiteRule, ...], removed_images: set[str]) -> etree._Element:
    """The tree after only the steps that take text away: enough to read a summary's text, at a
    fraction of the whole pass (no URLs, structure, whitespace, serializing or sanitizing)."""
    root = parse_fragment(html_text)
    tags = _tags(root)
    for img in root.iter("img") if "img" in tags else ():
        fix_lazy(img)
    _drop_junk(root, html_text, rules, Explain(None), removed_images, base, tags)
    for img in list(root.iter("img")) if "img" in tags else ():  # emoji drawn as images read as the emoji, as in fix_media
        if EMOJI_CLASS.search(img.get("class", "")) and img.get("alt"):
            replace_with_text(img, img.get("alt", ""))
    return root
