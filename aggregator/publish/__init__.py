"""Publish stage: renders every output (Atom, RSS, JSON Feed, index.html, OPML, Hexo posts) and writes
only the files whose bytes changed, atomically; pings WebSub. Must not fetch sources or touch the store.

    publish_outputs(output, dir, feeds, categories_of)
      for each (FeedSpec, articles): selection.select_articles (age, same story once, cap per source,
                                     limit) -> <slug>.atom (+ .rss, .json) and <slug>.html when output.html
      for each ended feed:           its one "has ended" entry -> the same files; retired ones removed
      index.html + feeds.opml           when output.index
      <hexo dir>/<date>-<slug>-<hash>.md when output.hexo has a dir
      write_atomically each file        unchanged bytes: not rewritten, mtime kept
      ping output.websub_hub            for feeds whose bytes changed
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path

from aggregator.model import Article, OutputConfig
from aggregator.publish import formatting, hexo
from aggregator.publish.atom import render_atom
from aggregator.publish.ended import EndedFeed, ended_article
from aggregator.publish.formatting import FeedSpec
from aggregator.publish.index import render_index
from aggregator.publish.jsonfeed import render_json_feed
from aggregator.publish.opml import render_opml
from aggregator.publish.pages import render_page
from aggregator.publish.rss import render_rss
from aggregator.publish.selection import select_articles
from aggregator.publish.websub import ping_hub
from aggregator.publish.write import sync_folder, write_atomically

__all__ = [
    "RENDER_VERSION",
    "FeedSpec",
    "PublishReport",
    "publish_outputs",
    "render_atom",
    "render_json_feed",
    "render_rss",
    "render_key",
    "write_atomically",
]

# Bump whenever a change here gives other bytes for the same articles and config. The caller's publish
# key and feed digests hold render_key(), so every output file and Hexo post is rendered again once
# after an upgrade instead of keeping what the older code wrote.
# 1: issue 20 (private source URLs, Hexo quoting, bidi controls, authors and tags escaped once).
# 2: issue 22 (<slug>.html pages; index.html links them and carries a Content-Security-Policy).
RENDER_VERSION = 2


def render_key() -> str:
    """RENDER_VERSION and the versions of the libraries whose output is published byte for byte."""
    return f"{RENDER_VERSION} " + _library_versions()


@cache
def _library_versions() -> str:
    return " ".join(f"{name}={metadata.version(name)}" for name in ("feedgen", "lxml", "PyYAML"))

_RENDERERS = {"atom": render_atom, "rss": render_rss, "json": render_json_feed}
log = logging.getLogger(__name__)
# load(spec): the feed's whole articles, read just before it is rendered
Loader = Callable[[FeedSpec], Sequence[Article]]
EntryKey = tuple[str, str]  # (article id, source URL): one entry of a feed


@dataclass(frozen=True)
class PublishReport:
    written: tuple[str, ...]  # paths relative to the output folder (Hexo posts: absolute)
    unchanged: tuple[str, ...]
    warnings: tuple[str, ...]
    removed: tuple[str, ...] = ()  # files of ended feeds removed (relative to the output folder)


def publish_outputs(
    output: OutputConfig,
    output_dir: Path,
    feeds: Sequence[tuple[FeedSpec, Sequence[Article]]],
    categories_of: Mapping[str, Sequence[str]],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    current: Collection[str] = (),
    load: Loader | None = None,
    ended: Sequence[EndedFeed] = (),
    retired: Sequence[EndedFeed] = (),
    merge_similar: bool = False,
) -> PublishReport:
    """Render and write every output; with `dry_run`, report what would change and write nothing.

    `now` only applies `output.max_age` (omit it to publish whatever the caller selected).
    `current`: slugs whose feed files the caller knows are up to date (same articles, same config
    as when they were written): they are not rendered again, only counted as unchanged.
    `load`: when given, the articles in `feeds` may be headlines only (enough to order them and for
    index.html) and load(spec, None) gives a feed's whole articles, read just before the feed is
    rendered and dropped after it, so memory holds one feed's articles however many feeds changed.
    Hexo posts need every article whole: pass them in `feeds` then.
    `ended`: feeds whose category left the config, written with their one "has ended" entry (not in
    index.html nor feeds.opml); `retired`: ended feeds whose files are removed now (publish.ended).
    `merge_similar`: the same story from several sources of a feed becomes one entry (publish.similar);
    headlines must then carry their summaries (store.headlines_of does).
    """
    warnings: list[str] = []
    selected = _select(output, feeds, now, warnings, merge_similar)
    files = _render_files(output, selected, categories_of, warnings, frozenset(current), load, now, merge_similar)
    written, unchanged = _write_all(output_dir, itertools.chain(files, _ended_files(output, ended)), dry_run)
    removed = [] if dry_run else _remove_files(output_dir, [name for feed in retired for name in feed.files], warnings)
    # max_per_source shares a feed's window between sources; a post is one file per article, no window
    # to share, so posts are what the feeds would publish without the cap (`feeds` hold both selections)
    capped = bool(output.hexo and output.max_per_source)
    posts_from = _select(replace(output, max_per_source=0), feeds, now, [], merge_similar) if capped else selected
    hexo_written, hexo_unchanged = _publish_posts(
        output, output_dir, posts_from, categories_of, dry_run, warnings
    )
    hub = formatting.web_iri(output.websub_hub)
    if hub and not dry_run:
        changed = [
            formatting.base_url(output) + name for name in written if name.rsplit(".", 1)[-1] in _RENDERERS
        ]
        warnings.extend(ping_hub(hub, changed))
    elif output.websub_hub and not hub:
        warnings.append(f"output.websub_hub: not an http(s) URL: {output.websub_hub!r}; no pings sent")
    return PublishReport(
        written=tuple(written + hexo_written),
        unchanged=tuple(unchanged + hexo_unchanged),
        warnings=tuple(warnings),
        removed=tuple(removed),
    )


def _select(
    output: OutputConfig,
    feeds: Sequence[tuple[FeedSpec, Sequence[Article]]],
    now: datetime | None,
    warnings: list[str],
    merge_similar: bool = False,
) -> list[tuple[FeedSpec, list[Article]]]:
    """Valid, distinct slugs only; each feed's articles ordered, aged and limited as published."""
    selected: list[tuple[FeedSpec, list[Article]]] = []
    slugs: set[str] = set()
    for spec, articles in feeds:
        if not formatting.SLUG.fullmatch(spec.slug):
            warnings.append(f"feed {spec.slug!r}: unsafe slug (only [a-z0-9_-]); not published")
            continue
        if spec.slug in slugs:
            warnings.append(f"feed {spec.slug!r}: listed twice; the second is not published")
            continue
        slugs.add(spec.slug)
        selected.append((spec, _as_published(output, articles, now, merge_similar)))
    return selected


