"""JSON Feed 1.1 rendering (https://jsonfeed.org/version/1.1), optional format; pure; must not write files."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aggregator.model import Article, OutputConfig
from aggregator.publish import formatting
from aggregator.publish.formatting import FeedSpec

VERSION = "https://jsonfeed.org/version/1.1"


def render_json_feed(
    spec: FeedSpec,
    articles: Sequence[Article],
    output: OutputConfig,
    categories_of: Mapping[str, Sequence[str]],
) -> bytes:
    """The JSON Feed for `spec`: same entries and order as the Atom feed."""
    ordered = formatting.order_articles(articles, output.max_entries)
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": formatting.feed_title(spec),
        "home_page_url": formatting.base_url(output),
        "feed_url": formatting.feed_url(output, spec.slug, "json"),
    }
    subtitle = formatting.text(spec.subtitle, formatting.MAX_TITLE)
    if subtitle:
        feed["description"] = subtitle
    for key, url in (("icon", output.logo), ("favicon", output.icon)):
        if formatting.web_iri(url):
            feed[key] = formatting.web_iri(url)
    feed["authors"] = [{"name": formatting.text(output.author, formatting.MAX_NAME) or "aggregator"}]
    if formatting.language(output.language):
        feed["language"] = formatting.language(output.language)
    hub = formatting.web_iri(output.websub_hub)
    if hub:
        feed["hubs"] = [{"type": "WebSub", "url": hub}]
    feed["items"] = [_item(article, categories_of) for article in ordered]
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _item(article: Article, categories_of: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    item: dict[str, Any] = {"id": formatting.entry_id(article)}
    link = formatting.web_iri(article.link)
    if link:
        item["url"] = link
    item["title"] = formatting.entry_title(article)
    content = formatting.html(article.content_html)
    summary = formatting.text(article.summary)
    # 1.1 requires content_html or content_text on every item.
    if content:
        item["content_html"] = content
    else:
        item["content_text"] = summary or item["title"]
    if summary:
        item["summary"] = summary
    image = formatting.web_iri(article.image)
    if image:
        item["image"] = image
    item["date_published"] = formatting.published_of(article).isoformat()
    item["date_modified"] = formatting.updated_of(article).isoformat()
    item["authors"] = [{"name": name} for name in formatting.authors(article)]
    tags = formatting.categories(article, categories_of)
    if tags:
        item["tags"] = tags
    attachments = _attachments(article)
    if attachments:
        item["attachments"] = attachments
    if formatting.language(article.language):
        item["language"] = formatting.language(article.language)
    related = formatting.related_links(article, link)
    if related:  # JSON Feed has no related links: an extension (keys starting with "_" are for those)
        item["_aggregator"] = {"related": [{"url": r["href"], **({"title": r["title"]} if "title" in r else {})}
                                           for r in related]}
    return item


def _attachments(article: Article) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for enclosure in article.enclosures:
        url = formatting.web_iri(enclosure.url)
        if not url or url in seen:
            continue
        seen.add(url)
        attachment: dict[str, Any] = {
            "url": url,
            "mime_type": formatting.text(enclosure.type) or "application/octet-stream",
        }
        if enclosure.length > 0:
            attachment["size_in_bytes"] = enclosure.length
        result.append(attachment)
    return result
