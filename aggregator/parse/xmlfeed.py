"""RSS 0.9x/1.0/2.0 and Atom through feedparser, from bytes only, into Articles; never fetches anything."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any
from xml.sax import SAXException

import feedparser

from aggregator.model import Article, Enclosure, FeedMeta

from .fields import (
    absolute_url,
    clean_text,
    dedupe,
    enclosure,
    is_empty,
    resolve_base,
    text_to_html,
    title_text,
    to_int,
    utc_from_struct,
)

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_PERIOD_S = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000, "yearly": 31536000}
MAX_TAGS = 50


def run_feedparser(body: bytes, content_type: str, feed_url: str) -> Any:
    """feedparser over bytes (a stream, so it never treats input as a URL), our own sanitizing/resolving."""
    headers = {"content-location": feed_url}
    if content_type:
        headers["content-type"] = content_type
    return feedparser.parse(
        io.BytesIO(body), response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )


def feed_meta(parsed: Any, feed_url: str) -> FeedMeta:
    feed = parsed.get("feed", {})
    detail = feed.get("title_detail") or {}
    return FeedMeta(
        title=title_text(clean_text(feed.get("title")), str(detail.get("type", ""))),
        link=absolute_url(feed.get("link"), feed_url),
        id=clean_text(feed.get("id")).strip(),
        updated=utc_from_struct(_own(feed, "updated_parsed")),
        language=clean_text(feed.get("language")).strip()[:35],
        ttl_s=_ttl_s(feed),
        format=str(parsed.get("version") or ""),
    )


def _own(mapping: Mapping[str, Any], key: str) -> Any:
    """The key's own value: FeedParserDict.get("updated_parsed") falls back to the published date
    (deprecated), and an invented "updated" would hide which date the feed really gave."""
    return dict.get(mapping, key) if isinstance(mapping, dict) else mapping.get(key)


def _ttl_s(feed: Mapping[str, Any]) -> int | None:
    ttl = to_int(feed.get("ttl"))
    if ttl:
        return ttl * 60
    period = _PERIOD_S.get(clean_text(feed.get("sy_updateperiod")).strip().lower())
    if period is None:
        return None
    return period // max(1, to_int(feed.get("sy_updatefrequency")) or 1)


def entry_article(
    entry: Mapping[str, Any],
    meta: FeedMeta,
    source_url: str,
    source_name: str,
    feed_url: str,
    fingerprint: str = "",
    *,
    loose: bool = False,
) -> Article:
    """One feedparser entry as an Article (id assigned later, once the whole feed is known); `fingerprint`:
    its raw digest from the fast path (parse/known.py), if any; `loose`: parsed by feedparser's loose
    parser (is_loose), whose author names and tags still hold XML's five entities."""
    unescape = _xml_unescape if loose else _same
    title_detail = entry.get("title_detail") or {}
    link = absolute_url(entry.get("link"), str(title_detail.get("base") or "") or meta.link or feed_url)
    content_html, content_base = _content(entry)
    summary_detail = entry.get("summary_detail") or {}
    summary = clean_text(entry.get("summary"))
    if not content_html and summary:
        content_html = summary if summary_detail.get("type") in _HTML_TYPES else text_to_html(summary)
        content_base = str(summary_detail.get("base") or "")
    base_url = resolve_base(content_base, feed_url, link, meta.link, feed_url)
    enclosures = _enclosures(entry, base_url)
    return Article(
        id="",
        source_url=source_url,
        source_name=source_name,
        original_id=clean_text(entry.get("id")),
        # whole: filters must see its end (issue 20); outputs cut it (publish/formatting.py MAX_TITLE)
        title=title_text(clean_text(entry.get("title")), str(title_detail.get("type", ""))),
        link=link,
        authors=tuple(unescape(name) for name in _authors(entry)),
        published=utc_from_struct(entry.get("published_parsed")),
        updated=utc_from_struct(_own(entry, "updated_parsed")),
        summary=summary,
        content_html=content_html,
        tags=dedupe([unescape(clean_text(t.get("term") or t.get("label"))) for t in entry.get("tags") or ()],
                    MAX_TAGS),
        enclosures=enclosures,
        image=_image(entry, enclosures, base_url),
        base_url=base_url,
        language=clean_text(title_detail.get("language") or "").strip()[:35] or meta.language,
        feed=meta,
        fingerprint=fingerprint,
    )


