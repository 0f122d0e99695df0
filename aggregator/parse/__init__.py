"""Parse stage: feed bytes + response headers -> ParsedFeed of Articles; pure, never fetches or cleans.

Order: empty check -> hostile-markup refusal (before any parser) -> JSON Feed, or the lxml fast path with
feedparser as its fallback (the fast path returns None for anything it cannot reproduce exactly:
tests/test_parse_fast.py) -> Articles
-> ids made unique within the feed. HTML is kept as given; the clean stage sanitizes and resolves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from feedparser import CharacterEncodingOverride, NonXMLContentType

from aggregator.errors import ParseError
from aggregator.model import Article, FeedMeta, ParsedFeed

from . import dates, feedparser_private, guard, jsonfeed, xmlfeed  # noqa: F401 (dates registers a handler)

# The fast path ports feedparser's private rules: with a feedparser whose internals moved it stays off
# (feedparser parses every document) instead of breaking this import.
if feedparser_private.AVAILABLE:
    from . import fast
else:
    fast = None  # type: ignore[assignment]
from .fields import assign_ids

__all__ = ["parse_feed"]

# bozo reasons that say nothing about the document's structure: a feed with no items is still a feed.
_BENIGN = (NonXMLContentType, CharacterEncodingOverride)
_CUT_OFF = ("unclosed token", "unclosed CDATA section", "no element found")


def parse_feed(
    body: bytes,
    headers: Mapping[str, str],
    source_url: str,
    source_name: str,
    feed_url: str = "",
    known: frozenset[str] = frozenset(),
) -> ParsedFeed:
    """Parse one fetched document. Raises ParseError with a one-line reason when it is not a usable feed.

    known: fingerprints of items already stored; the fast path leaves out the items it recognises by
    their raw digest (parse/known.py) and lists them in ParsedFeed.skipped.
    """
    feed_url = feed_url or source_url
    content_type = _header(headers, "content-type").lower()
    guard.check_not_empty(body)
    text = guard.text_for_checks(body)
    guard.refuse_hostile_markup(text)
    warnings: list[str] = []
    skipped: tuple[str, ...] = ()
    if jsonfeed.looks_like_json(body, content_type) and body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (
        b"{",
        b"[",
    ):
        meta, articles = _parse_json(body, source_url, source_name, feed_url, warnings)
        parser = "json"
    else:
        salt = repr((source_url, source_name, feed_url))
        parsed = fast.parse(body, content_type, feed_url, known, salt) if fast else None
        parser = "fast"
        if not parsed:
            parsed, parser = xmlfeed.run_feedparser(body, content_type, feed_url), "feedparser"
        skipped = tuple(parsed.get("skipped") or ())
        meta, articles = _read_xml(parsed, text, content_type, source_url, source_name, feed_url, warnings)
    return ParsedFeed(
        meta=meta,
        articles=assign_ids(articles, source_url, warnings),
        warnings=tuple(warnings),
        skipped=skipped,
        parser=parser,
    )


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def _parse_json(
    body: bytes, source_url: str, source_name: str, feed_url: str, warnings: list[str]
) -> tuple[FeedMeta, list[Article]]:
    document = jsonfeed.load_json(body)
    meta = jsonfeed.feed_meta(document, feed_url)
    articles = jsonfeed.parse_items(document, meta, (source_url, source_name, feed_url), warnings)
    if not articles and document["items"]:
        raise ParseError(f"invalid JSON Feed: none of its {len(document['items'])} items is usable")
    return meta, articles


def _read_xml(
    parsed: Any,
    text: str,
    content_type: str,
    source_url: str,
    source_name: str,
    feed_url: str,
    warnings: list[str],
) -> tuple[FeedMeta, list[Article]]:
    if not parsed.get("version") and not parsed.get("entries"):
        raise guard.not_a_feed_error(text, content_type, feed_url)
    meta = xmlfeed.feed_meta(parsed, feed_url)
    articles = xmlfeed.parse_entries(parsed, meta, source_url, source_name, feed_url, warnings)
    if articles and _is_cut_off(parsed):
        # The document ends inside its last item (dropped connection, unclosed CDATA): that item is half.
        warnings.append(f"document cut off: last item dropped ({_bozo_reason(parsed)})")
        articles.pop()
    is_broken = parsed.get("bozo") and not isinstance(parsed.get("bozo_exception"), _BENIGN)
    if is_broken and not articles:
        raise ParseError(f"not a well-formed feed: {_bozo_reason(parsed)}")
    if is_broken or isinstance(parsed.get("bozo_exception"), CharacterEncodingOverride):
        warnings.append(f"feed parsed leniently: {_bozo_reason(parsed)}")
    return meta, articles


def _is_cut_off(parsed: Any) -> bool:
    message = str(parsed.get("bozo_exception") or "")
    return any(marker in message for marker in _CUT_OFF)


def _bozo_reason(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
