"""From the store to the outputs: which rows each feed shows, and the publish caches around
publish.publish_outputs (the whole publish skipped while nothing changed; a feed whose rows and config
are as when it was written not rendered again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aggregator.state_location import local_base
from aggregator.errors import AggregatorError, naming
from aggregator.model import Article, Config
from aggregator.pipeline.deferred_cleaning import clean_waiting
from aggregator.publish import FeedSpec, PublishReport, publish_outputs, render_key
from aggregator.publish.ended import EndedFeed, is_due, track_ended
from aggregator.publish.formatting import feed_files
from aggregator.store import Store
from aggregator.store.db import FeedRow
from aggregator.store.schema import VERSION as SCHEMA_VERSION


def feed_contents(config: Config, store: Store, now: datetime,
                  workers: int = 0) -> list[tuple[FeedSpec, list[Article]]]:
    """What every output feed holds: each category, then all.atom, from the store."""
    return [(spec, store.articles_of(rows)) for spec, rows in feed_rows(config, store, now, workers)]


def feed_specs(config: Config) -> list[tuple[FeedSpec, list[str]]]:
    """Every output feed and its sources' URLs: each category, then all.atom."""
    by_category: dict[str, list[str]] = {slug: [] for slug in config.categories}
    for source in config.sources:
        for slug in source.categories:
            by_category[slug].append(source.url)
    # a category without sources is not published (one whose last source went ends: publish.ended)
    specs = [(FeedSpec(slug, category.title, category.subtitle), by_category[slug])
             for slug, category in config.categories.items() if by_category[slug]]
    specs.append((FeedSpec("all", config.output.title, "Every category"), [s.url for s in config.sources]))
    return specs


def feed_windows(config: Config, store: Store, now: datetime, per_source: int | None = None
                 ) -> list[tuple[FeedSpec, list[FeedRow]]]:
    """Each output feed's entry rows as the output limits select them (each category, then all.atom), rows
    still waiting for cleaning included: what publishing shows, and what `aggregator why` explains.
    `per_source`: the cap on one source's rows (default output.max_per_source)."""
    limit, max_age = config.output.max_entries, config.output.max_age
    cap = config.output.max_per_source if per_source is None else per_source
    return [(spec, store.feed_rows(urls, limit=limit, max_age_s=max_age, now=now, per_source=cap))
            for spec, urls in feed_specs(config)]


def feed_rows(config: Config, store: Store, now: datetime, workers: int = 0, executor: Executor | None = None,
              *, per_source: int | None = None) -> list[tuple[FeedSpec, list[FeedRow]]]:
    """Each output feed's entry rows (each category, then all.atom), every article in them cleaned.
    `per_source`: the cap on one source's rows (default output.max_per_source)."""
    feeds = feed_windows(config, store, now, per_source)
    if clean_waiting(config, store, [r for _spec, rows in feeds for r in rows if r.needs_cleaning], workers,
                      executor):
        # cleaned rows have new hashes; one whose cleaning failed stays out of every feed
        feeds = feed_windows(config, store, now, per_source)
    return [(spec, [r for r in rows if not r.needs_cleaning]) for spec, rows in feeds]


def categories_by_source(config: Config) -> dict[str, list[str]]:
    return {s.url: [config.categories[slug].title for slug in s.categories] for s in config.sources}


