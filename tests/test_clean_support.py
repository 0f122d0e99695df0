"""Helpers for the clean tests: real corpus items as Articles (no tests here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import feedparser

from aggregator.model import Article, Enclosure, FeedMeta

from conftest import CORPUS
FEED_SUFFIXES = (".xml", ".rss", ".atom", ".rdf", "")


def corpus_files() -> list[Path]:
    files = [p for p in CORPUS.joinpath("feeds").rglob("*") if p.is_file() and p.suffix in FEED_SUFFIXES]
    return sorted(files) + sorted(CORPUS.joinpath("rsshub").glob("*.xml"))


@cache
def articles_of(path: Path) -> tuple[Article, ...]:
    """Articles straight from feedparser, with its sanitizer and URL resolution off: clean does both.

    Cached: several clean tests walk the whole corpus, and feedparser is the slow part."""
    return tuple(_articles_of(path))


def _articles_of(path: Path) -> Iterator[Article]:
    parsed = feedparser.parse(path.read_bytes(), sanitize_html=False, resolve_relative_uris=False)
    feed = FeedMeta(title=parsed.feed.get("title", ""), link=parsed.feed.get("link", ""))
    for i, entry in enumerate(parsed.entries):
        contents = entry.get("content") or [{}]
        content = contents[0].get("value", "")
        base = contents[0].get("base", "") or ""
        media = [*entry.get("media_content", []), *entry.get("media_thumbnail", [])]
        yield Article(
            id=f"{path.name}#{i}",
            source_url=str(path),
            source_name=path.name,
            title=entry.get("title", ""),
            link=entry.get("link", ""),
            summary=entry.get("summary", "") if content else "",
            content_html=content or entry.get("summary", ""),
            image=next((m.get("url", "") for m in media if m.get("url")), ""),
            base_url=base if base.startswith("http") else "",
            feed=feed,
            enclosures=tuple(
                Enclosure(url=e.get("href", ""), type=e.get("type", "")) for e in entry.get("enclosures", []) if e.get("href")
            ),
        )


def article_to_json(article: Article) -> dict[str, object]:
    return {
        "title": article.title, "link": article.link, "summary": article.summary,
        "content_html": article.content_html, "image": article.image, "base_url": article.base_url,
        "feed_link": article.feed.link, "enclosures": [[e.url, e.type] for e in article.enclosures],
    }


def article_from_json(data: dict[str, object], name: str) -> Article:
    return Article(
        id=name, source_url=name, source_name=name, title=str(data["title"]), link=str(data["link"]),
        summary=str(data["summary"]), content_html=str(data["content_html"]), image=str(data["image"]),
        base_url=str(data["base_url"]), feed=FeedMeta(link=str(data["feed_link"])),
        enclosures=tuple(Enclosure(url=u, type=t) for u, t in data["enclosures"]),  # type: ignore[union-attr]
    )


def load_json(path: Path) -> dict[str, object]:
    return json.loads(path.read_text("utf-8"))  # type: ignore[no-any-return]
