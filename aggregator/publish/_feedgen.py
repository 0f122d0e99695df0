"""Builds feedgen documents (Atom and RSS) from Articles; owns what feedgen lacks via one extension.

feedgen gaps handled here: `updated`/`lastBuildDate` default to now (we set them from the newest
entry), `add_entry` prepends (we append), Atom `source` holds only title and link (our extension
writes id, title, links and updated), no hub link in RSS, no media:thumbnail outside a group.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

import aggregator
from aggregator.model import Article, OutputConfig
from aggregator.publish import formatting
from aggregator.publish.formatting import FeedSpec

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
_EXT = "aggregator"


class _FeedExtension(BaseExtension):  # type: ignore[misc]
    """Feed level: the WebSub hub link in RSS (Atom gets it from feedgen's own link list)."""

    def __init__(self) -> None:
        self.hub = ""

    def extend_ns(self) -> dict[str, str]:
        return {"media": MEDIA_NS, "dc": DC_NS}

    def extend_rss(self, feed: Any) -> Any:
        if self.hub:
            channel = feed.find("channel")
            etree.SubElement(channel, f"{{{ATOM_NS}}}link", href=self.hub, rel="hub")
        return feed


class _EntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """Entry level: links, media:thumbnail (lead image), atom:source (provenance), dc:creator (RSS).

    feedgen 1.0 writes entry links without rel/type/length (it reads them back from the new
    element), so every link becomes "alternate"; in Atom we drop its links and write our own.
    """

    def __init__(self) -> None:
        self.image = ""
        self.links: list[dict[str, str]] = []
        self.source: dict[str, str] = {}
        self.creators: list[str] = []

    def extend_atom(self, entry: Any) -> Any:
        # feedgen's root declares Atom as the default namespace by attribute: its children are
        # unqualified, so ours must be too (a qualified one would get a stray ns0: prefix).
        for link in entry.findall("link"):
            entry.remove(link)
        for attrs in self.links:
            etree.SubElement(entry, "link", attrs)
        self._thumbnail(entry)
        if self.source:
            source = etree.SubElement(entry, "source")
            for name in ("id", "title", "updated"):
                if self.source.get(name):
                    etree.SubElement(source, name).text = self.source[name]
            for rel in ("alternate", "self"):
                if self.source.get(rel):
                    etree.SubElement(source, "link", rel=rel, href=self.source[rel])
        return entry

    def extend_rss(self, entry: Any) -> Any:
        for name in self.creators:
            etree.SubElement(entry, f"{{{DC_NS}}}creator").text = name
        self._thumbnail(entry)
        return entry

    def _thumbnail(self, entry: Any) -> None:
        if self.image:
            etree.SubElement(entry, f"{{{MEDIA_NS}}}thumbnail", url=self.image)


def build_feed(
    spec: FeedSpec,
    articles: Sequence[Article],
    output: OutputConfig,
    categories_of: Mapping[str, Sequence[str]],
    *,
    fmt: str,
    updated: datetime | None = None,
) -> FeedGenerator:
    """A FeedGenerator for `spec`, entries newest first; `articles` are already ordered and limited."""
    fg = FeedGenerator()
    fg.register_extension(_EXT, _FeedExtension, _EntryExtension, atom=True, rss=True)
    self_url = formatting.feed_url(output, spec.slug, fmt)
    fg.id(formatting.feed_url(output, spec.slug, "atom"))  # one identity whatever the format
    fg.title(formatting.feed_title(spec))
    subtitle = formatting.text(spec.subtitle, formatting.MAX_TITLE)
    if subtitle or fmt == "rss":  # RSS requires a channel description
        fg.subtitle(subtitle or formatting.feed_title(spec))
    fg.link(href=self_url, rel="self", type=_MEDIA_TYPES[fmt])
    hub = formatting.web_iri(output.websub_hub)
    if hub and fmt == "atom":
        fg.link(href=hub, rel="hub")
    elif hub:
        getattr(fg, _EXT).hub = hub
    # Last: feedgen uses the last link as RSS's channel <link>.
    fg.link(href=formatting.base_url(output), rel="alternate", type="text/html")
    fg.author({"name": formatting.text(output.author, formatting.MAX_NAME) or "aggregator"})
    fg.generator("aggregator", version=aggregator.__version__, uri=aggregator.PROJECT_URL)
    if fmt == "rss":
        fg.docs("https://www.rssboard.org/rss-specification")
    _feed_images(fg, output, spec)
    lang = formatting.language(output.language)
    if lang:
        fg.language(lang)
    updated = updated or formatting.feed_updated(articles)
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for article in articles:
        _add_entry(fg.add_entry(order="append"), article, categories_of, fmt)
    return fg


_MEDIA_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml"}


def _feed_images(fg: FeedGenerator, output: OutputConfig, spec: FeedSpec) -> None:
    icon, logo = formatting.web_iri(output.icon), formatting.web_iri(output.logo)
    if icon:
        fg.icon(icon)
    if logo:
        # In RSS feedgen writes <image>, which needs the channel's title and link.
        fg.logo(logo)
        fg.image(url=logo, title=formatting.feed_title(spec), link=formatting.base_url(output))


def _add_entry(fe: FeedEntry, article: Article, categories_of: Mapping[str, Sequence[str]], fmt: str) -> None:
    fe.id(formatting.entry_id(article))
    fe.guid(formatting.entry_id(article), permalink=False)
    fe.title(formatting.entry_title(article))
    ext: _EntryExtension = getattr(fe, _EXT)
    link = formatting.web_iri(article.link)
    if link:
        fe.link(href=link, rel="alternate")  # for feedgen's checks and RSS; Atom: ext.links
        ext.links.append({"rel": "alternate", "href": link})
    if fmt == "atom":  # RSS 2.0 has no related links
        ext.links.extend(formatting.related_links(article, link))
    fe.published(formatting.published_of(article))
    fe.updated(formatting.updated_of(article))
    names = formatting.authors(article)
    if fmt == "atom":
        for name in names:
            fe.author({"name": name})
    else:
        ext.creators = names  # RSS <author> must be an e-mail address: use dc:creator
    for term in formatting.categories(article, categories_of):
        fe.category({"term": term})
    _add_text(fe, article, link, fmt)
    _add_enclosures(fe, ext, article, fmt)
    ext.image = formatting.web_iri(article.image)
    ext.source = _source(article)
    if fmt == "rss":
        source_url = formatting.public_source_url(article.source_url)
        if source_url:  # <source> requires its url: left out for a private one
            title = formatting.about_source(article.feed.title, article, formatting.MAX_TITLE) or formatting.source_name(article)
            fe.source(url=source_url, title=title or source_url)


def _add_text(fe: FeedEntry, article: Article, link: str, fmt: str) -> None:
    summary = formatting.text(article.summary)
    content = formatting.html(article.content_html)
    if summary and fmt == "rss":
        # RSS <description> is HTML: plain text must be escaped, or "a < b" reads as markup.
        fe.summary(escape(summary, quote=False))
    elif summary:
        fe.summary(summary, type="text")
    if content:
        fe.content(content, type="html")
    elif not link and not summary:
        # Atom: an entry without an alternate link needs content (RFC 4287 4.1.1.1).
        fe.content(formatting.entry_title(article), type="text")
    elif not link and fmt == "atom":
        fe.content(summary, type="text")


def _add_enclosures(fe: FeedEntry, ext: _EntryExtension, article: Article, fmt: str) -> None:
    seen: set[str] = set()
    for enclosure in article.enclosures:
        url = formatting.web_iri(enclosure.url)
        if not url or url in seen:
            continue
        seen.add(url)
        mime = formatting.text(enclosure.type) or "application/octet-stream"
        if "/" not in mime or " " in mime:
            mime = "application/octet-stream"
        length = str(max(enclosure.length, 0))
        if fmt == "rss":
            fe.enclosure(url=url, length=length, type=mime)
            break  # RSS allows one enclosure per item: the first, as in the source
        ext.links.append({"rel": "enclosure", "href": url, "type": mime, "length": length})


def _source(article: Article) -> dict[str, str]:
    """atom:source: the original feed's id, title, links and updated, so provenance survives; none of
    them reveals a private source URL's userinfo or query (formatting.source_secrets)."""
    meta = article.feed
    source_url = formatting.public_source_url(article.source_url)
    alternate = formatting.about_source(formatting.web_iri(meta.link), article, 0, is_url=True)
    feed_id = formatting.about_source(formatting.web_iri(meta.id) or _urn_or_tag(meta.id), article, 0, is_url=True)
    # A source without its own date: the article's updated is a true lower bound for it.
    updated = formatting.utc(meta.updated) or formatting.updated_of(article)
    values = {
        "id": feed_id or source_url or alternate or _private_id(article.source_url),
        "title": formatting.about_source(meta.title, article, formatting.MAX_TITLE) or formatting.source_name(article),
        "alternate": alternate,
        "self": source_url,
        "updated": updated.isoformat() if updated else "",
    }
    return {key: value for key, value in values.items() if value}


def _private_id(source_url: str) -> str:
    """A stable id for a source whose URL is not published: a name-based UUID of it (SHA-1: the URL,
    and the token in it, cannot be read back)."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, formatting.text(source_url))) if source_url else ""


def _urn_or_tag(value: str) -> str:
    """urn:/tag: ids are IRIs too; other schemes (yt:channel:...) the validator flags, so skip them."""
    value = formatting.text(value)
    return value if re.match(r"^(urn:[a-z0-9][a-z0-9-]{0,31}|tag):\S+$", value, re.IGNORECASE) else ""
