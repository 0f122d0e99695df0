"""Helpers every output format shares: safe text, IRIs, slugs, language, ordering and ageing of articles; no I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from html import unescape
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from aggregator.model import Article, OutputConfig
from aggregator.text import collapse_whitespace, strip_bidi_controls, strip_invalid_xml_chars

SLUG = re.compile(r"[a-z0-9_-]{1,100}")  # fullmatch only: "$" would let "news\n" through
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TITLE = 1000  # hostile/xml very_long_title: bounded output titles
MAX_CATEGORIES = 20  # hostile/xml many_categories: bounded per entry
MAX_NAME = 200
DERIVED_TITLE = 80
# RFC 3987 allows these unescaped; everything else in a URL gets percent-encoded.
_IRI_SAFE = ":/?#[]@!$&'()*+,;=%~-._"
_LANG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class FeedSpec:
    """One output feed: a category, or "all" for the combined feed."""

    slug: str
    title: str
    subtitle: str


def text(value: str, limit: int = 0) -> str:
    """XML-safe, single-line text without bidi override controls (every title, name, tag and summary
    published goes through here), optionally cut to `limit` characters (with an ellipsis)."""
    cleaned = collapse_whitespace(strip_bidi_controls(strip_invalid_xml_chars(value)))
    if limit and len(cleaned) > limit:
        return cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def html(value: str) -> str:
    """XML-safe HTML; the clean stage already sanitized it."""
    return strip_invalid_xml_chars(value).strip()


@lru_cache(maxsize=4096)  # pure; the same links and source URLs recur in every feed an article is in
def web_iri(url: str) -> str:
    """`url` as a valid absolute http(s) URI, or "" when it is not one (javascript:, relative, junk).

    Characters no URI allows (spaces, quotes, non-ASCII in the path) are percent-encoded as UTF-8
    and a non-ASCII host becomes punycode, so every reader and the W3C validator accept it.
    """
    url = strip_invalid_xml_chars(url).strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.username is not None:
            return ""
        netloc, path = parts.netloc, parts.path or "/"  # RFC 3986 6.2.3: an empty path is "/"
        if not netloc.isascii():
            host = parts.hostname.encode("idna").decode("ascii")
            netloc = f"{host}:{parts.port}" if parts.port else host
        url = urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))
    except (ValueError, UnicodeError):
        return ""
    return quote(url, safe=_IRI_SAFE)


@lru_cache(maxsize=4096)
def _entry_id(article_id: str, source_url: str) -> str:
    """entry_id, by value: pure, so cached (an article is in its category feed and in all.atom)."""
    value = strip_invalid_xml_chars(article_id).strip()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", value) and len(value) <= 2048:
        return quote(value, safe=_IRI_SAFE)
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, strip_invalid_xml_chars(source_url + "\n" + article_id)))


def entry_id(article: Article) -> str:
    """The article's id when it is an absolute IRI (it should be), else a stable urn:uuid from it."""
    return _entry_id(article.id, article.source_url)


def entry_title(article: Article) -> str:
    """The title, or one derived from the summary, link or source (feedgen requires a title)."""
    title = text(article.title, MAX_TITLE)
    if title:
        return title
    for fallback in (article.summary, _strip_tags(article.content_html)):
        derived = text(fallback, DERIVED_TITLE)
        if derived:
            return derived
    return web_iri(article.link) or source_name(article) or "Untitled"


def _strip_tags(markup: str) -> str:
    return re.sub(r"<[^>]*>", " ", markup)


def authors(article: Article) -> list[str]:
    """The article's authors, falling back to its source name."""
    names = unique(text(name, MAX_NAME) for name in article.authors)
    return names or [source_name(article) or "unknown"]


# What is published about a source (issue 20): private feeds carry their credentials in the URL
# (user:pass@, ?token=, ?key=), so no output holds a source URL's userinfo or query string, nor any
# text about the source (its name, the feed's own id, title and home link) that contains them.
_SECRET_MIN = 6  # query values shorter than this (?feed=rss2, ?format=atom) are not taken for credentials


