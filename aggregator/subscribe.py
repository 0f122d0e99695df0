"""`aggregator add`: find the feed behind a feed or web page address and append it to the config; never prints.

Order: the config loads -> the category is settled (--category, or the only one) -> the address is not
configured yet -> fetch it: a feed is taken as it is; a page is searched (discover.py) tier by tier,
each tier's candidates fetched together and kept when parse_feed reads a title or items from them ->
the main feed (first in the page's order whose title and address do not say "comments") is not
configured yet -> config/append.py writes it. Every fetch goes through the run's own fetcher
(fetch_sources: the config's timeouts, size cap, user agent and private-address setting).
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from aggregator.config import DEFAULT_CONFIG, load_config
from aggregator.config.append import append_source, names_includes
from aggregator.config.sources import SLUG, slug_problem
from aggregator.config.urls import checked_http_url, looks_like_a_host, scheme_of, url_identity
from aggregator.config.values import suggest
from aggregator.discover import Candidate, PageLinks, find_feed_links, says_comments, usual_feed_urls
from aggregator.errors import AggregatorError
from aggregator.fetch import FetchOutcome, fetch_sources
from aggregator.model import Config, FetchConfig, Source
from aggregator.parse import parse_feed

TIERS = ("advertised by the page", "linked from the page", "at a usual path")


class AddRefused(AggregatorError):
    """Nothing was added: one line naming the address and why (exit code 2)."""


@dataclass(frozen=True)
class FoundFeed:
    url: str  # as given or as the page wrote it (absolute): what goes into the config
    title: str  # the feed's own title
    format: str
    items: int
    page_title: str = ""  # what the page called it
    final_url: str = ""  # where it was fetched from, after redirects


@dataclass(frozen=True)
class Added:
    feed: FoundFeed
    how: str  # "the address is a feed" or one of TIERS
    category: str
    name: str
    config_path: str
    has_includes: bool
    others: tuple[FoundFeed, ...] = ()  # more feeds the page offers, in its order
    configured: frozenset[str] = frozenset()  # identities of URLs already in the config


def add_source(config_path: str, address: str, category: str, name: str, now: datetime) -> Added:
    """Find the feed at `address` and append it to the config. Raises AddRefused or ConfigError (exit 2)."""
    config = load_config(config_path)
    slug = _category(config, category, address)
    url = _http_url(address)
    configured = {url_identity(s.url): s for s in config.sources}
    _refuse_configured(configured, address, url)
    how, feeds = asyncio.run(_find_feeds(url, config.fetch, now))
    main = feeds[0]
    _refuse_configured(configured, address, main.url, main.final_url)
    name = " ".join(name.split())  # one line, as the config keeps it
    append_source(config_path, main.url, slug, name)
    return Added(main, how, slug, name, config_path, has_includes=names_includes(config_path),
                 others=feeds[1:], configured=frozenset(configured))


def format_added(added: Added) -> str:
    """What `add` prints: what was added and where, then the other feeds with the command that adds each."""
    feed = added.feed
    shown = f"'{added.name}'" if added.name else "its feed title" if feed.title else "its address"
    lines = [f"added {feed.url} to category '{added.category}' in {added.config_path} ({added.how})",
             f"  feed: {feed.title or '(untitled)'} — {feed.format or 'feed'}, {feed.items} items; "
             f"shown as {shown}"]
    if added.has_includes:
        lines.append("  written to the main config file; its include files are unchanged")
    if added.others:
        lines.append(f"the page offers {len(added.others)} more feed(s); to add one of them too:")
        for other in added.others:
            label = " — ".join(dict.fromkeys(t for t in (other.page_title, other.title) if t)) or other.url
            if url_identity(other.url) in added.configured:
                lines.append(f"  {label}: {other.url} (already configured)")
                continue
            lines.append(f"  {label}:")
            lines.append(f"    {command_line(other.url, added.category, added.config_path)}")
    return "\n".join(lines)


def command_line(url: str, category: str, config_path: str) -> str:
    words = ["aggregator", "add", url, "--category", category]
    if config_path != DEFAULT_CONFIG:
        words += ["--config", config_path]
    return shlex.join(words)


# --- settling the inputs ---------------------------------------------------------------------------


def _category(config: Config, category: str, address: str) -> str:
    slugs = list(config.categories)
    if category:
        if not SLUG.fullmatch(category):
            raise AddRefused(f"{address}: --category {category!r}: {slug_problem(category)}")
        if category not in config.categories:
            raise AddRefused(f"{address}: --category {category!r}: no such category in {config.path}"
                             f"{suggest(category, slugs)}; configured: {', '.join(slugs)}")
        return category
    if len(slugs) == 1:
        return slugs[0]
    raise AddRefused(f"{address}: the config has {len(slugs)} categories: choose one with --category "
                     f"({', '.join(slugs)})")


def _http_url(address: str) -> str:
    """The address as an http(s) URL; a bare host ("example.org", "example.org/blog") means https."""
    text = address.strip()
    if not scheme_of(text) and (looks_like_a_host(text + "/") or looks_like_a_host(text)):
        text = "https://" + text
    if scheme_of(text) not in ("http", "https"):
        raise AddRefused(f"{address}: not an http(s) address")
    try:
        return checked_http_url(text)
    except ValueError as exc:
        raise AddRefused(f"{address}: {exc}") from exc


def _refuse_configured(configured: dict[str, Source], address: str, *urls: str) -> None:
    for url in urls:
        source = configured.get(url_identity(url))
        if source is not None:
            what = "is" if url_identity(url) == url_identity(address) else f"leads to {url}, which is"
            raise AddRefused(f"{address}: {what} already configured as {_describe(source)}")


def _describe(source: Source) -> str:
    named = f"'{source.name}' " if source.name else ""
    return f"source {named}{source.url} (category {', '.join(source.categories)})"


# --- finding the feed ------------------------------------------------------------------------------


async def _find_feeds(url: str, fetch: FetchConfig, now: datetime) -> tuple[str, tuple[FoundFeed, ...]]:
    """How the feed was found and the feeds found, the main one first. Raises AddRefused when none is."""
    (page,) = await _fetch([url], fetch, now)
    if page.kind != "fetched":
        raise AddRefused(f"{url}: cannot fetch: {page.error or page.kind}")
    direct = _read_feed(page, Candidate(url))
    if isinstance(direct, FoundFeed):
        return "the address is a feed", (direct,)
    links = find_feed_links(page.body, page.final_url or url, page.headers.get("content-type", ""))
    tiers = (links.advertised, links.linked, usual_feed_urls(page.final_url or url))
    tried = {url_identity(url), url_identity(page.final_url or url)}
    for how, candidates, speculative in zip(TIERS, tiers, (False, False, True)):
        fresh = [c for c in candidates if url_identity(c.url) not in tried and _fetchable(c.url)]
        tried.update(url_identity(c.url) for c in fresh)
        # a guessed path that fails is simply not the feed: no retries for it
        config = replace(fetch, retries=0) if speculative else fetch
        outcomes = await _fetch([c.url for c in fresh], config, now)
        found = [f for f in (_read_feed(o, c) for o, c in zip(outcomes, fresh)) if isinstance(f, FoundFeed)]
        if found:
            return how, _main_first(found)
    raise AddRefused(f"{url}: no feed found: {_why_none(direct, links, page.headers.get('content-type', ''))}, "
                     "and no usual path (/feed, /rss.xml, /atom.xml, /index.xml, ...) serves one")


def _why_none(direct: str, links: PageLinks, content_type: str) -> str:
    if "html" not in content_type.lower() and not links.advertised and not links.linked:
        return direct  # not a page: what the parser made of it
    advertised = {0: "the page advertises no feed", 1: "the feed the page advertises does not work"}.get(
        len(links.advertised), f"none of the {len(links.advertised)} feeds the page advertises works")
    linked = {0: "links to none", 1: "its one feed-like link does not work"}.get(
        len(links.linked), f"none of its {len(links.linked)} feed-like links works")
    return f"{advertised}, {linked}"


async def _fetch(urls: Sequence[str], fetch: FetchConfig, now: datetime) -> list[FetchOutcome]:
    if not urls:
        return []
    sources = [Source(url=u, categories=()) for u in urls]
    return await fetch_sources(sources, fetch, {}, now, force=True)


def _read_feed(outcome: FetchOutcome, candidate: Candidate) -> FoundFeed | str:
    """The feed in a fetched body, or why there is none."""
    if outcome.kind != "fetched":
        return outcome.error or outcome.kind
    try:
        parsed = parse_feed(outcome.body, outcome.headers, candidate.url, "", outcome.final_url or candidate.url)
    except AggregatorError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a parser bug on one candidate must not hide the others
        return f"internal error: {type(exc).__name__}: {exc}"
    if not parsed.meta.title and not parsed.articles:
        return "a feed without a title or items"
    return FoundFeed(candidate.url, parsed.meta.title, parsed.meta.format, len(parsed.articles), candidate.title,
                     outcome.final_url or candidate.url)


def _main_first(found: list[FoundFeed]) -> tuple[FoundFeed, ...]:
    """The page's order, with the first feed that is not a comments feed moved to the front."""
    for i, feed in enumerate(found):
        if not says_comments(feed.title, feed.page_title, feed.url):
            return (feed, *found[:i], *found[i + 1:])
    return tuple(found)


def _fetchable(url: str) -> bool:
    try:
        checked_http_url(url)
    except ValueError:
        return False
    return True