def _as_published(output: OutputConfig, articles: Sequence[Article], now: datetime | None,
                  merge_similar: bool = False) -> list[Article]:
    """A feed's articles as published: selection.select_articles (aged, the same story once with
    `merge_similar`, capped per source, limited)."""
    return list(select_articles(articles, output, now, merge_similar=merge_similar).published)


def _render_files(
    output: OutputConfig,
    feeds: Sequence[tuple[FeedSpec, list[Article]]],
    categories_of: Mapping[str, Sequence[str]],
    warnings: list[str],
    current: frozenset[str] = frozenset(),
    load: Loader | None = None,
    now: datetime | None = None,
    merge_similar: bool = False,
) -> Iterator[tuple[str, bytes | None]]:
    """Each output file's name and bytes (None: known to be current, not rendered), rendered one at a
    time, so a file is written before the next is rendered: memory holds one feed's bytes, not all."""
    unknown = sorted(set(output.formats) - set(_RENDERERS))
    if unknown:
        warnings.append(f"output.formats: unknown formats {unknown} ignored (known: atom, rss, json)")
    formats = formatting.feed_formats(output)
    for spec, articles in feeds:
        if spec.slug in current:
            yield from ((name, None) for name in formatting.feed_files(output, spec.slug))
            continue
        whole = articles if load is None else _as_published(output, load(spec), now, merge_similar)
        for fmt in formats:
            yield f"{spec.slug}.{fmt}", _RENDERERS[fmt](spec, whole, output, categories_of)
        if output.html:
            yield f"{spec.slug}.html", render_page(spec, whole, output)
    if output.index:
        yield "index.html", render_index(output, feeds)
        yield "feeds.opml", render_opml(output, [spec for spec, _ in feeds])


