"""JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1) into Articles; a bad item is dropped, not the feed."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Any

from aggregator.errors import ParseError
from aggregator.model import Article, FeedMeta

from .fields import (
    absolute_url,
    clean_text,
    dedupe,
    enclosure,
    is_empty,
    resolve_base,
    text_to_html,
    title_text,
)

_VERSIONS = {"1": "json1", "1.1": "json11"}
MAX_TAGS = 50


def looks_like_json(body: bytes, content_type: str) -> bool:
    if "json" in content_type:
        return True
    head = body[:256].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def load_json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8-sig", "replace"))
    except ValueError as exc:
        raise ParseError(f"invalid JSON Feed: {exc}") from exc
    if not isinstance(document, dict):
        raise ParseError("invalid JSON Feed: the top level is not an object")
    items = document.get("items")
    if not isinstance(items, list):
        raise ParseError("invalid JSON Feed: items is not a list")
    version = document.get("version")
    if not (isinstance(version, str) and "jsonfeed.org/version/" in version):
        raise ParseError("invalid JSON Feed: no jsonfeed.org version")
    return document


def parse_date(value: object) -> datetime | None:
    """RFC 3339 as aware UTC; None for anything else (never 'now')."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # RFC 3339 requires an offset; UTC is the usual intent
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def feed_meta(document: dict[str, Any], feed_url: str) -> FeedMeta:
    version = str(document.get("version")).rstrip("/").rsplit("/", 1)[-1]
    return FeedMeta(
        title=title_text(clean_text(document.get("title")), "text/plain"),
        link=absolute_url(document.get("home_page_url"), feed_url),
        id=absolute_url(document.get("feed_url"), feed_url),
        updated=None,
        language=clean_text(document.get("language")).strip()[:35],
        ttl_s=None,
        format=_VERSIONS.get(version, "json11"),
    )


def _str(item: dict[str, Any], key: str) -> str:
    """A string field; a present value of another type makes the item unusable."""
    value = item.get(key)
    if value is None:
        return ""
    if (
        not isinstance(value, (str, int))
        or isinstance(value, bool)
        or (isinstance(value, int) and key != "id")
    ):
        raise TypeError(f"{key} is a {type(value).__name__}, not a string")
    return clean_text(str(value))


def _authors(item: dict[str, Any], document: dict[str, Any]) -> tuple[str, ...]:
    people = item.get("authors")
    if not isinstance(people, list):
        single = item.get("author")
        people = [single] if isinstance(single, dict) else []
    names = [clean_text(p.get("name")) for p in people if isinstance(p, dict)]
    if not any(names) and item is not document:
        return _authors(document, document)
    return dedupe(names)


def item_article(
    item: object, meta: FeedMeta, document: dict[str, Any], source: tuple[str, str, str]
) -> Article:
    source_url, source_name, feed_url = source
    if not isinstance(item, dict):
        raise TypeError(f"item is a {type(item).__name__}, not an object")
    link = absolute_url(_str(item, "url") or _str(item, "external_url"), meta.link or feed_url)
    html_body, text_body = _str(item, "content_html"), _str(item, "content_text")
    tags = item.get("tags")
    tags = (
        [tags] if isinstance(tags, str) else tags if isinstance(tags, list) else []
    )  # seen in the wild: one string
    base_url = resolve_base("", "", link, meta.link, feed_url)
    attachments = item.get("attachments")
    enclosures = tuple(
        one
        for a in (attachments if isinstance(attachments, list) else ())
        if isinstance(a, dict)
        and (one := enclosure(a.get("url"), a.get("mime_type"), a.get("size_in_bytes"), base_url)) is not None
    )
    image = absolute_url(_str(item, "image") or _str(item, "banner_image"), base_url)
    if not image:
        image = next((e.url for e in enclosures if e.type.startswith("image/")), "")
    return Article(
        id="",
        source_url=source_url,
        source_name=source_name,
        original_id=_str(item, "id"),
        # JSON Feed titles are plain text, but generators often entity-encode them: decode exactly once.
        title=title_text(html.unescape(_str(item, "title")), "text/plain"),  # whole, as in xmlfeed
        link=link,
        authors=_authors(item, document),
        published=parse_date(item.get("date_published")),
        updated=parse_date(item.get("date_modified")),
        summary=_str(item, "summary"),
        content_html=html_body or text_to_html(text_body),
        tags=dedupe([clean_text(t) for t in tags or () if isinstance(t, str)], MAX_TAGS),
        enclosures=enclosures,
        image=image,
        base_url=base_url,
        language=clean_text(item.get("language")).strip()[:35] or meta.language,
        feed=meta,
    )


def parse_items(
    document: dict[str, Any], meta: FeedMeta, source: tuple[str, str, str], warnings: list[str]
) -> list[Article]:
    articles: list[Article] = []
    for index, item in enumerate(document["items"]):
        try:
            article = item_article(item, meta, document, source)
        except (TypeError, ValueError) as exc:
            warnings.append(f"item {index}: dropped: {exc}"[:300])
            continue
        if is_empty(article):
            warnings.append(f"item {index}: dropped: no title, link or content")
            continue
        articles.append(article)
    return articles
