"""The values that move between stages: frozen, picklable (they cross process boundaries), no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TypeVar

_T = TypeVar("_T")


def _pickled_as_fields(cls: type[_T]) -> type[_T]:
    """Slotted dataclasses pickle through Python-level getstate/setstate that call fields() for every
    object; rebuilt from a tuple of field values, they cost a fraction of that. Every
    parsed and every cleaned article crosses between the run and its workers."""
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    def __reduce__(self: _T) -> tuple[type[_T], tuple[object, ...]]:
        return cls, tuple([getattr(self, name) for name in names])

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


@_pickled_as_fields
@dataclass(frozen=True, slots=True)
class Enclosure:
    url: str
    type: str = ""
    length: int = 0


@_pickled_as_fields
@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What a source's feed says about itself; kept for provenance (atom:source) and scheduling."""

    title: str = ""
    link: str = ""  # the site (alternate) link
    id: str = ""  # the feed's own id/guid, if any
    updated: datetime | None = None
    language: str = ""
    ttl_s: int | None = None  # from <ttl> or sy:updatePeriod/sy:updateFrequency
    format: str = ""  # rss20, atom10, jsonfeed11, ...

    @property
    def name(self) -> str:
        """The title on one line, at most 200 characters: what names a source configured without `name:`."""
        return " ".join(self.title.split())[:200]


@_pickled_as_fields
@dataclass(frozen=True, slots=True)
class Article:
    """One normalized item. After parse, nothing is an item, entry or post: it is an article.

    Dates are timezone-aware UTC or None (None = the feed gave none; the store fills in
    the first-seen time, so a date never changes between runs).
    """

    id: str  # stable entry id, a valid absolute IRI (see ids.make_article_id)
    source_url: str  # the configured source URL: the source's identity
    source_name: str  # for provenance and errors
    original_id: str = ""  # guid/id exactly as the feed gave it ("" when absent)
    title: str = ""  # plain text
    link: str = ""
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    summary: str = ""  # plain text after cleaning
    content_html: str = ""  # cleaned, sanitized HTML after cleaning
    tags: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    image: str = ""  # lead image URL, "" for none
    base_url: str = ""  # xml:base / item link / feed link: what relative URLs resolve against
    language: str = ""
    feed: FeedMeta = field(default_factory=FeedMeta)
    # A hash of the item exactly as parsed, before cleaning: when the store already knows it,
    # the item is not cleaned or stored again (issue 8: steady-state runs skip unchanged items).
    fingerprint: str = ""
    # True while content, summary and image are still as the feed gave them (a first run defers
    # cleaning the deep backlog no feed can show); the store cleans such an article before any
    # output reads it. Title and link are always clean: deduplication matches on them.
    needs_cleaning: bool = False
    # Set only on articles read back from the store for publishing: when the store first saw it (which
    # copy of a story was there first, publish.similar) and, on the copy kept, the other copies'
    # (link, source name), published as related links. Annotations, not the article: equality ignores them.
    first_seen: datetime | None = field(default=None, compare=False)
    related: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@_pickled_as_fields
@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """parse_feed's result: the feed's metadata, its articles, per-item warnings, and the fingerprints
    of the items left out as known (parse_feed's `known`)."""

    meta: FeedMeta
    articles: tuple[Article, ...]
    warnings: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    # which path read the document: "json", "fast" (lxml) or "feedparser"; not part of the result's
    # value (the fast path and feedparser must give equal feeds)
    parser: str = field(default="", compare=False)



@dataclass(frozen=True, slots=True)
class FilterDecision:
    """One article a filter rule dropped: what the store remembers of it, so `aggregator why` can tell."""

    rule: str  # filters.describe_rule of the rule that dropped it, or filters.NO_KEEP_MATCH
    article_id: str  # the id it would have been published under (Article.id)
    original_id: str  # the feed's guid ("" when absent)
    link: str
    title: str


