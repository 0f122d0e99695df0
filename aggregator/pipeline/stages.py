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
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from aggregator.model import Config, Source
from aggregator.pipeline.dry_run import changes_between, copy_state, snapshot
from aggregator.pipeline.housekeeping import check_output_dir, earlier_runs, open_store, prune_daily
from aggregator.pipeline.ingest import fetch_and_ingest
from aggregator.pipeline.publishing import outputs_current, publish, publish_key
from aggregator.pipeline.results import RunOptions, RunSummary, SourceReport
from aggregator.pipeline.run_log import log_publish
from aggregator.pipeline.workers import LazyPool
from aggregator.publish import PublishReport
from aggregator.store import Store
from aggregator.store.db import refuse_fresh
from aggregator.state_location import is_database_url, local_base


def select_sources(config: Config, only: Sequence[str], titles: Mapping[str, str] | None = None
                   ) -> tuple[Source, ...]:
    """The sources a run touches: all, or those named with --only: by name, URL or category slug, or
    by feed title (`titles`: source URL -> its feed's own title) for a source without `name:`."""
    if not only:
        return config.sources
    wanted = set(only)
    titles = titles or {}
    return tuple(s for s in config.sources
                 if s.url in wanted or s.name in wanted or wanted.intersection(s.categories)
                 or (not s.name and titles.get(s.url) in wanted))


def feed_titles(states: Mapping[str, Mapping[str, object]]) -> dict[str, str]:
    """Source URL -> its feed's own title, as its last successful fetch saw it (saved states)."""
    return {url: str(state["title"]) for url, state in states.items() if state.get("title")}


def run(config: Config, options: RunOptions = RunOptions(), *, now: datetime | None = None,
        on_progress: Callable[[SourceReport], None] | None = None) -> RunSummary:
    """One complete run. Raises AggregatorError only for run-wide problems (state, lock, output)."""
    now = now or datetime.now(UTC)
    started = time.monotonic()
    deadline = options.clock() + config.fetch.run_deadline  # past it no new work starts (issue 20)
    summary = RunSummary(started=now, dry_run=options.dry_run)
    # a dry run writes only a throwaway copy, but previews a run that could not store anything: refused too
    check_output_dir(str(Path(local_base(config.state, config.path)).parent), "state folder")
    if not options.dry_run:
        check_output_dir(config.output.dir)
    with contextlib.ExitStack() as stack:
        wait_s = config.lock_timeout if options.lock_timeout_s is None else options.lock_timeout_s
        if options.dry_run:  # work on a throwaway copy: the real state and outputs stay untouched
            if not is_database_url(config.state):  # (a database without state cannot be copied: refused there)
                refuse_fresh(Path(config.state), "" if options.new_state else earlier_runs(config))
            copy = copy_state(config.state, Path(stack.enter_context(tempfile.TemporaryDirectory())))
            store = stack.enter_context(Store.open(copy, lock_timeout_s=wait_s))
        else:
            store = stack.enter_context(open_store(config, lock_timeout_s=wait_s, new_state=options.new_state))
        raw_states = store.source_states()
        sources = select_sources(config, options.only, feed_titles(raw_states) if options.only else {})
        before = snapshot(config, store, now) if options.dry_run else {}
        pool = stack.enter_context(LazyPool(len(sources), options.workers))  # publishing cleans in it too
        with store.batched():  # commits a few times a second, not once per source
            asyncio.run(fetch_and_ingest(config, options, sources, raw_states, store, now, summary, on_progress,
                                          pool, deadline))
        if options.dry_run:
            summary.changes = changes_between(before, snapshot(config, store, now))
        else:
            store.sync()  # every stored article durable before any feed shows it
            key = publish_key(config, store.generation())
            if outputs_current(config, key, now):
                summary.publish = PublishReport((), (), ())  # nothing changed: nothing to render
            else:
                summary.publish = publish(config, store, now, workers=options.workers, executor=pool.running())
            log_publish(summary.publish, config.output.dir)
            if options.clock() < deadline:  # housekeeping is new work: not past the deadline
                prune_daily(config, store, now)
    summary.seconds = time.monotonic() - started
    return summary
