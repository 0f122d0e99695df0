"""The only module that knows the stage order: fetch -> parse -> clean -> filter -> store -> publish.

    config ──> fetch (async, I/O) ──bodies──> worker pool: parse + clean + filter (pure, CPU)
                                                    │ articles
                                  store (SQLite) <──┘
                                    │ per category, newest first
                                  publish (feeds/<slug>.atom, all.atom, index.html, ...)

Parsing and cleaning run in a process pool sized to the cores, off the event loop, so a slow
parse never makes a queued request time out (issue 8). Publish renders from the store, so a
source that fails this run keeps its earlier articles in the feeds. Nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from aggregator.errors import AggregatorError, StateError, naming
from aggregator.fetch import (
    FetchOutcome,
    SourceState,
    fetch_sources,
    mark_parse_failed,
    reschedule_after_parse,
)
from aggregator.model import Article, Config, Source
from aggregator.pool import PipePool
from aggregator.publish import FeedSpec, PublishReport, publish_outputs, render_key
from aggregator.publish.index import LATEST as INDEX_LATEST
from aggregator.publish.splice import EntryDigests, Written
from aggregator.store import Store
from aggregator.store.db import FeedRow, refuse_fresh
from aggregator.store.schema import VERSION as SCHEMA_VERSION
from aggregator.store.upsert import Caps
from aggregator.work import Processed, clean_batch, process_body

if TYPE_CHECKING:
    from aggregator.filters import Rule
    from aggregator.store.dedup import Hashes

# Parsing, cleaning and filtering run in the workers (each imports them at start): the run's own
# process imports them only when it parses in-process, so a run where nothing changed never pays for
# lxml, nh3, feedparser and re2 (a fifth of a no-op run's start-up).
WORKER_MODULES = ["aggregator.work", "aggregator.parse", "aggregator.clean", "aggregator.filters",
                  "aggregator.enrich"]

log = logging.getLogger("aggregator")

# Below this many bodies to parse, a process pool costs more to start than it saves.
POOL_THRESHOLD = 8
# Fetched bodies (zlib-packed) waiting for a worker, at most: past this, no new source is fetched
# until the workers catch up. A cold start fetches in seconds what takes minutes to parse; 8 MB
# (~300 farm feeds packed) keeps both workers fed for seconds, and the run's process stays small.
MAX_WAITING_BYTES = 8 * 1024 * 1024
# Fetch states are committed this many at a time. A run killed in between loses at most these
# validators: those sources are fetched and parsed again, and their items are recognised as known.
STATE_BATCH = 100


@dataclass(frozen=True)
class RunOptions:
    force: bool = False
    retry_gone: bool = False
    only: tuple[str, ...] = ()  # source names/URLs or category slugs
    dry_run: bool = False
    accept_burst: tuple[str, ...] = ()  # source names/URLs whose held-back burst is let through
    explain: bool = False
    workers: int = 0  # 0 = one per core
    lock_timeout_s: float | None = None  # None = the config's lock_timeout
    clock: Callable[[], float] = time.monotonic  # seconds; what fetch.run_deadline is measured on
    new_state: bool = False  # start a missing or empty state afresh even though earlier runs left outputs


@dataclass
class SourceReport:
    source: Source
    kind: str  # fetched, not_modified, unchanged, not_due, failed, gone
    error: str = ""
    articles: int = 0
    new: int = 0
    updated: int = 0
    held_back: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # filter rule label -> count
    warnings: tuple[str, ...] = ()
    explain: tuple[str, ...] = ()
    moved_to: str = ""
    full_text_failures: list[str] = field(default_factory=list)
    date_state: dict[str, object] = field(default_factory=dict)  # tz_samples, tz_offset_s
    state: SourceState | None = None  # the source's fetch state after this run (health.json reads it)


@dataclass
class RunSummary:
    started: datetime
    seconds: float = 0.0
    sources: list[SourceReport] = field(default_factory=list)
    publish: PublishReport | None = None
    dry_run: bool = False
    changes: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # dry run: feed -> new/removed titles

    def count(self, kind: str) -> int:
        return sum(1 for report in self.sources if report.kind == kind)

    @property
    def new(self) -> int:
        return sum(r.new for r in self.sources)

    @property
    def updated(self) -> int:
        return sum(r.updated for r in self.sources)

    @property
    def held_back(self) -> int:
        return sum(r.held_back for r in self.sources)

    @property
    def failures(self) -> list[SourceReport]:
        return [r for r in self.sources if r.kind in ("failed", "gone")]

    @property
    def dropped(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for report in self.sources:
            for label, count in report.dropped.items():
                totals[label] = totals.get(label, 0) + count
        return totals


def _clean_now(options: RunOptions, source: Source, filtered: bool, store: Store) -> bool:
    """False when this source's articles are stored uncleaned, to be cleaned when a feed shows them.

    Only a source's first run defers: its backlog is deep and mostly never shown (a cold start on
    1,000 feeds parses 58,000 items for 5,000 feed entries). Filters, full text and --explain need
    every article cleaned; a source the store knows is cleaned as it comes."""
    return bool(filtered or source.full_text or options.explain or store.has_articles(source.url))


# --- the run ---------------------------------------------------------------------------------


def select_sources(config: Config, only: Sequence[str]) -> tuple[Source, ...]:
    """The sources a run touches: all, or those named (by name, URL or category slug) with --only."""
    if not only:
        return config.sources
    wanted = set(only)
    return tuple(s for s in config.sources
                 if s.url in wanted or s.name in wanted or wanted.intersection(s.categories))


def rules_for(config: Config, source: Source) -> tuple[Rule, ...]:
    """Global, then category, then source filter rules, compiled (config already validated them)."""
    raw: list[dict[str, object]] = list(config.filters)
    for slug in source.categories:
        raw.extend(config.categories[slug].filters)
    raw.extend(source.filters)
    if not raw:
        return ()
    from aggregator.filters import compile_filters  # re2 and regex: imported only when a rule needs them

    return compile_filters(raw, f"source {source.label!r}")


def run(config: Config, options: RunOptions = RunOptions(), *, now: datetime | None = None,
        on_progress: Callable[[SourceReport], None] | None = None) -> RunSummary:
    """One complete run. Raises AggregatorError only for run-wide problems (state, lock, output)."""
    now = now or datetime.now(UTC)
    started = time.monotonic()
    deadline = options.clock() + config.fetch.run_deadline  # past it no new work starts (issue 20)
    summary = RunSummary(started=now, dry_run=options.dry_run)
    sources = select_sources(config, options.only)
    # a dry run writes only a throwaway copy, but previews a run that could not store anything: refused too
    check_output_dir(str(Path(config.state).parent), "state folder")
    if not options.dry_run:
        check_output_dir(config.output.dir)
    with contextlib.ExitStack() as stack:
        wait_s = config.lock_timeout if options.lock_timeout_s is None else options.lock_timeout_s
        if options.dry_run:  # work on a throwaway copy: the real state and outputs stay untouched
            refuse_fresh(Path(config.state), "" if options.new_state else earlier_runs(config))
            copy = _copy_state(config.state, Path(stack.enter_context(tempfile.TemporaryDirectory())))
            store = stack.enter_context(Store.open(copy, lock_timeout_s=wait_s))
        else:
            store = stack.enter_context(open_store(config, lock_timeout_s=wait_s, new_state=options.new_state))
        raw_states = store.source_states()
        before = _snapshot(config, store, now) if options.dry_run else {}
        pool = stack.enter_context(_LazyPool(len(sources), options.workers))  # publishing cleans in it too
        with store.batched():  # commits a few times a second, not once per source
            asyncio.run(_fetch_and_ingest(config, options, sources, raw_states, store, now, summary, on_progress,
                                          pool, deadline))
        if options.dry_run:
            summary.changes = _diff(before, _snapshot(config, store, now))
        else:
            store.sync()  # every stored article durable before any feed shows it
            key = _publish_key(config, store.generation())
            if _outputs_current(config, key):
                summary.publish = PublishReport((), (), ())  # nothing changed: nothing to render
            else:
                summary.publish = publish(config, store, now, workers=options.workers, executor=pool.running())
            if options.clock() < deadline:  # housekeeping is new work: not past the deadline
                _prune_daily(config, store, now)
    summary.seconds = time.monotonic() - started
    return summary


async def _fetch_and_ingest(config: Config, options: RunOptions, sources: Sequence[Source],
                            raw_states: Mapping[str, Mapping[str, object]], store: Store, now: datetime,
                            summary: RunSummary, on_progress: Callable[[SourceReport], None] | None,
                            pool: _LazyPool, deadline: float) -> None:
    """Fetch and store every source. Past `deadline` (options.clock) no body is handed to a worker, the
    run stops waiting for those in work, and each such source is reported unfinished with its state
    as before the fetch, so the next run fetches and processes it again."""
    loop = asyncio.get_running_loop()
    clock = options.clock
    unfinished_error = f"not finished: run deadline ({config.fetch.run_deadline:g} s) reached"
    pool.warm()
    pending: list[asyncio.Task[None]] = []
    deferred: list[_Deferred] = []  # full-text sources: stored once their pages are in
    rules = {s.url: rules_for(config, s) for s in sources}
    states = {url: SourceState.from_dict(data) for url, data in raw_states.items()}
    for source in sources:  # teasers waiting for their full text: read the feed again, whatever its validators say
        state = states.get(source.url)
        if source.full_text and state is not None and state.full_text_retries:
            states[source.url] = replace(state, etag="", last_modified="", body_hash="")

    unsaved: dict[str, dict[str, object]] = {}  # fetch states, written in batches (one commit each)

    def save_states() -> None:
        store.save_source_states(unsaved)
        unsaved.clear()

    def finish(report: SourceReport, outcome: FetchOutcome, state: SourceState) -> None:
        report.moved_to = getattr(state, "moved_to", "") or ""
        report.state = state
        # tz_offset_s stays as it was unless this run parsed the feed (date_state: new offset and samples)
        extra = {k: v for k, v in raw_states.get(outcome.source.url, {}).items() if k == "tz_offset_s"}
        extra.update(report.date_state)
        report.date_state = {}  # handed to the state; kept on 1,000 reports it was ~10 MB
        unsaved[outcome.source.url] = {**state.to_dict(), **extra}
        if len(unsaved) >= STATE_BATCH:
            save_states()
        summary.sources.append(report)
        if on_progress:
            on_progress(report)

    def failed_internally(outcome: FetchOutcome, exc: Exception) -> None:
        # a bug while handling one source must cost only that source; a StateError is never caught here:
        # the database itself is unusable, and the whole run stops
        log.exception("source %r (%s): internal error", outcome.source.label, outcome.source.url)
        report = SourceReport(outcome.source, "failed", f"internal error: {type(exc).__name__}: {exc}")
        finish(report, outcome, outcome.state)

    def not_finished(outcome: FetchOutcome) -> None:
        state = replace(states.get(outcome.source.url, SourceState()), last_error=unfinished_error)
        finish(SourceReport(outcome.source, "failed", unfinished_error), outcome, state)

    async def ingest_body(outcome: FetchOutcome, packed: bytes) -> None:
        try:
            if clock() >= deadline:
                not_finished(outcome)
                return
            await ingest_fetched(outcome, packed)
        except asyncio.CancelledError:  # the deadline passed while its body was in a worker
            not_finished(outcome)
        except StateError:
            raise
        except Exception as exc:  # noqa: BLE001 - see failed_internally
            failed_internally(outcome, exc)
        finally:
            backlog.done(len(packed))

    async def ingest_fetched(outcome: FetchOutcome, packed: bytes) -> None:
        report = SourceReport(outcome.source, outcome.kind, outcome.error)
        # articles waiting for a full-text retry must be parsed, not skipped as known
        retrying = outcome.source.full_text and outcome.state.full_text_retries
        known = frozenset() if retrying else store.known_fingerprints(outcome.source.url)
        executor = await pool.ready()
        clean_now = _clean_now(options, outcome.source, bool(rules[outcome.source.url]), store)
        processed = await loop.run_in_executor(
            executor, process_body, packed, dict(outcome.headers), outcome.source,
            outcome.final_url, config.clean, rules[outcome.source.url], now, options.explain, known,
            clean_now)
        if outcome.source.full_text and processed.feed is not None:
            deferred.append(_Deferred(outcome, processed, report))
            return
        finish(report, outcome, _ingest_processed(config, options, store, outcome, processed, report, now))

    def ingest_unchanged(outcome: FetchOutcome) -> None:
        """A 304, an unchanged body, a failure: nothing to parse, so handled at once, not as a task."""
        report = SourceReport(outcome.source, outcome.kind, outcome.error)
        if outcome.kind in ("failed", "gone"):
            report.error = outcome.error or outcome.kind
        if {outcome.source.url, outcome.source.name} & set(options.accept_burst):
            # nothing new was parsed (e.g. 304), but the held-back burst is stored: release it
            released = store.upsert_articles(outcome.source.url, [], now, accept_burst=True, listing=False)
            report.new, report.warnings = released.new, released.warnings
        finish(report, outcome, outcome.state)

    fatal: list[StateError] = []  # raised after fetching: inside fetch_sources' tasks it would be wrapped
    backlog = _Backlog(MAX_WAITING_BYTES)
    renderer_import: list[threading.Thread] = []

    def on_outcome(outcome: FetchOutcome) -> None:
        if outcome.kind != "fetched" or fatal:
            backlog.arrived(outcome.source, 0)
        if fatal:
            return
        if outcome.kind == "fetched" and not renderer_import:
            renderer_import.append(_import_renderer())
        if outcome.kind != "fetched":
            try:
                ingest_unchanged(outcome)
            except StateError as exc:
                fatal.append(exc)
            except Exception as exc:  # noqa: BLE001 - see failed_internally
                failed_internally(outcome, exc)
            return
        # Bodies wait here for a free worker while fetching races ahead: packed, they take ~5x
        # less memory and are cheaper to send to the worker (zlib level 1: ~300 MB/s).
        packed = zlib.compress(outcome.body, 1) if outcome.body else b""
        backlog.arrived(outcome.source, len(packed))
        pending.append(loop.create_task(ingest_body(replace(outcome, body=b""), packed)))

    await fetch_sources(sources, config.fetch, states, now, force=options.force,
                        retry_gone=options.retry_gone, on_outcome=on_outcome, admit=backlog.admit)
    if fatal:
        raise fatal[0]
    while pending:  # ingest tasks may still be parsing
        batch, pending[:] = list(pending), []
        _done, late = await asyncio.wait(batch, timeout=max(0.0, deadline - clock()))
        for task in late:
            task.cancel()  # a call already in a worker still ends by itself (user patterns are bounded)
        await asyncio.gather(*batch)
    if deferred and clock() >= deadline:
        for item in deferred:
            not_finished(item.outcome)
        deferred.clear()
    if deferred:
        await _add_full_text(config, store, deferred, await pool.ready(), now)
        for item in deferred:
            state = _ingest_processed(config, options, store, item.outcome, item.processed, item.report, now)
            finish(item.report, item.outcome, replace(state, full_text_retries=item.retries))
    save_states()
    order = {s.url: i for i, s in enumerate(sources)}
    summary.sources.sort(key=lambda r: order.get(r.source.url, 0))


class _Backlog:
    """Bytes of fetched bodies waiting for a worker, plus an estimate for each source admitted to
    fetching and not yet answered. admit() holds back new fetches while these would pass `limit`, so
    memory stays bounded however many sources a cold start has, while a run whose sources answer 304
    is never held back (nothing waits, and an estimate is returned with each answer)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.waiting = limit, 0
        self._reserved: dict[str, int] = {}  # source URL -> its estimate, until its outcome comes
        self._reserved_bytes = 0
        self._bodies, self._body_bytes = 0, 0
        self._changed = asyncio.Event()

    def _estimate(self) -> int:
        return max(16 * 1024, self._body_bytes // self._bodies if self._bodies else 32 * 1024)

    async def admit(self, source: Source) -> None:
        while self.waiting + self._reserved_bytes + self._estimate() > self.limit and (
                self.waiting or self._reserved):  # an empty backlog always admits one
            self._changed.clear()
            await self._changed.wait()
        self._reserved[source.url] = estimate = self._estimate()
        self._reserved_bytes += estimate

    def arrived(self, source: Source, size: int) -> None:
        """The source's outcome is in, with `size` bytes of body waiting for a worker (0: none)."""
        self._reserved_bytes -= self._reserved.pop(source.url, 0)
        if size:
            self.waiting += size
            self._bodies, self._body_bytes = self._bodies + 1, self._body_bytes + size
        self._changed.set()

    def done(self, size: int) -> None:
        self.waiting -= size
        self._changed.set()


@dataclass
class _Deferred:
    outcome: FetchOutcome
    processed: Processed
    report: SourceReport
    retries: tuple[tuple[str, int], ...] = ()  # the source's state.full_text_retries after this run


# Article pages are bigger than feeds and less important: a tighter cap, no retries within a run.
FULL_TEXT_MAX_BODY = 5 * 1024 * 1024
# A page that gave no article text is tried again on the next runs that read the feed, this many times
# in all: a page down for a while gets its full text later, a page that never has any costs 3 fetches.
FULL_TEXT_ATTEMPTS = 3


async def _add_full_text(config: Config, store: Store, deferred: Sequence[_Deferred], executor: Executor | None,
                         now: datetime) -> None:
    """Fetch the pages of new articles from full-text sources, and of teasers due a retry, and extract them."""
    wanted: dict[str, list[tuple[_Deferred, int]]] = {}
    failures: dict[int, dict[str, str]] = {}  # id(item) -> article id -> why its full text is missing
    for item in deferred:
        assert item.processed.feed is not None
        known = store.articles_for([item.outcome.source.url], now=now)
        known_ids, known_links = {a.id for a in known}, {a.link for a in known}
        retrying = dict(item.outcome.state.full_text_retries)
        failures[id(item)] = {}
        if retrying:
            item.processed = _only_new_and_retried(item.processed, known_ids, known_links, retrying)
        feed = item.processed.feed
        assert feed is not None
        for index, article in enumerate(feed.articles):
            is_new = article.id not in known_ids and article.link not in known_links
            if article.link and (is_new or article.id in retrying):
                wanted.setdefault(article.link, []).append((item, index))  # cached by URL within the run
    if wanted:
        await _fetch_full_texts(config, wanted, failures, executor, now)
    for item in deferred:
        item.retries = _next_retries(item, failures[id(item)])


def _only_new_and_retried(processed: Processed, known_ids: Collection[str], known_links: Collection[str],
                          retrying: Collection[str]) -> Processed:
    """A feed read in full for its retries: the other known articles count as seen, as on any run,
    instead of being stored again with their teasers over the full text they got."""
    assert processed.feed is not None
    keep, seen = [], list(processed.seen)
    for article in processed.feed.articles:
        if article.id in retrying or (article.id not in known_ids and article.link not in known_links):
            keep.append(article)
        elif article.fingerprint:
            seen.append(article.fingerprint)
    return replace(processed, feed=replace(processed.feed, articles=tuple(keep)), seen=tuple(seen))


def _next_retries(item: _Deferred, failed: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """Which teasers to retry on later runs: those that failed this time, until FULL_TEXT_ATTEMPTS."""
    before = dict(item.outcome.state.full_text_retries)
    retries: dict[str, int] = {}
    for article_id, why in failed.items():
        attempts = before.get(article_id, 0) + 1
        if attempts < FULL_TEXT_ATTEMPTS:
            retries[article_id] = attempts
            item.report.full_text_failures.append(f"{why}; kept the teaser (attempt {attempts} of "
                                                  f"{FULL_TEXT_ATTEMPTS}, retried on a later run)")
        else:
            item.report.full_text_failures.append(f"{why}; kept the teaser (gave up after {attempts} attempts)")
    return tuple(sorted(retries.items()))


async def _fetch_full_texts(config: Config, wanted: Mapping[str, list[tuple[_Deferred, int]]],
                            failures: dict[int, dict[str, str]], executor: Executor | None, now: datetime) -> None:
    """Fetch the wanted pages (same per-host budgets) and put each extracted article in its feed."""
    from aggregator.enrich import full_text_article

    page_sources = [Source(url=url, categories=(), name=f"page of {wanted[url][0][0].outcome.source.label}")
                    for url in wanted]
    fetch_config = replace(config.fetch, retries=0, max_body=min(config.fetch.max_body, FULL_TEXT_MAX_BODY))
    outcomes = await fetch_sources(page_sources, fetch_config, {}, now, force=True)
    loop = asyncio.get_running_loop()
    for outcome in outcomes:
        targets = wanted[outcome.source.url]
        for item, index in targets:
            assert item.processed.feed is not None
            articles = list(item.processed.feed.articles)
            if outcome.kind != "fetched":
                failures[id(item)][articles[index].id] = (f"full text of {outcome.source.url}: "
                                                          f"{outcome.error or outcome.kind}")
                continue
            enriched, problem = await loop.run_in_executor(
                executor, full_text_article, articles[index], outcome.body, outcome.final_url or outcome.source.url,
                config.clean, item.outcome.source.clean_rules)
            if problem:
                failures[id(item)][articles[index].id] = f"full text of {outcome.source.url}: {problem}"
                continue
            articles[index] = enriched
            item.processed = replace(item.processed, feed=replace(item.processed.feed, articles=tuple(articles)))


def _ingest_processed(config: Config, options: RunOptions, store: Store, outcome: FetchOutcome,
                      processed: Processed, report: SourceReport, now: datetime) -> SourceState:
    source = outcome.source
    if processed.feed is None:
        report.kind, report.error = "failed", processed.error
        return mark_parse_failed(outcome.state, processed.error, config.fetch, now)
    feed = processed.feed
    for label, _title in processed.dropped:
        report.dropped[label] = report.dropped.get(label, 0) + 1
    report.explain = processed.explain + tuple(f"filtered by {label}: {title!r}" for label, title in processed.dropped)
    report.articles = len(feed.articles) + len(processed.seen)
    from aggregator.enrich import correct_dates  # with lxml (full text): only for a parsed body

    margin = timedelta(seconds=config.clean.future_margin)
    articles, report.date_state = correct_dates(feed.articles, store.date_samples(source.url), now, margin)
    accept = bool({source.url, source.name}.intersection(options.accept_burst))
    result = store.upsert_articles(source.url, articles, now, accept_burst=accept,
                                   burst_threshold=config.burst_threshold, seen_fingerprints=processed.seen,
                                   hashes=processed.hashes,
                                   caps=Caps(config.fetch.max_new_per_fetch, config.fetch.max_items_per_source))
    report.new, report.updated, report.held_back = result.new, result.updated, result.held_back
    report.warnings = feed.warnings + result.warnings + tuple(report.full_text_failures)
    return reschedule_after_parse(outcome.state, feed.meta, outcome.headers, config.fetch, source.interval, now)


PRUNE_EVERY_S = 86400


def _prune_daily(config: Config, store: Store, now: datetime) -> None:
    """Automatic pruning, at most once a day (it scans the whole store); a marker file keeps the time."""
    marker = Path(config.state + ".pruned")
    try:
        if marker.exists() and now.timestamp() - marker.stat().st_mtime < PRUNE_EVERY_S:
            return
    except OSError:
        return
    try:
        prune(config, store, now, config.retention)
        marker.touch()
    except (AggregatorError, OSError) as exc:  # housekeeping: never fail a run that already published
        log.warning("automatic pruning skipped: %s", exc)
        return
    os.utime(marker, (now.timestamp(), now.timestamp()))


def earlier_runs(config: Config) -> str:
    """A file that only earlier runs leave (the publish and prune markers beside the state, the combined
    feed), or "": with one, a missing or empty state file is refused, not silently started afresh."""
    for path in (_publish_marker(config), Path(config.state + ".pruned"), Path(config.output.dir) / "all.atom"):
        if path.exists():
            return str(path)
    return ""


def open_store(config: Config, *, lock_timeout_s: float | None = None, new_state: bool = False) -> Store:
    """The state store of `config`, locked; a missing or empty state file (or one no run wrote to) is
    refused when earlier runs show (issue 20), unless `new_state`. A config without sources has no
    state to lose (and its runs write none)."""
    return Store.open(config.state, lock_timeout_s=config.lock_timeout if lock_timeout_s is None else lock_timeout_s,
                      earlier_runs="" if new_state or not config.sources else earlier_runs(config))


def prune(config: Config, store: Store, now: datetime, keep_s: float) -> int:
    """Retention: drop state older than keep_s, except what a feed shows now."""
    showing = {r.id for _spec, rows in feed_rows(config, store, now) for r in rows}
    return store.prune(keep_days=keep_s / 86400, now=now, active_source_urls=[s.url for s in config.sources],
                       keep_ids=showing)


class _LazyPool:
    """The worker pool (pool.PipePool), for runs of POOL_THRESHOLD sources or more. One worker starts
    with the first requests and imports (~0.3 s) while they are in flight, the others with the first
    body to parse. Measured on 1,000 sources: all of them with the first body held a steady run at
    100 ms per request back by ~0.3 s (the bodies waited for the imports); all of them at once made
    a run where every source answers 304 ~0.3 s slower at 0 ms (their imports took CPU from the run)."""

    def __init__(self, count: int, workers: int) -> None:
        self._count, self._workers = count, workers
        self._executor: PipePool | None = None

    def warm(self, workers: int | None = 1) -> None:
        """Start `workers` workers now (None: all), at lower priority than the run; calls queue until
        one is ready."""
        if self._executor is None:
            self._executor = _make_executor(self._count, self._workers, start=workers)
        elif workers is None:
            self._executor.grow()

    async def ready(self) -> Executor | None:
        """The pool, all its workers started (None: the default thread pool, for a few feeds)."""
        self.warm(workers=None)
        return self._executor

    def started(self) -> Executor:
        """The pool, all its workers started now."""
        self.warm(workers=None)
        assert self._executor is not None
        return self._executor

    def running(self) -> Executor | None:
        """The pool if it was started (publishing then cleans waiting articles in it), else None."""
        return self._executor

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


def _import_renderer() -> threading.Thread:
    """Import feedgen and lxml for publishing in a thread while requests are in flight: ~0.03 s off a
    publishing run's critical path. Started by the first body, so a run where every source answers
    304 (and nothing is published) never pays for it."""
    thread = threading.Thread(target=importlib.import_module, args=("aggregator.publish._feedgen",),
                              name="renderer-import", daemon=True)
    thread.start()
    return thread


def _make_executor(count: int, workers: int, start: int | None = None) -> PipePool | None:
    if count < POOL_THRESHOLD:
        return None  # run_in_executor(None) uses the default thread pool: cheap for a few feeds
    return PipePool(workers or os.cpu_count() or 1, preload=WORKER_MODULES, nicer_than=os.getpid(), start=start)


# --- publishing -------------------------------------------------------------------------------


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
    if _clean_waiting(config, store, [r for _spec, rows in feeds for r in rows if r.needs_cleaning], workers,
                      executor):
        feeds = read()  # cleaned rows have new hashes; one whose cleaning failed stays out of every feed
    return [(spec, [r for r in rows if not r.needs_cleaning]) for spec, rows in feeds]


def _clean_waiting(config: Config, store: Store, waiting: list[FeedRow], workers: int = 0,
                   executor: Executor | None = None) -> bool:
    """Every output reads only cleaned articles: any still waiting (a first run's articles that a
    feed now shows) is cleaned here, once, and stored so. False when none was waiting."""
    if not waiting:
        return False
    rules = {s.url: s.clean_rules for s in config.sources}
    unique = list({r.key: r for r in waiting}.values())
    with contextlib.ExitStack() as stack:
        if executor is None and len(unique) >= WAITING_POOL_THRESHOLD:
            # the run's pool is not up: one for this (--workers holds here too)
            executor = stack.enter_context(_LazyPool(len(unique), workers).started())
        pool = executor if len(unique) >= WAITING_POOL_THRESHOLD else None
        cleaning: list[Future[list[tuple[Article, Hashes] | None]]] = []  # the chunk in the workers
        for start in range(0, len(unique), WAITING_CHUNK):  # a chunk at a time: memory stays flat
            jobs = [(a, rules.get(a.source_url, ())) for a in store.articles_of(unique[start:start + WAITING_CHUNK])]
            if pool is None:
                _save_cleaned(store, [clean_batch(config.clean, jobs)])
                continue
            # a cold start's thousands: in the pool, in batches (one round trip per batch). The next
            # chunk is sent before the last one is stored, so the workers never wait for the store.
            previous = cleaning
            cleaning = [pool.submit(clean_batch, config.clean, jobs[i:i + WAITING_BATCH])
                        for i in range(0, len(jobs), WAITING_BATCH)]
            _save_cleaned(store, [f.result() for f in previous])
        _save_cleaned(store, [f.result() for f in cleaning])
    return True


def _save_cleaned(store: Store, batches: Sequence[Sequence[tuple[Article, Hashes] | None]]) -> None:
    done = [a for batch in batches for a in batch if a is not None]
    if done:
        store.save_cleaned(done)


WAITING_POOL_THRESHOLD = 200  # below this, cleaning in-process beats starting workers
WAITING_BATCH = 100
WAITING_CHUNK = 500  # read, cleaned and stored together (2,000 held ~25 MB more in a cold start)


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
        key=_publish_key(config, store.generation()), digests=digests,
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
        marker = _publish_marker(config)
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


def _publish_key(config: Config, generation: int) -> str:
    """The store's generation (bumped in the same transaction as every change to stored articles, so
    a run killed after storing still publishes next time) and the config. While both are as at the
    last publish, rendering would give the same bytes, so the run skips publishing altogether."""
    return hashlib.sha256(f"{generation}\x00{_config_shape(config)}".encode()).hexdigest()


def _publish_marker(config: Config) -> Path:
    return Path(config.state + ".published")


def _marker_lines(config: Config, count: int) -> list[dict[str, Any]]:
    """The marker's first `count` JSON lines, a dict each; a missing or malformed one reads as {}."""
    lines: list[dict[str, Any]] = []
    try:
        with _publish_marker(config).open(encoding="utf-8") as handle:
            for _ in range(count):
                try:
                    data = json.loads(handle.readline() or "{}")
                except ValueError:
                    data = {}
                lines.append(data if isinstance(data, dict) else {})
    except (OSError, UnicodeDecodeError):
        pass
    return lines + [{}] * (count - len(lines))


def _outputs_current(config: Config, key: str) -> bool:
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


def check_output_dir(path: str, what: str = "output folder") -> None:
    """Fail before fetching anything when the output (or state) folder cannot be written."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise AggregatorError(f"{what} {path}: not writable: {exc.strerror or exc}") from exc


def _copy_state(path: str, folder: Path) -> str:
    copy = folder / "state.db"
    if Path(path).exists():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as src, \
                    contextlib.closing(sqlite3.connect(copy)) as dst:
                src.backup(dst)
        except sqlite3.Error as exc:
            raise StateError(f"state {path}: cannot copy it to {copy} for a dry run: {exc}") from exc
    return str(copy)


def _snapshot(config: Config, store: Store, now: datetime) -> dict[str, dict[str, str]]:
    return {spec.slug: {a.id: f"{a.title}\x00{_digest(a)}" for a in articles}
            for spec, articles in feed_contents(config, store, now)}


def _digest(article: Article) -> str:
    return hashlib.sha1(f"{article.title}\x00{article.content_html}".encode("utf-8", "replace")).hexdigest()


def _title_of(snapshot_value: str) -> str:
    return snapshot_value.split("\x00", 1)[0]


def _diff(before: Mapping[str, Mapping[str, str]], after: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, list[str]]]:
    changes: dict[str, dict[str, list[str]]] = {}
    title = _title_of
    for slug in after:
        old, new = before.get(slug, {}), after[slug]
        entry = {
            "new": [title(new[i]) for i in new if i not in old],
            "updated": [title(new[i]) for i in new if i in old and old[i] != new[i]],
            "removed": [title(old[i]) for i in old if i not in new],
        }
        if any(entry.values()):
            changes[slug] = entry
    return changes


__all__ = ["AggregatorError", "RunOptions", "RunSummary", "SourceReport", "run", "publish", "select_sources"]