# --- configuration values -------------------------------------------------------------
# Field metadata drives config validation, defaults and the JSON Schema (config.py reads it):
#   kind: "str" | "int" | "bool" | "duration" (seconds; YAML int or "90s"/"30m"/"2h"/"1d")
#         | "size" (bytes; int or "15MiB") | "url" | "path" | "strlist" | "map" | "list"
#   doc:  one line for the README and the schema.
# To add a setting, add a field here with metadata; config.py picks it up.


def _opt(default: object, kind: str, doc: str) -> object:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"kind": kind, "doc": doc})
    return field(default=default, metadata={"kind": kind, "doc": doc})


@dataclass(frozen=True)
class FetchConfig:
    interval: int = _opt(1800, "duration", "default time between fetches of one source")  # type: ignore[assignment]
    min_interval: int = _opt(300, "duration", "lower clamp for feed-advertised intervals (ttl, Cache-Control)")  # type: ignore[assignment]
    max_interval: int = _opt(86400, "duration", "upper clamp for feed-advertised intervals")  # type: ignore[assignment]
    max_backoff: int = _opt(86400, "duration", "longest wait after repeated failures")  # type: ignore[assignment]
    concurrency: int = _opt(100, "int", "requests in flight at once, over all hosts")  # type: ignore[assignment]
    per_host: int = _opt(2, "int", "requests in flight at once to one host")  # type: ignore[assignment]
    per_host_delay: float = _opt(0.0, "duration", "minimum delay between two requests to one host (jittered)")  # type: ignore[assignment]
    connect_timeout: float = _opt(10, "duration", "TCP/TLS connect timeout")  # type: ignore[assignment]
    read_timeout: float = _opt(20, "duration", "timeout for each read from the socket")  # type: ignore[assignment]
    total_timeout: float = _opt(60, "duration", "deadline for one request, headers and body together")  # type: ignore[assignment]
    run_deadline: float = _opt(900, "duration", "deadline for the whole run: past it, no new work starts; what is done is published")  # type: ignore[assignment]
    retries: int = _opt(2, "int", "retries within a run for timeouts, connect errors, 5xx and 429")  # type: ignore[assignment]
    retry_after_cap: float = _opt(120, "duration", "longest Retry-After honoured within a run; longer ones reschedule")  # type: ignore[assignment]
    max_redirects: int = _opt(5, "int", "redirects followed per request")  # type: ignore[assignment]
    max_body: int = _opt(15 * 1024 * 1024, "size", "largest decompressed body accepted")  # type: ignore[assignment]
    max_new_per_fetch: int = _opt(1000, "int", "new items one source may add to the state per fetch (first in document order); 0 = no limit")  # type: ignore[assignment]
    max_items_per_source: int = _opt(20000, "int", "items one source may hold in the state in all; 0 = no limit")  # type: ignore[assignment]
    user_agent: str = _opt("", "str", "User-Agent header; default names the program, version and URL")  # type: ignore[assignment]
    allow_private_addresses: bool = _opt(True, "bool", "allow sources on loopback/private networks")  # type: ignore[assignment]


@dataclass(frozen=True)
class CleanConfig:
    iframe_hosts: list[str] = _opt(  # type: ignore[assignment]
        ["www.youtube.com", "www.youtube-nocookie.com", "player.vimeo.com", "player.bilibili.com"],
        "strlist",
        "hosts whose iframes (video embeds) are kept, sandboxed",
    )
    summary_length: int = _opt(200, "int", "characters in a generated plain-text summary")  # type: ignore[assignment]
    rules: list[dict[str, object]] = _opt([], "list", "extra site rules: {hosts, remove, unwrap, drop_text}")  # type: ignore[assignment]
    future_margin: int = _opt(3600, "duration", "dates further in the future become the first-seen time")  # type: ignore[assignment]
    regex_search_timeout: float = _opt(0.25, "duration", "longest single search of a pattern RE2 cannot run (filters, drop_text)")  # type: ignore[assignment]
    regex_pattern_budget: float = _opt(2, "duration", "time one such pattern may search per run before it is disabled for the run")  # type: ignore[assignment]
    regex_run_budget: float = _opt(10, "duration", "time all such patterns together may search per run")  # type: ignore[assignment]


