"""From the store to the outputs: which rows each feed shows, and the three publish caches (the whole
publish skipped when nothing changed, unread feeds not read, unchanged entries spliced) around
publish.publish_outputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator.errors import AggregatorError, naming
from aggregator.model import Article, Config
from aggregator.pipeline.deferred_cleaning import clean_waiting
from aggregator.publish import FeedSpec, PublishReport, publish_outputs, render_key
from aggregator.publish.index import LATEST as INDEX_LATEST
from aggregator.publish.splice import EntryDigests, Written
from aggregator.store import Store
from aggregator.store.db import FeedRow
from aggregator.store.schema import VERSION as SCHEMA_VERSION

if TYPE_CHECKING:
    pass


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
    specs = [(FeedSpec(slug, category.title, category.subtitle), by_category[slug])
             for slug, category in config.categories.items()]
    specs.append((FeedSpec("all", config.output.title, "Every category"), [s.url for s in config.sources]))
    return specs


def feed_rows(config: Config, store: Store, now: datetime, workers: int = 0, executor: Executor | None = None,
              skip: Collection[str] = ()) -> list[tuple[FeedSpec, list[FeedRow]]]:
    """Each output feed's entry rows (each category, then all.atom), every article in them cleaned;
    feeds whose slug is in `skip` are left out."""
    specs = [(spec, urls) for spec, urls in feed_specs(config) if spec.slug not in skip]
    limit, max_age = config.output.max_entries, config.output.max_age

    def read() -> list[tuple[FeedSpec, list[FeedRow]]]:
        return [(spec, store.feed_rows(urls, limit=limit, max_age_s=max_age, now=now)) for spec, urls in specs]

    feeds = read()
    if clean_waiting(config, store, [r for _spec, rows in feeds for r in rows if r.needs_cleaning], workers,
                      executor):
        feeds = read()  # cleaned rows have new hashes; one whose cleaning failed stays out of every feed
    return [(spec, [r for r in rows if not r.needs_cleaning]) for spec, rows in feeds]


def categories_by_source(config: Config) -> dict[str, list[str]]:
    return {s.url: [config.categories[slug].title for slug in s.categories] for s in config.sources}


def publish(config: Config, store: Store, now: datetime, *, workers: int = 0,
            executor: Executor | None = None) -> PublishReport:
    """Render and write every output from the store; `executor` (the run's worker pool, when up)
    cleans waiting articles. Rendering stays here: measured, shipping 50 articles to a worker and the
    file back cost more than rendering them (~8 ms a feed)."""
    shape, specs, marker = _config_shape(config), feed_specs(config), _Marker.read(config)
    folder = Path(config.output.dir)
    hexo = bool(config.output.hexo.get("dir"))

    def files_exist(slug: str) -> bool:
        return all((folder / f"{slug}.{fmt}").exists() for fmt in _formats(config))

    # A feed whose sources all kept their versions since it was written is left unread: its files are
    # current, and the marker holds what index.html needs of it (its ids and newest rows).
    tokens = _sources_tokens(shape, specs, store.source_versions())
    unread = set() if hexo or config.output.max_age else {
        slug for slug, token in tokens.items() if slug in marker.listed and marker.listed[slug].token == token
        and slug in marker.digests and files_exist(slug)}
    windows = feed_rows(config, store, now, workers, executor, skip=unread)
    entries = {spec.slug: {(r.id, r.source_url): _entry_digest(shape, r) for r in rows} for spec, rows in windows}
    digests = {slug: _feed_digest(shape, slug, entries[slug].values()) for slug in entries}
    digests |= {slug: marker.digests[slug] for slug in unread}
    current = {slug for slug, digest in digests.items()
               if marker.digests.get(slug) == digest and files_exist(slug)}
    # Feeds are handed over as headlines (enough to order them and for the index page; an unread feed
    # as its newest only); a feed to render reads its whole articles (or only those of entries to
    # render) just before, one feed at a time. Hexo posts need them all whole.
    rows_of = {spec.slug: rows for spec, rows in windows}
    load: Callable[[FeedSpec, set[tuple[str, str]] | None], list[Article]] | None = None
    if hexo:
        feeds = [(spec, store.articles_of(rows)) for spec, rows in windows]
    else:
        feeds = [(spec, store.headlines_of(rows_of[spec.slug] if spec.slug in rows_of
                                           else store.rows_by_key(marker.listed[spec.slug].newest)))
                 for spec, _urls in specs]

        def load(spec: FeedSpec, keys: set[tuple[str, str]] | None) -> list[Article]:
            rows = rows_of[spec.slug]
            return store.articles_of(rows if keys is None else [r for r in rows if (r.id, r.source_url) in keys])
    try:
        report = publish_outputs(config.output, folder, feeds, categories_by_source(config), current=current,
                                 load=load, entry_digests=EntryDigests(entries, marker.atom) if load else None,
                                 listed={slug: marker.listed[slug].ids for slug in unread})
    except OSError as exc:
        raise AggregatorError(f"output {config.output.dir}: cannot write {exc.filename or ''}: "
                              f"{exc.strerror or exc}") from exc
    tokens = _sources_tokens(shape, specs, store.source_versions())  # cleaning waiting articles changed some
    _Marker(
        key=publish_key(config, store.generation()), digests=digests,
        atom={slug: w for slug, w in marker.atom.items() if slug in current} | dict(report.atom_written),
        listed={slug: marker.listed[slug] for slug in unread} | {
            slug: _Listed.of(tokens[slug], report.published.get(slug, ()), rows)
            for slug, rows in rows_of.items() if not hexo},
    ).write(config)
    return report


@dataclass(frozen=True)
class _Listed:
    """What the marker keeps of a published feed for index.html: the token of its sources' versions
    when it was written, every article id in it, and the keys of its newest rows."""

    token: str
    ids: tuple[str, ...]
    newest: tuple[int, ...]

    @classmethod
    def of(cls, token: str, published: Sequence[tuple[str, str]], rows: Sequence[FeedRow]) -> _Listed:
        key_of = {(r.id, r.source_url): r.key for r in rows}
        return cls(token, tuple(i for i, _source in published),
                   tuple(key_of[k] for k in published[:INDEX_LATEST] if k in key_of))

    @classmethod
    def from_json(cls, item: object) -> _Listed | None:
        if (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and isinstance(item[1], list)
                and isinstance(item[2], list) and all(isinstance(k, int) for k in item[2])):
            return cls(item[0], tuple(map(str, item[1])), tuple(item[2]))
        return None

    def as_json(self) -> list[object]:
        return [self.token, list(self.ids), list(self.newest)]


@dataclass(frozen=True)
class _Marker:
    """state.db.published: what the outputs were last rendered from. `key`: the store's generation and
    the config (while both stay, a run skips publishing); per feed: its digest (same digest, same
    bytes), its Atom file as written (publish/splice.py) and what index.html needs of it."""

    key: str = ""
    digests: Mapping[str, str] = field(default_factory=dict)
    atom: Mapping[str, Written] = field(default_factory=dict)
    listed: Mapping[str, _Listed] = field(default_factory=dict)

    @classmethod
    def read(cls, config: Config) -> _Marker:
        head, body = _marker_lines(config, 2)  # anything malformed reads as absent: every feed is rendered
        data = {**head, **body}  # a one-line marker (before the split) holds everything in its first line
        digests, atom, listed = (v if isinstance(v, dict) else {} for v in (
            data.get("feeds"), data.get("atom"), data.get("listed")))
        return cls(
            key=str(data.get("key", "")),
            digests={str(slug): str(d) for slug, d in digests.items()},
            atom={str(slug): Written(tuple(map(str, v[1:])), str(v[0])) for slug, v in atom.items()
                  if isinstance(v, list) and v},
            listed={str(slug): item for slug, v in listed.items() if (item := _Listed.from_json(v)) is not None},
        )

    def write(self, config: Config) -> None:
        """Two JSON lines: the key alone first, so that a run checking whether to publish at all reads
        a line, not the per-feed records (~0.4 MB and ~13 ms to parse at 100 feeds)."""
        rest = {"feeds": dict(self.digests), "atom": {slug: [w.sha256, *w.entries] for slug, w in self.atom.items()},
                "listed": {slug: item.as_json() for slug, item in self.listed.items()}}
        marker = publish_marker(config)
        temporary = marker.with_name(marker.name + ".tmp")
        with naming(temporary):
            temporary.write_text(json.dumps({"key": self.key}) + "\n" + json.dumps(rest, sort_keys=True) + "\n",
                                 encoding="utf-8")
        temporary.replace(marker)


def _sources_tokens(shape: str, specs: Sequence[tuple[FeedSpec, Sequence[str]]],
                    versions: Mapping[str, int]) -> dict[str, str]:
    """Per feed: its config and its sources' versions (and the schema's, as a migration may rewrite rows)."""
    tokens = {}
    for spec, urls in specs:
        text = "\x00".join([shape, str(SCHEMA_VERSION), repr(spec),
                            *(f"{url}\x01{versions.get(url, 0)}" for url in sorted(set(urls)))])
        tokens[spec.slug] = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return tokens


def _config_shape(config: Config) -> str:
    """The config that shapes rendered outputs (and the program and render versions that render them)."""
    from aggregator import __version__

    shape = (__version__, render_key(), repr(config.output), repr(sorted(config.categories.items())),
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
    return Path(config.state + ".published")


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


def outputs_current(config: Config, key: str) -> bool:
    if config.output.max_age:
        return False  # entries age out with max_age: render every time
    if _marker_lines(config, 1)[0].get("key") != key:
        return False
    return all(path.exists() for path in _expected_outputs(config))


def _formats(config: Config) -> list[str]:
    return ["atom"] + [f for f in ("rss", "json") if f in config.output.formats]


def _expected_outputs(config: Config) -> list[Path]:
    folder = Path(config.output.dir)
    paths = [folder / f"{slug}.{fmt}" for slug in [*config.categories, "all"] for fmt in _formats(config)]
    if config.output.index:
        paths += [folder / "index.html", folder / "feeds.opml"]
    return paths