def _ended_files(output: OutputConfig, ended: Sequence[EndedFeed]) -> Iterator[tuple[str, bytes]]:
    for feed in ended:
        article = ended_article(output, feed)
        for name in feed.files:
            extension = name.rsplit(".", 1)[-1]
            if extension in _RENDERERS:
                yield name, _RENDERERS[extension](feed.spec, [article], output, {})
            elif extension == "html":
                yield name, render_page(feed.spec, [article], output)


def _remove_files(folder: Path, names: Iterable[str], warnings: list[str]) -> list[str]:
    """Remove these files (each a name in `folder`, never a path out of it); the names removed. One that
    cannot be removed is a warning, not a failed publish: the other feeds are written already."""
    removed = []
    for name in names:
        path = folder / name
        try:
            if Path(name).name == name and path.is_file():
                path.unlink()
                removed.append(name)
        except OSError as exc:
            warnings.append(f"ended feed {name}: cannot remove {path}: {exc.strerror or exc}; remove it by hand")
    return removed


def _write_all(folder: Path, files: Iterable[tuple[str, bytes | None]], dry_run: bool
               ) -> tuple[list[str], list[str]]:
    """Write each (name, bytes) as it comes; None: current, counted as unchanged."""
    written: list[str] = []
    unchanged: list[str] = []
    if not dry_run:
        folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        path = folder / name
        if data is None:
            changed = False
        elif dry_run:
            changed = not (path.is_file() and path.read_bytes() == data)
        else:
            changed = write_atomically(path, data, sync_dir=False)
        (written if changed else unchanged).append(name)
    if written and not dry_run:
        sync_folder(folder)  # once for all the renames above
    return written, unchanged


def _publish_posts(
    output: OutputConfig,
    output_dir: Path,
    feeds: Sequence[tuple[FeedSpec, list[Article]]],
    categories_of: Mapping[str, Sequence[str]],
    dry_run: bool,
    warnings: list[str],
) -> tuple[list[str], list[str]]:
    try:
        options = hexo.hexo_options(output.hexo)
    except ValueError as exc:
        warnings.append(f"{exc}; no Hexo posts written")
        return [], []
    if options is None:
        return [], []
    folder = Path(options.dir)
    if not folder.is_absolute():
        folder = output_dir / folder  # config.py should hand over an absolute path; this is the fallback
    articles = [article for _, feed_articles in feeds for article in feed_articles]
    # A source without a configured category still gets one: the first feed (not "all") holding it.
    fallback: dict[str, list[str]] = {}
    for spec, feed_articles in feeds:
        for article in feed_articles:
            if spec.slug != "all":
                fallback.setdefault(article.source_url, [spec.title])
    posts = hexo.posts(articles, {**fallback, **categories_of}, options)
    written, unchanged = _write_all(folder, posts.items(), dry_run)
    if not dry_run:
        _remove_stale_posts(folder, posts, options.prune)
    return [str(folder / name) for name in written], [str(folder / name) for name in unchanged]


def _remove_stale_posts(folder: Path, posts: Mapping[str, bytes], prune: bool) -> None:
    """Remove our posts superseded by a renamed one (title changed) and, with `prune`, retired ones.

    Only files named like ours (POST_NAME) are considered, so hand-written posts are never touched.
    """
    current = {hexo.post_digest(name): name for name in posts}
    for path in folder.iterdir():
        if not hexo.POST_NAME.match(path.name) or path.name in posts:
            continue
        digest = hexo.post_digest(path.name)
        if digest in current or prune:
            path.unlink(missing_ok=True)