def publish(config: Config, store: Store, now: datetime, *, workers: int = 0,
            executor: Executor | None = None) -> PublishReport:
    """Render and write every output from the store; `executor` (the run's worker pool, when up)
    cleans waiting articles. Rendering stays here: measured, shipping 50 articles to a worker and the
    file back cost more than rendering them.

    One cache inside a publish: a feed whose digest (its config shape and its rows' digests) is as at
    the last publish, and whose files exist, is not rendered again. (Two more layers, unread feeds left
    unread and Atom entries spliced from the last file, were measured on a steady run of 1,000 sources
    in issue 21: 2 % and 0 % of the publish's CPU, so they were dropped with their code.)"""
    shape, marker = _config_shape(config), _Marker.read(config)
    # read before the articles: with workers storing meanwhile, the marker must not claim their changes
    generation = store.generation()
    folder = Path(config.output.dir)
    hexo = bool(config.output.hexo.get("dir"))
    windows = feed_rows(config, store, now, workers, executor)
    digests = {spec.slug: _feed_digest(shape, spec.slug, (_entry_digest(shape, r) for r in rows))
               for spec, rows in windows}
    current = {slug for slug, digest in digests.items() if marker.digests.get(slug) == digest
               and all((folder / name).exists() for name in feed_files(config.output, slug))}
    # Feeds are handed over as headlines (enough to order them and for the index page); a feed to render
    # reads its whole articles just before, one feed at a time. Hexo posts need them all whole.
    rows_of = {spec.slug: rows for spec, rows in windows}
    load: Callable[[FeedSpec], list[Article]] | None = None
    if hexo:
        feeds = [(spec, store.articles_of(rows)) for spec, rows in _with_uncapped(config, store, now, windows)]
    else:
        feeds = [(spec, store.headlines_of(rows)) for spec, rows in windows]

        def load(spec: FeedSpec) -> list[Article]:
            return store.articles_of(rows_of[spec.slug])
    # the feeds the last publish wrote are ours to end only in the folder it wrote them to (a marker
    # from before issue 22 does not say: the folder rarely changes with an upgrade)
    same_folder = marker.folder in ("", str(folder))
    ended, retired = track_ended(marker.ended if same_folder else {}, marker.published if same_folder else {},
                                 digests, lambda slug: feed_files(config.output, slug), now)
    try:
        report = publish_outputs(config.output, folder, feeds, categories_by_source(config), current=current,
                                 load=load, merge_similar=config.dedup.similar, ended=ended, retired=retired)
    except OSError as exc:
        raise AggregatorError(f"output {config.output.dir}: cannot write {exc.filename or ''}: "
                              f"{exc.strerror or exc}") from exc
    _Marker(key=publish_key(config, generation), digests=digests, folder=str(folder),
            titles={spec.slug: spec.title for spec, _rows in windows}, ended={f.slug: f for f in ended}).write(config)
    return report


def _with_uncapped(config: Config, store: Store, now: datetime, windows: list[tuple[FeedSpec, list[FeedRow]]]
                   ) -> list[tuple[FeedSpec, list[FeedRow]]]:
    """Each feed's rows and those it would show without output.max_per_source (Hexo posts are written
    for those: publish_outputs selects both from them; it orders them too)."""
    if not config.output.max_per_source:
        return windows
    uncapped = {spec.slug: rows for spec, rows in feed_rows(config, store, now, per_source=0)}
    return [(spec, list({r.key: r for r in rows + uncapped[spec.slug]}.values())) for spec, rows in windows]


@dataclass(frozen=True)
class _Marker:
    """state.db.published: what the outputs were last rendered from. `key`: the store's generation and
    the config (while both stay, a run skips publishing); per feed: its digest (same digest, same bytes)
    and title; the feeds that have ended (publish.ended), and when the first of them is due to go."""

    key: str = ""
    digests: Mapping[str, str] = field(default_factory=dict)
    titles: Mapping[str, str] = field(default_factory=dict)
    ended: Mapping[str, EndedFeed] = field(default_factory=dict)
    folder: str = ""  # output.dir they were written to

    @property
    def published(self) -> dict[str, str]:
        """slug -> title of every feed the last publish wrote (the marker names only its own)."""
        return {slug: self.titles.get(slug, slug) for slug in self.digests}

    @classmethod
    def read(cls, config: Config) -> _Marker:
        head, body = _marker_lines(config, 2)  # anything malformed reads as absent: every feed is rendered
        data = {**head, **body}  # a one-line marker (before the split) holds everything in its first line
        return cls(key=str(data.get("key", "")), digests=_strings(data.get("feeds")),
                   titles=_strings(data.get("titles")), ended=_ended_feeds(data.get("ended")),
                   folder=str(data.get("folder", "")))

    def write(self, config: Config) -> None:
        """Two JSON lines: the key (and when an ended feed is due to go) alone first, so that a run
        checking whether to publish at all reads a line, not the per-feed records."""
        head: dict[str, str] = {"key": self.key}
        if self.ended:
            head["due"] = min(f.since for f in self.ended.values()).isoformat()
        ended = {slug: {"title": f.title, "since": f.since.isoformat(), "files": list(f.files)}
                 for slug, f in self.ended.items()}
        body = {"feeds": dict(self.digests), "titles": dict(self.titles), "ended": ended, "folder": self.folder}
        marker = publish_marker(config)
        temporary = marker.with_name(marker.name + ".tmp")
        with naming(temporary):
            temporary.write_text(json.dumps(head) + "\n" + json.dumps(body, sort_keys=True) + "\n", encoding="utf-8")
        temporary.replace(marker)