@lru_cache(maxsize=1024)
def source_secrets(source_url: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The parts of a source URL no output may contain: (its userinfo and its whole query string; each
    query value, also percent-decoded, of _SECRET_MIN characters or more). The values are looked for
    only in URLs about the source (the feed's own id and link echo the fetched URL, parameters in any
    order); a title holding "feed" must not go because the URL says ?format=feed. ((), ()) for a URL
    with neither userinfo nor query."""
    head, _, query = source_url.partition("#")[0].partition("?")
    _, has_scheme, rest = head.partition("://")
    userinfo = (rest if has_scheme else "").split("/", 1)[0].rpartition("@")[0]
    whole = [userinfo + "@", unquote(userinfo)] if userinfo else []
    values: list[str] = []
    if query:
        whole.append(query)
        for pair in query.replace(";", "&").split("&"):
            value = pair.partition("=")[2]
            values.extend(v for v in (value, unquote(value.replace("+", " "))) if len(v) >= _SECRET_MIN)
    return tuple(dict.fromkeys(whole)), tuple(dict.fromkeys(values))


def reveals(value: str, source_url: str, *, is_url: bool = False) -> bool:
    """True when `value` contains a part of `source_url` that must not be published."""
    whole, values = source_secrets(source_url)
    return any(part in value for part in whole) or is_url and any(part in value for part in values)


def public_source_url(source_url: str) -> str:
    """The source URL as published (atom:source's self link, RSS <source url>): only when it has no
    userinfo and no query string, else "" (the same URL without them would name another document)."""
    return "" if source_secrets(source_url)[0] else web_iri(source_url)


def about_source(value: str, article: Article, limit: int = MAX_NAME, *, is_url: bool = False) -> str:
    """`value` (the source's name, the feed's title; with `is_url` its id or link) as published text, or
    "" when it would reveal a private part of the source URL."""
    cleaned = text(value, limit)
    hidden = reveals(cleaned, article.source_url, is_url=is_url) or reveals(value, article.source_url, is_url=is_url)
    return "" if hidden else cleaned


def source_name(article: Article) -> str:
    """The source's name as published; its host when the name would reveal the URL's private parts
    (a name defaults to the URL's host, which may carry user:pass@)."""
    return about_source(article.source_name, article) or _host(article.source_url)


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        return f"{host}:{parts.port}" if host and parts.port else host
    except ValueError:
        return ""


def related_links(article: Article, link: str) -> list[dict[str, str]]:
    """The same story from other sources (publish.similar): link rel="related", titled with the source."""
    links: list[dict[str, str]] = []
    seen = {link}
    for href, name in article.related:
        url = web_iri(href)
        if url and url not in seen:
            seen.add(url)
            title = text(name, MAX_NAME)
            links.append({"rel": "related", "href": url, **({"title": title} if title else {})})
    return links


def categories(article: Article, categories_of: Mapping[str, Sequence[str]]) -> list[str]:
    """The output categories of the article's source, then its own tags; unique, bounded."""
    names = list(categories_of.get(article.source_url, ())) + list(article.tags)
    return unique(text(name, MAX_NAME) for name in names)[:MAX_CATEGORIES]


def unique(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        if value and value not in seen:
            seen[value] = None
    return list(seen)


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def updated_of(article: Article) -> datetime:
    return utc(article.updated) or utc(article.published) or utc(article.feed.updated) or EPOCH


def published_of(article: Article) -> datetime:
    return utc(article.published) or updated_of(article)


def order_articles(articles: Iterable[Article], max_entries: int) -> list[Article]:
    """Newest first by updated, ties by published then id; one entry per id; at most `max_entries`."""
    ordered = sorted(articles, key=lambda a: a.id)
    ordered.sort(key=lambda a: (updated_of(a), published_of(a)), reverse=True)
    by_id: dict[str, Article] = {}
    for article in ordered:  # a repeated id keeps its newest version
        by_id.setdefault(entry_id(article), article)
    unique_articles = list(by_id.values())
    return unique_articles[:max_entries] if max_entries > 0 else unique_articles


def within_age(articles: Iterable[Article], max_age_s: float, now: datetime | None) -> list[Article]:
    """Drop articles older than `max_age_s` before `now` (no-op when either is unset)."""
    when = utc(now)
    if not max_age_s or when is None:
        return list(articles)
    cutoff = when - timedelta(seconds=max_age_s)
    return [a for a in articles if updated_of(a) >= cutoff]


def feed_updated(articles: Sequence[Article]) -> datetime:
    """The newest entry's updated: never now, so the same articles give the same bytes."""
    return max((updated_of(a) for a in articles), default=EPOCH)


def base_url(output: OutputConfig) -> str:
    url = web_iri(output.base_url) or "http://localhost/feeds/"
    return url if url.endswith("/") else url + "/"


def feed_url(output: OutputConfig, slug: str, extension: str) -> str:
    return base_url(output) + check_slug(slug) + "." + extension


def check_slug(slug: str) -> str:
    """Only [a-z0-9_-]: a slug becomes a file name and must never leave the output folder."""
    if not SLUG.fullmatch(slug):
        raise ValueError(f"unsafe feed slug {slug!r}: only [a-z0-9_-] allowed")
    return slug


def language(value: str) -> str:
    """A BCP 47-shaped language tag, or "" (xml:lang must be well-formed)."""
    lang = strip_invalid_xml_chars(value).strip()
    return lang if _LANG.match(lang) else ""


def feed_title(spec: FeedSpec) -> str:
    return text(spec.title, MAX_TITLE) or spec.slug


def site_title(output: OutputConfig) -> str:
    return text(output.title, MAX_TITLE) or "aggregator"


def feed_formats(output: OutputConfig) -> list[str]:
    """The feed formats published, in order: Atom always, then RSS and JSON Feed when configured."""
    return ["atom"] + [fmt for fmt in ("rss", "json") if fmt in output.formats]


def feed_files(output: OutputConfig, slug: str) -> list[str]:
    """Every file one feed is published as: its formats, then its page (<slug>.html) when output.html."""
    return [f"{check_slug(slug)}.{ext}" for ext in feed_formats(output) + (["html"] if output.html else [])]


def lead_text(article: Article, limit: int) -> str:
    """What a page shows under the title: the summary, else the content's text; plain, one line."""
    return text(article.summary, limit) or text(unescape(_strip_tags(article.content_html)), limit)