@dataclass(frozen=True)
class OutputConfig:
    dir: str = _opt("feeds", "path", "where feeds are written (relative to the config file)")  # type: ignore[assignment]
    base_url: str = _opt("http://localhost/feeds/", "url", "public URL of that folder; used in ids and self links")  # type: ignore[assignment]
    max_entries: int = _opt(50, "int", "entries per feed; 0 = no limit")  # type: ignore[assignment]
    max_age: int = _opt(0, "duration", "drop entries older than this from feeds; 0 = no limit")  # type: ignore[assignment]
    max_per_source: int = _opt(10, "int", "entries of one source per feed, its newest; 0 = no limit")  # type: ignore[assignment]
    formats: list[str] = _opt(["atom"], "strlist", "feed formats: atom, rss, json")  # type: ignore[assignment]
    index: bool = _opt(True, "bool", "write index.html and feeds.opml")  # type: ignore[assignment]
    html: bool = _opt(True, "bool", "write <slug>.html: each feed as a page to read in a browser")  # type: ignore[assignment]
    websub_hub: str = _opt("", "url", "WebSub hub to advertise and ping")  # type: ignore[assignment]
    hexo: dict[str, object] = _opt({}, "map", "Markdown posts for Hexo/Hugo/Jekyll: {dir: PATH, ...}")  # type: ignore[assignment]
    title: str = _opt("aggregator", "str", "site title for index.html, all.atom and feeds.opml")  # type: ignore[assignment]
    author: str = _opt("aggregator", "str", "feed-level author name")  # type: ignore[assignment]
    icon: str = _opt("", "url", "feed icon URL")  # type: ignore[assignment]
    logo: str = _opt("", "url", "feed logo URL")  # type: ignore[assignment]
    language: str = _opt("", "str", "xml:lang of the feeds, e.g. zh-CN")  # type: ignore[assignment]


@dataclass(frozen=True)
class DedupConfig:
    similar: bool = _opt(True, "bool", "merge the same story from different sources of a feed into one entry with related links")  # type: ignore[assignment]


@dataclass(frozen=True)
class FilterSpec:
    """One filter rule as the config gives it ({drop: {title: ...}}), and where: "feeds.yaml:42"."""

    body: dict[str, object]
    origin: str = ""


@dataclass(frozen=True)
class Category:
    slug: str
    title: str
    subtitle: str = ""
    filters: tuple[FilterSpec, ...] = ()


@dataclass(frozen=True)
class Source:
    url: str  # http(s) URL, or an absolute local path (config resolves relative ones)
    categories: tuple[str, ...]
    name: str = ""  # "" = use the feed's own title
    interval: int | None = None  # seconds; None = fetch.interval
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str = ""
    full_text: bool = False
    filters: tuple[FilterSpec, ...] = ()
    clean_rules: tuple[dict[str, object], ...] = ()

    @property
    def is_local(self) -> bool:
        return not self.url.startswith(("http://", "https://"))

    @property
    def label(self) -> str:
        """How messages name this source."""
        return self.name or self.url


@dataclass(frozen=True)
class Config:
    path: str  # the config file, absolute
    state: str  # SQLite file, absolute
    output: OutputConfig
    fetch: FetchConfig
    clean: CleanConfig
    categories: dict[str, Category]
    sources: tuple[Source, ...]
    filters: tuple[FilterSpec, ...] = ()
    retention: float = 180 * 86400  # seconds of state kept for articles no longer published
    lock_timeout: float = 60.0  # seconds a run waits for another run's lock before exiting with code 3
    burst_threshold: int = 20  # new articles with old dates from one source in one run before holding back
    health: str = ""  # JSON health file; "" = health.json beside the state file
    metrics: str = ""  # Prometheus textfile-collector file; "" = none
    dedup: DedupConfig = field(default_factory=DedupConfig)
