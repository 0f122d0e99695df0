"""Images, media, links and iframes in the cleaning pass: lazy-loaded sources rescued, srcsets and URLs made
absolute, trackers and emoji images handled, players and iframes kept only where allowed."""

from __future__ import annotations

import re
from collections.abc import Collection

from lxml import etree

from aggregator.tracking import strip_tracking

from .images import is_pixel, needs_no_referrer
from .rules import is_tracker
from .tree import Explain, parse_fragment, remove_element, unwrap_element
from .urls import host_of, resolve_url

_LAZY_SRC = ("data-src", "data-original", "data-lazy-src", "data-actualsrc", "data-original-src", "data-url", "file")


_LAZY_SRCSET = ("data-srcset", "data-lazy-srcset")


def fix_lazy(img: etree._Element) -> None:
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


def noscript_images(root: etree._Element) -> None:
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


def forget_images(el: etree._Element, base: str, removed: set[str]) -> None:
    """Remember images inside removed junk, so the lead image is never one of them."""
    for img in el.iter("img"):
        for attr in ("src", *_LAZY_SRC):
            if img.get(attr):
                removed.add(resolve_url(img.get(attr, ""), base))


EMOJI_CLASS = re.compile(r"\b(wp-smiley|emoji|emoticon)\b", re.IGNORECASE)


def replace_with_text(el: etree._Element, text: str) -> None:
    el.tail = text + (el.tail or "")
    remove_element(el)


def fix_media(root: etree._Element, base: str, why: Explain, removed: set[str], tags: Collection[str]) -> None:
    for img in list(root.iter("img")) if "img" in tags else ():
        if EMOJI_CLASS.search(img.get("class", "")) and img.get("alt"):
            replace_with_text(img, img.get("alt", ""))  # an emoji drawn as an image reads as the emoji
            continue
        fix_lazy(img)
        src = resolve_url(img.get("src", ""), base)
        srcset = _resolve_srcset(img.get("srcset", ""), base) if img.get("srcset") else ""
        if not src and srcset:
            src = srcset.split(",")[0].split()[0]
        if not src or is_tracker(src) or is_pixel(img):
            if src:
                removed.add(src)
            why.add(img, "pixel/tracker" if src else "image without usable src")
            remove_element(img)
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


def fix_links(root: etree._Element, base: str, tags: Collection[str]) -> None:
    for a in list(root.iter("a")) if "a" in tags else ():
        href = a.get("href", "")
        url = resolve_url(href, base) if href else ""
        if not url or url.startswith(("http://", "https://")) and not host_of(url):
            unwrap_element(a)  # a link to nowhere (javascript:, #anchor without base) reads as text
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


def fix_iframes(root: etree._Element, base: str, iframe_hosts: Collection[str], why: Explain) -> None:
    hosts = {h.lower() for h in iframe_hosts}
    for frame in list(root.iter("iframe")):
        src = resolve_url(frame.get("src") or frame.get("data-src") or "", base)
        if src.startswith("http://"):
            src = "https://" + src[7:]
        if not src or host_of(src) not in hosts:
            why.add(frame, "iframe host not allowlisted")
            remove_element(frame)
            continue
        keep = {k: frame.get(k, "") for k in ("width", "height", "allowfullscreen") if frame.get(k) is not None}
        frame.attrib.clear()
        frame.set("src", src)
        for k, v in keep.items():
            frame.set(k, v)
        frame.text = None
        for child in list(frame):
            frame.remove(child)