def _strings(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _ended_feeds(value: object) -> dict[str, EndedFeed]:
    """The marker's ended feeds; a malformed record is dropped (its feed is then left as it is)."""
    feeds: dict[str, EndedFeed] = {}
    for slug, record in (value.items() if isinstance(value, dict) else ()):
        try:
            feeds[str(slug)] = EndedFeed.from_record(str(slug), record)
        except (TypeError, KeyError, ValueError, AttributeError):
            continue
    return feeds


def _config_shape(config: Config) -> str:
    """The config that shapes rendered outputs (and the program and render versions that render them)."""
    from aggregator import __version__

    # the schema too: a migration may rewrite stored rows without a change of generation
    shape = (__version__, SCHEMA_VERSION, render_key(), repr(config.output), repr(config.dedup),
             repr(sorted(config.categories.items())),
             [(s.url, s.name, s.categories) for s in config.sources])
    return hashlib.sha256(repr(shape).encode("utf-8", "surrogatepass")).hexdigest()


def _entry_digest(shape: str, row: FeedRow) -> str:
    """Same digest, same rendered entry: a row's raw_hash covers every stored field but the dates,
    and the dates are in the row; the shape covers the config and the program version."""
    return hashlib.sha256(f"{shape}\x00{row.id}\x00{row.source_url}\x00{row.published}\x00{row.updated}\x00"
                          f"{row.raw_hash}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _feed_digest(shape: str, slug: str, entry_digests: Iterable[str]) -> str:
    """Same digest, same rendered bytes: a feed whose digest is as at the last publish is not re-rendered.
    The shape is in it too, for a feed without entries."""
    digest = hashlib.sha256(f"{shape}\x00{slug}".encode("utf-8", "surrogatepass"))
    for entry in entry_digests:
        digest.update(entry.encode("ascii"))
    return digest.hexdigest()


def publish_key(config: Config, generation: int) -> str:
    """The store's generation (bumped in the same transaction as every change to stored articles, so
    a run killed after storing still publishes next time) and the config. While both are as at the
    last publish, rendering would give the same bytes, so the run skips publishing altogether."""
    return hashlib.sha256(f"{generation}\x00{_config_shape(config)}".encode()).hexdigest()


def publish_marker(config: Config) -> Path:
    return Path(local_base(config.state, config.path) + ".published")


def _marker_lines(config: Config, count: int) -> list[dict[str, Any]]:
    """The marker's first `count` JSON lines, a dict each; a missing or malformed one reads as {}."""
    lines: list[dict[str, Any]] = []
    try:
        with publish_marker(config).open(encoding="utf-8") as handle:
            for _ in range(count):
                try:
                    data = json.loads(handle.readline() or "{}")
                except ValueError:
                    data = {}
                lines.append(data if isinstance(data, dict) else {})
    except (OSError, UnicodeDecodeError):
        pass
    return lines + [{}] * (count - len(lines))


def outputs_current(config: Config, key: str, now: datetime) -> bool:
    if config.output.max_age:
        return False  # entries age out with max_age: render every time
    head = _marker_lines(config, 1)[0]
    if head.get("key") != key or _is_past(head.get("due"), now):  # an ended feed's files are due to go
        return False
    return all(path.exists() for path in _expected_outputs(config))


def _is_past(due: object, now: datetime) -> bool:
    try:
        return isinstance(due, str) and is_due(datetime.fromisoformat(due), now)
    except (TypeError, ValueError):
        return True  # unreadable: publish, which rewrites it


def _expected_outputs(config: Config) -> list[Path]:
    folder = Path(config.output.dir)
    paths = [folder / name for spec, _urls in feed_specs(config) for name in feed_files(config.output, spec.slug)]
    if config.output.index:
        paths += [folder / "index.html", folder / "feeds.opml"]
    return paths
