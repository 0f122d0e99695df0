"""Where a web page says its feeds are: page bytes + the page's URL -> candidate feed URLs; pure, fetches nothing.

Candidates come in three tiers, each in the order worth trying (issue 22, item 1):
1. advertised: `<link rel="alternate">` with an RSS, Atom, RDF, JSON Feed or JSON type, and `<link rel="feed">`,
   in document order;
2. linked: `<a href>` links that look like feeds (a feed `type`, or a path such as /feed, /rss.xml, *.atom,
   or ?feed=rss2), links to the page's own site first;
3. usual: /feed, /feed/, /rss, /rss.xml, /atom.xml, ... under the page's folder, then at the site root.
Relative addresses resolve against `<base href>` (itself against the page URL), else the page URL.
Pages in the wild are broken HTML: BeautifulSoup on lxml's parser reads what a browser would.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

from bs4 import BeautifulSoup, UnicodeDammit
from bs4.element import Tag
from bs4.filter import SoupStrainer

FEED_TYPES = frozenset({
    "application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json",
    "application/json", "application/x-rss+xml", "application/x-atom+xml",
})
USUAL_PATHS = ("feed", "feed/", "rss", "rss.xml", "atom.xml", "index.xml", "feed.xml", "feed.json", "atom",
               "index.rss")
MAX_PER_TIER = 10  # a page listing hundreds of feed-like links (a blogroll) costs at most this many fetches

# a path segment or file name that names a feed: /feed, /feeds/all, /rss.xml, /index.xml (Hugo), /x.atom
_FEED_PATH = re.compile(r"(?i)(?:^|/)(?:feeds?|rss|atom)(?:/|$|\.(?:xml|json|rss|atom|rdf)$)"
                        r"|\.(?:rss|atom|rdf)$|(?:^|/)(?:[^/]*(?:rss|atom|feed)[^/]*|index)\.xml$")
_FEED_QUERY = re.compile(r"(?i)(?:^|&)(?:feed|format)=(?:rss2?|atom|rdf|json|feed)(?:&|$)")
_FEED_WORD = re.compile(r"(?i)feed|rss|atom|xml|rdf|json")  # in every address the two above match
_COMMENTS = re.compile(r"(?i)comment|评论|留言|kommentar|commentaire|comentario")


@dataclass(frozen=True)
class Candidate:
    url: str  # absolute http(s), without a fragment
    title: str = ""  # the link's title attribute (or an <a>'s text): what the page calls it


@dataclass(frozen=True)
class PageLinks:
    advertised: tuple[Candidate, ...]
    linked: tuple[Candidate, ...]


def find_feed_links(page: bytes, page_url: str, content_type: str = "") -> PageLinks:
    """The feeds a page advertises and the feed-like links in it, in the order to try them."""
    text = _decode(page, content_type)
    with warnings.catch_warnings():  # bs4 warns about XML read as HTML and about short inputs: both fine here
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(text, "lxml", parse_only=SoupStrainer(["base", "link", "a"]))
    base = page_url
    first_base = soup.find("base", href=True)
    if isinstance(first_base, Tag):
        base = urljoin(page_url, _attr(first_base, "href"))
    advertised: list[Candidate] = []
    linked: list[Candidate] = []
    for tag in soup.find_all(["link", "a"], href=True):
        if not isinstance(tag, Tag):
            continue
        if tag.name == "link" and _is_advertised_feed(tag):
            if url := _absolute(base, _attr(tag, "href")):
                advertised.append(Candidate(url, _attr(tag, "title")))
        elif tag.name == "a" and _may_be_feed(tag):
            if (url := _absolute(base, _attr(tag, "href"))) and _looks_like_feed(tag, url):
                text = _attr(tag, "title") or " ".join(tag.get_text(" ").split())
                linked.append(Candidate(url, text[:200]))
    host = urlsplit(page_url).hostname
    linked.sort(key=lambda c: urlsplit(c.url).hostname != host)  # stable: document order within each group
    return PageLinks(_unique(advertised)[:MAX_PER_TIER], _unique(linked)[:MAX_PER_TIER])


def usual_feed_urls(page_url: str) -> tuple[Candidate, ...]:
    """The paths sites usually serve their feed at, under the page's folder and then at the site root."""
    folder = urljoin(page_url, "./")
    root = urljoin(page_url, "/")
    bases = [folder, root] if folder != root else [root]
    return tuple(_unique([Candidate(urljoin(b, path)) for b in bases for path in USUAL_PATHS]))


def says_comments(*texts: str) -> bool:
    """A comments feed ("Comments for X", /comments/feed/): never the main feed while another is offered."""
    return any(_COMMENTS.search(text) for text in texts)


def _is_advertised_feed(tag: Tag) -> bool:
    rel = {r.lower() for r in _words(tag.get("rel"))}
    kind = _attr(tag, "type").split(";")[0].strip().lower()
    return ("alternate" in rel and kind in FEED_TYPES) or ("feed" in rel and kind in FEED_TYPES | {""})


def _is_feed_type(tag: Tag) -> bool:
    return _attr(tag, "type").split(";")[0].strip().lower() in FEED_TYPES


def _may_be_feed(tag: Tag) -> bool:
    """Cheap first look at an <a>: most links of a page name no feed and need not be resolved."""
    return bool(_FEED_WORD.search(_attr(tag, "href"))) or _is_feed_type(tag)


def _looks_like_feed(tag: Tag, url: str) -> bool:
    if _is_feed_type(tag):
        return True
    parts = urlsplit(url)
    if "sitemap" in parts.path.lower():
        return False
    return bool(_FEED_PATH.search(parts.path) or _FEED_QUERY.search(parts.query))


def _absolute(base: str, href: str) -> str:
    href = href.strip()
    if href[:5].lower() == "feed:":  # the old feed: scheme, `feed://host/rss` or `feed:https://host/rss`
        href = href[5:] if href[5:7] != "//" else "http:" + href[5:]
    try:
        url = urldefrag(urljoin(base, href)).url
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # a malformed address (bad IPv6 brackets, ...) in someone's page: not a candidate
        return ""
    return url if scheme in ("http", "https") else ""


def _unique(candidates: list[Candidate]) -> tuple[Candidate, ...]:
    seen: set[str] = set()
    kept: list[Candidate] = []
    for candidate in candidates:
        if candidate.url not in seen:
            seen.add(candidate.url)
            kept.append(candidate)
    return tuple(kept)


def _attr(tag: Tag, name: str) -> str:
    value = tag.get(name)
    return " ".join(value) if isinstance(value, list) else (value or "").strip()


def _words(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value or "").split()


def _decode(page: bytes, content_type: str) -> str:
    """The page as text: the charset its header or its own <meta> declares, else UTF-8 when it decodes;
    only then a guess (chardet, slow on a large page, which bs4 left to itself tries before UTF-8)."""
    match = re.search(r"(?i)charset\s*=\s*[\"']?([\w.:-]+)", content_type)
    declared = [match.group(1)] if match else []
    dammit = UnicodeDammit(page, known_definite_encodings=declared, user_encodings=["utf-8"], is_html=True)
    return dammit.unicode_markup or page.decode("utf-8", "replace")
