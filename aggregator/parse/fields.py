"""Field helpers shared by the feedparser and JSON Feed readers: text, dates, URLs, final ids; pure."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urljoin

from aggregator.ids import content_key, derive_id, make_article_id
from aggregator.model import Article, Enclosure
from aggregator.text import collapse_whitespace, strip_invalid_xml_chars

_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>|<!--.*?-->", re.DOTALL)
_URL_JUNK = re.compile(r"[\x00-\x20\x7f]+")  # browsers drop these inside URLs ('java\tscript:')
_SAFE_SCHEMES = ("http", "https")
# An absolute http(s) URL that urljoin hands back unchanged whatever the base (urlparse and urlunparse
# round-trip it exactly): lower-case scheme, an ASCII host, no ";" params, no empty query or fragment,
# no whitespace or userinfo. Most links in feeds; urljoin itself is a sizeable part of parsing a feed.
_PLAIN_ABSOLUTE = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[^\s;?#]*)?(?:\?[^\s#]+)?(?:#\S+)?\Z")
_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")


def clean_text(value: object) -> str:
    """A plain-text field: str only, XML-invalid characters removed."""
    return strip_invalid_xml_chars(value) if isinstance(value, str) else ""


def html_to_text(markup: str) -> str:
    """Plain text of a small HTML fragment (titles): tags dropped, entities decoded exactly once."""
    without_code = _SCRIPT_STYLE.sub(" ", markup)
    return html.unescape(_TAG.sub(" ", without_code))


def title_text(value: str, content_type: str) -> str:
    text = html_to_text(value) if content_type in _HTML_TYPES else value
    return collapse_whitespace(strip_invalid_xml_chars(text))


def text_to_html(text: str) -> str:
    """Plain text as HTML paragraphs, escaped (content type text/plain, JSON Feed content_text)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs)


def join_url(base: str, url: str, join: Callable[[str, str], str] = urljoin) -> str:
    """join(base, url) (urljoin, or feedparser's wrapper of it), without parsing a plainly absolute url."""
    return url if _PLAIN_ABSOLUTE.match(url) else join(base, url)


def absolute_url(value: object, base: str) -> str:
    """An absolute http(s) URL, resolved against `base`; '' when missing or of another scheme."""
    if not isinstance(value, str):
        return ""
    url = _URL_JUNK.sub("", strip_invalid_xml_chars(value))
    if not url:
        return ""
    try:
        url = join_url(base, url) if base else url
    except ValueError:
        return ""
    scheme = url.split(":", 1)[0].lower()
    return url if scheme in _SAFE_SCHEMES and "://" in url else ""


def to_int(value: object) -> int:
    """A non-negative int from a feed's length attribute; 0 for anything unusable."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip()[:18])
    else:
        return 0
    return number if 0 <= number < 2**62 else 0


def enclosure(url: object, kind: object, length: object, base: str) -> Enclosure | None:
    href = absolute_url(url, base)
    if not href:
        return None
    return Enclosure(url=href, type=clean_text(kind).strip()[:200], length=to_int(length))


def utc_from_struct(value: object) -> datetime | None:
    """feedparser's *_parsed (a UTC struct_time) as an aware datetime; None when absent or impossible."""
    if not isinstance(value, tuple) or len(value) < 6:  # struct_time is a tuple subclass
        return None
    try:
        year, month, day, hour, minute, second = (int(v) for v in value[:6])
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def dedupe(values: list[str], limit: int = 0) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        text = collapse_whitespace(strip_invalid_xml_chars(value))
        if text and text not in seen:
            seen[text] = None
    result = tuple(seen)
    return result[:limit] if limit else result


def is_empty(article: Article) -> bool:
    return not (
        article.title or article.link or article.content_html or article.summary or article.enclosures
    )


# Titles were cut to this many characters when parsed, before issue 20 (filters must see them whole):
# an item known by its content (no guid, no link) keeps the id computed from the title as it was cut.
ID_TITLE_CHARS = 1000


def assign_ids(articles: list[Article], source_url: str, warnings: list[str]) -> tuple[Article, ...]:
    """Give every article its id; repeats of an id in one feed get a deterministic derived one."""
    seen: set[str] = set()
    result: list[Article] = []
    for index, article in enumerate(articles):
        title = article.title[:ID_TITLE_CHARS]
        article_id = make_article_id(source_url, article.original_id, article.link, title, article.content_html)
        if article_id in seen:
            key = "|".join((article.original_id, article.link, content_key(title, article.content_html)))
            article_id = derive_id(source_url, "repeat:" + key)
            repeat = 1
            while article_id in seen:
                repeat += 1
                article_id = derive_id(source_url, f"repeat{repeat}:" + key)
            warnings.append(
                f"item {index}: duplicate id {article.original_id or article.link!r:.80}; given {article_id}"
            )
        seen.add(article_id)
        result.append(replace(article, id=article_id))
    return tuple(result)


def resolve_base(explicit_base: str, default_base: str, link: str, feed_link: str, feed_url: str) -> str:
    """xml:base of the content if the feed set one, else the article link, feed link, feed URL."""
    if explicit_base and explicit_base != default_base:
        return explicit_base
    return link or feed_link or feed_url
