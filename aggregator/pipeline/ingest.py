"""Fetch and store every source of one run: hands each fetched body to a worker, stores what comes back,
keeps memory bounded (Backlog) and stops taking work at the run's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aggregator.errors import StateError
from aggregator.fetch import (
    FetchOutcome,
    SourceState,
    fetch_sources,
    mark_parse_failed,
    reschedule_after_parse,
)
from aggregator.fetch.schedule import due_at_us
from aggregator.model import Config, FilterSpec, Source
from aggregator.pipeline.full_text import Deferred, add_full_text
from aggregator.pipeline.results import RunOptions, RunSummary, SourceReport
from aggregator.pipeline.run_log import log_source
from aggregator.pipeline.workers import LazyPool
from aggregator.store import Store
from aggregator.store.upsert import Caps
from aggregator.worker_jobs import BodyJob, Processed, process_body

if TYPE_CHECKING:
    from aggregator.filters import Rule

log = logging.getLogger("aggregator")


# Fetched bodies (zlib-packed) waiting for a worker, at most: past this, no new source is fetched
# until the workers catch up. A cold start fetches in seconds what takes minutes to parse; 8 MB
# (~300 farm feeds packed) keeps both workers fed for seconds, and the run's process stays small.
MAX_WAITING_BYTES = 8 * 1024 * 1024


# Fetch states are committed this many at a time. A run killed in between loses at most these
# validators: those sources are fetched and parsed again, and their items are recognised as known.
STATE_BATCH = 100


def _clean_now(options: RunOptions, source: Source, filtered: bool, store: Store) -> bool:
    """False when this source's articles are stored uncleaned, to be cleaned when a feed shows them.

    Only a source's first run defers: its backlog is deep and mostly never shown (a cold start on
    1,000 feeds parses 58,000 items for 5,000 feed entries). Filters, full text and --explain need
    every article cleaned; a source the store knows is cleaned as it comes."""
    return bool(filtered or source.full_text or options.explain or store.has_articles(source.url))


def rules_for(config: Config, source: Source) -> tuple[Rule, ...]:
    """Global, then category, then source filter rules, compiled (config already validated them)."""
    raw: list[FilterSpec] = list(config.filters)
    for slug in source.categories:
        raw.extend(config.categories[slug].filters)
    raw.extend(source.filters)
    if not raw:
        return ()
    from aggregator.filters import compile_filters  # re2 and regex: imported only when a rule needs them

    return compile_filters(raw, f"source {source.label!r}")


async def fetch_and_ingest(config: Config, options: RunOptions, sources: Sequence[Source],
                           raw_states: Mapping[str, Mapping[str, object]], store: Store, now: datetime,
                           summary: RunSummary, on_progress: Callable[[SourceReport], None] | None,
                           pool: LazyPool, deadline: float, backlog: Backlog | None = None) -> None:
    """Fetch and store every source. Past `deadline` (options.clock) no body is handed to a worker, the
    run stops waiting for those in work, and each such source is reported unfinished with its state
    as before the fetch, so the next run fetches and processes it again. `backlog`: one shared with other
    ingests on this event loop (a worker's jobs), so their bodies waiting for the pool are bounded together."""
    ingest = Ingest(config, options, store, now, summary, on_progress, pool, deadline, raw_states)
    if backlog is not None:
        ingest.backlog = backlog
    await ingest.all(sources)


class Ingest:
    """One run's ingest: what its steps share (the store, the fetch states waiting to be saved, the
    bodies in the workers, the full-text sources held back) is here, each step a method."""

    def __init__(self, config: Config, options: RunOptions, store: Store, now: datetime, summary: RunSummary,
                 on_progress: Callable[[SourceReport], None] | None, pool: LazyPool, deadline: float,
                 raw_states: Mapping[str, Mapping[str, object]]) -> None:
        self.config, self.options, self.store, self.now = config, options, store, now
        self.summary, self.on_progress, self.pool, self.deadline = summary, on_progress, pool, deadline
        self.raw_states = raw_states
        self.unfinished_error = f"not finished: run deadline ({config.fetch.run_deadline:g} s) reached"
        self.states: dict[str, SourceState] = {}
        self.rules: dict[str, tuple[Rule, ...]] = {}
        self.in_work: list[asyncio.Task[None]] = []  # bodies handed to the workers, not yet stored
        self.deferred: list[Deferred] = []  # full-text sources: stored once their pages are in
        self.unsaved: dict[str, dict[str, object]] = {}  # fetch states, written in batches (one commit each)
        self.unsaved_due: dict[str, int] = {}  # with when each is next due (schedule.due_at_us)
        self.fatal: list[StateError] = []  # raised after fetching: inside fetch_sources' tasks it would be wrapped
        self.backlog = Backlog(MAX_WAITING_BYTES)
        self.fetch_started: dict[str, float] = {}  # source URL -> options.clock() when its fetch began
        self.fetch_s: dict[str, float] = {}  # source URL -> how long its fetch took (what -v logs)
        # what cleaning and the filters removed is recorded for --explain, and for -vv's stage lines
        self.explain = options.explain or log.isEnabledFor(logging.DEBUG)

    def is_late(self) -> bool:
        return self.options.clock() >= self.deadline

    async def all(self, sources: Sequence[Source]) -> None:
        self.pool.warm()
        self.rules = {s.url: rules_for(self.config, s) for s in sources}
        self.states = {url: SourceState.from_dict(data) for url, data in self.raw_states.items()}
        for source in sources:  # teasers waiting for their full text: read the feed again, whatever its validators say
            state = self.states.get(source.url)
            if source.full_text and state is not None and state.full_text_retries:
                self.states[source.url] = replace(state, etag="", last_modified="", body_hash="")
        await fetch_sources(sources, self.config.fetch, self.states, self.now, force=self.options.force,
                            retry_gone=self.options.retry_gone, on_outcome=self.on_outcome,
                            admit=self.admit)
        if self.fatal:
            raise self.fatal[0]
        await self.wait_for_workers()
        await self.finish_full_text()
        self.save_states()
        order = {s.url: i for i, s in enumerate(sources)}
        self.summary.sources.sort(key=lambda r: order.get(r.source.url, 0))

    # --- as each source's outcome comes in ------------------------------------------------------------

    async def admit(self, source: Source) -> None:
        """Called as each source's fetch is about to start: once the backlog has room for its body."""
        await self.backlog.admit(source)
        self.fetch_started[source.url] = self.options.clock()

    def on_outcome(self, outcome: FetchOutcome) -> None:
        url = outcome.source.url
        self.fetch_s[url] = self.options.clock() - self.fetch_started.pop(url, self.options.clock())
        if outcome.kind != "fetched" or self.fatal:
            self.backlog.arrived(outcome.source, 0)
        if self.fatal:
            return
        if outcome.kind != "fetched":
            try:
                self.ingest_unchanged(outcome)
            except StateError as exc:
                self.fatal.append(exc)
            except Exception as exc:  # noqa: BLE001 - see failed_internally
                self.failed_internally(outcome, exc)
            return
        # Bodies wait here for a free worker while fetching races ahead: packed, they take a
        # fraction of the memory and are cheaper to send to the worker (zlib's fastest level).
        packed = zlib.compress(outcome.body, 1) if outcome.body else b""
        self.backlog.arrived(outcome.source, len(packed))
        task = asyncio.get_running_loop().create_task(self.ingest_body(replace(outcome, body=b""), packed))
        self.in_work.append(task)

    def ingest_unchanged(self, outcome: FetchOutcome) -> None:
        """A 304, an unchanged body, a failure: nothing to parse, so handled at once, not as a task."""
        report = SourceReport(outcome.source, outcome.kind, outcome.error)
        if outcome.kind in ("failed", "gone"):
            report.error = outcome.error or outcome.kind
        if {outcome.source.url, outcome.source.name} & set(self.options.accept_burst):
            # nothing new was parsed (e.g. 304), but the held-back burst is stored: release it
            released = self.store.upsert_articles(outcome.source.url, [], self.now, accept_burst=True, listing=False)
            report.new, report.warnings = released.new, released.warnings
        self.finish(report, outcome, outcome.state)

    async def ingest_body(self, outcome: FetchOutcome, packed: bytes) -> None:
        try:
            if self.is_late():
                self.not_finished(outcome)
                return
            await self.ingest_fetched(outcome, packed)
        except asyncio.CancelledError:  # the deadline passed while its body was in a worker
            self.not_finished(outcome)
        except StateError:
            raise
        except Exception as exc:  # noqa: BLE001 - see failed_internally
            self.failed_internally(outcome, exc)
        finally:
            self.backlog.done(len(packed))

    async def ingest_fetched(self, outcome: FetchOutcome, packed: bytes) -> None:
        source = outcome.source
        report = SourceReport(source, outcome.kind, outcome.error)
        # articles waiting for a full-text retry must be parsed, not skipped as known
        retrying = source.full_text and outcome.state.full_text_retries
        job = BodyJob(
            packed=packed, headers=dict(outcome.headers), source=source, final_url=outcome.final_url,
            clean_config=self.config.clean, rules=self.rules[source.url], now=self.now,
            explain=self.explain,
            known=frozenset() if retrying else self.store.known_fingerprints(source.url),
            clean_now=self.explain or _clean_now(self.options, source, bool(self.rules[source.url]), self.store))
        executor = await self.pool.ready()
        processed = await asyncio.get_running_loop().run_in_executor(executor, process_body, job)
        if source.full_text and processed.feed is not None:
            self.deferred.append(Deferred(outcome, processed, report))
            return
        self.finish(report, outcome, _ingest_processed(self.config, self.options, self.store, outcome, processed,
                                                      report, self.now))

    # --- after fetching ---------------------------------------------------------------------------------

    async def wait_for_workers(self) -> None:
        while self.in_work:  # ingest tasks may still be parsing
            batch, self.in_work = list(self.in_work), []
            _done, late = await asyncio.wait(batch, timeout=max(0.0, self.deadline - self.options.clock()))
            for task in late:
                task.cancel()  # a call already in a worker still ends by itself (user patterns are bounded)
            await asyncio.gather(*batch)

    async def finish_full_text(self) -> None:
        if not self.deferred:
            return
        if self.is_late():
            for item in self.deferred:
                self.not_finished(item.outcome)
            return
        await add_full_text(self.config, self.store, self.deferred, await self.pool.ready(), self.now)
        for item in self.deferred:
            state = _ingest_processed(self.config, self.options, self.store, item.outcome, item.processed,
                                     item.report, self.now)
            self.finish(item.report, item.outcome, replace(state, full_text_retries=item.retries))

    # --- one source done --------------------------------------------------------------------------------

    def finish(self, report: SourceReport, outcome: FetchOutcome, state: SourceState) -> None:
        report.moved_to = getattr(state, "moved_to", "") or ""
        report.state = state
        report.size, report.elapsed_s = outcome.size, self.fetch_s.pop(outcome.source.url, 0.0)
        log_source(report, outcome)
        # tz_offset_s stays as it was unless this run parsed the feed (date_state: new offset and samples)
        extra = {k: v for k, v in self.raw_states.get(outcome.source.url, {}).items() if k == "tz_offset_s"}
        extra.update(report.date_state)
        report.date_state = {}  # handed to the state; kept on every report it adds up over a run
        self.unsaved[outcome.source.url] = {**state.to_dict(), **extra}
        self.unsaved_due[outcome.source.url] = due_at_us(state)
        if len(self.unsaved) >= STATE_BATCH:
            self.save_states()
        self.summary.sources.append(report)
        if self.on_progress:
            self.on_progress(report)

    def save_states(self) -> None:
        self.store.save_source_states(self.unsaved, self.unsaved_due)
        self.unsaved.clear()
        self.unsaved_due.clear()

    def failed_internally(self, outcome: FetchOutcome, exc: Exception) -> None:
        # a bug while handling one source must cost only that source; a StateError is never caught here:
        # the database itself is unusable, and the whole run stops
        log.exception("source %r (%s): internal error", outcome.source.label, outcome.source.url)
        report = SourceReport(outcome.source, "failed", f"internal error: {type(exc).__name__}: {exc}")
        self.finish(report, outcome, outcome.state)

    def not_finished(self, outcome: FetchOutcome) -> None:
        state = replace(self.states.get(outcome.source.url, SourceState()), last_error=self.unfinished_error)
        self.finish(SourceReport(outcome.source, "failed", self.unfinished_error), outcome, state)


class Backlog:
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


def _ingest_processed(config: Config, options: RunOptions, store: Store, outcome: FetchOutcome,
                      processed: Processed, report: SourceReport, now: datetime) -> SourceState:
    source = outcome.source
    if processed.feed is None:
        report.kind, report.error = "failed", processed.error
        return mark_parse_failed(outcome.state, processed.error, config.fetch, now)
    feed = processed.feed
    for dropped in processed.dropped:
        report.dropped[dropped.rule] = report.dropped.get(dropped.rule, 0) + 1
    report.explain = processed.explain + tuple(f"filtered by {d.rule}: {d.title!r}" for d in processed.dropped)
    if processed.dropped:  # remembered for `aggregator why` (one statement; a 304 never gets here)
        store.record_filtered(source.url, processed.dropped, now)
    report.articles = len(feed.articles) + len(processed.seen) + len(processed.dropped)
    report.parser = feed.parser
    from aggregator.timezones import correct_dates  # only for a parsed body

    margin = timedelta(seconds=config.clean.future_margin)
    articles, report.date_state = correct_dates(feed.articles, store.date_samples(source.url), now, margin)
    accept = bool({source.url, source.name}.intersection(options.accept_burst))
    result = store.upsert_articles(source.url, articles, now, accept_burst=accept,
                                   burst_threshold=config.burst_threshold, seen_fingerprints=processed.seen,
                                   hashes=processed.hashes,
                                   caps=Caps(config.fetch.max_new_per_fetch, config.fetch.max_items_per_source))
    report.new, report.updated, report.held_back = result.new, result.updated, result.held_back
    report.unchanged, report.capped = result.unchanged + len(processed.seen), len(result.capped)
    report.warnings = feed.warnings + result.warnings + tuple(report.full_text_failures)
    state = reschedule_after_parse(outcome.state, feed.meta, outcome.headers, config.fetch, source.interval, now)
    return replace(state, items=report.articles)