def is_loose(parsed: Any) -> bool:
    """feedparser gave up on strict XML (a SAX error, or no encoding it could name) and read the document
    with its loose parser: that one leaves &lt; &gt; &amp; &quot; &apos; undecoded in elements it does
    not take for HTML or text (author names, category terms), so they would be escaped twice on output."""
    return isinstance(parsed.get("bozo_exception"), SAXException) or ("encoding" in parsed and not parsed["encoding"])


_XML_ENTITY = re.compile(r"&(lt|gt|amp|quot|apos);")
_XML_CHARS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def _xml_unescape(value: str) -> str:
    """XML's five entities decoded in one pass (`&amp;lt;` becomes `&lt;`, as an XML parser gives it)."""
    return _XML_ENTITY.sub(lambda m: _XML_CHARS[m.group(1)], value) if "&" in value else value


def _same(value: str) -> str:
    return value


def _content(entry: Mapping[str, Any]) -> tuple[str, str]:
    """The richest content: HTML before text, then the longest; with its xml:base."""
    best: tuple[bool, int, str, str] | None = None
    for item in entry.get("content") or ():
        value = clean_text(item.get("value"))
        if not value.strip():
            continue
        is_html = item.get("type") in _HTML_TYPES
        candidate = (
            is_html,
            len(value),
            value if is_html else text_to_html(value),
            str(item.get("base") or ""),
        )
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return (best[2], best[3]) if best else ("", "")


def _authors(entry: Mapping[str, Any]) -> tuple[str, ...]:
    names = [
        clean_text(a.get("name") or a.get("email"))
        for a in entry.get("authors") or ()
        if isinstance(a, Mapping)
    ]
    if not any(names):
        names = [clean_text(entry.get("author"))]
    return dedupe(names)


def _enclosures(entry: Mapping[str, Any], base: str) -> tuple[Enclosure, ...]:
    found: dict[str, Enclosure] = {}
    for item in entry.get("enclosures") or ():
        one = enclosure(item.get("href") or item.get("url"), item.get("type"), item.get("length"), base)
        if one is not None and one.url not in found:
            found[one.url] = one
    return tuple(found.values())


def _image(entry: Mapping[str, Any], enclosures: tuple[Enclosure, ...], base: str) -> str:
    """The lead image the feed names: media:content/thumbnail, itunes:image, an image enclosure."""
    for media in entry.get("media_content") or ():
        kind = str(media.get("type") or "")
        if media.get("medium") == "image" or kind.startswith("image/"):
            url = absolute_url(media.get("url"), base)
            if url:
                return url
    for thumb in entry.get("media_thumbnail") or ():
        url = absolute_url(thumb.get("url"), base)
        if url:
            return url
    image = entry.get("image")
    if isinstance(image, Mapping):
        url = absolute_url(image.get("href") or image.get("url"), base)
        if url:
            return url
    for item in enclosures:
        if item.type.startswith("image/"):
            return item.url
    return ""


def parse_entries(
    parsed: Any, meta: FeedMeta, source_url: str, source_name: str, feed_url: str, warnings: list[str]
) -> list[Article]:
    articles: list[Article] = []
    digests = parsed.get("digests") or ()
    loose = is_loose(parsed)
    for index, entry in enumerate(parsed.get("entries") or ()):
        try:
            digest = digests[index] if index < len(digests) else ""
            article = entry_article(entry, meta, source_url, source_name, feed_url, digest, loose=loose)
        except Exception as exc:  # noqa: BLE001 (one bad entry is dropped, never the whole feed)
            warnings.append(f"item {index}: dropped: {type(exc).__name__}: {exc}"[:300])
            continue
        if is_empty(article):
            warnings.append(f"item {index}: dropped: no title, link or content")
            continue
        articles.append(article)
    return articles
