"""The work of the worker's jobs, free of the queue: fetch one host's due sources, publish, plan a tick.

A WorkerContext is what one worker process keeps between jobs: the config (read again when its file
changes), the store's connection, the parser pool and the clock. Jobs of one process run on one event
loop; the store's calls are synchronous and short, so they never interleave inside a transaction.
Publishing runs in a thread on a connection of its own, so fetch jobs go on meanwhile.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aggregator.config import load_config
from aggregator.errors import ConfigError
from aggregator.model import Config
from aggregator.pipeline.housekeeping import prune_daily
from aggregator.pipeline.ingest import MAX_WAITING_BYTES, Backlog, fetch_and_ingest
from aggregator.pipeline.publishing import outputs_current, publish, publish_key
from aggregator.pipeline.results import RunOptions, RunSummary
from aggregator.pipeline.run_log import log_publish
from aggregator.pipeline.workers import LazyPool
from aggregator.publish import PublishReport
from aggregator.store import Store
from aggregator.worker.due import due_by_host, due_view

log = logging.getLogger("aggregator")


class ConfigWatch:
    """The config, read again when its file changes; a change that does not load keeps the last good
    config (logged once per change), so a typo never stops the workers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen = self._stamp()
        self.current: Config = load_config(self.path)

    def _stamp(self) -> tuple[int, int]:
        try:
            info = os.stat(self.path)
        except OSError:
            return (0, 0)
        return (info.st_mtime_ns, info.st_size)

    def __call__(self) -> Config:
        stamp = self._stamp()
        if stamp != self._seen:
            self._seen = stamp
            try:
                self.current = load_config(self.path)
                log.info("config %s changed: reloaded (%d sources)", self.path, len(self.current.sources))
            except ConfigError as exc:
                log.error("config %s changed but does not load; keeping the last good one: %s", self.path,
                          "; ".join(exc.problems))
        return self.current


@dataclass
class WorkerContext:
    config: Callable[[], Config]
    store: Store  # this process's connection (shared run lock); publishing opens its own
    pool: LazyPool
    clock: Callable[[], datetime]
    workers: int = 0  # parser processes, for publishing's deferred cleaning
    # fetched bodies waiting for the pool, over all of this process's jobs: memory stays bounded as in a run
    backlog: Backlog = field(default_factory=lambda: Backlog(MAX_WAITING_BYTES))


@dataclass(frozen=True)
class HostResult:
    fetched: int  # sources whose fetch ran (the others were no longer due)
    failed: int
    new: int
    updated: int

    @property
    def changed(self) -> bool:
        return bool(self.new or self.updated)


def plan_tick(ctx: WorkerContext) -> dict[str, list[str]]:
    """Host -> its due sources' URLs, now."""
    config, now = ctx.config(), ctx.clock()
    due, known = ctx.store.due_source_states(now)
    return due_by_host(config.sources, {url: due_view(raw) for url, raw in due.items()}, known, now)


async def fetch_host(ctx: WorkerContext, urls: Sequence[str]) -> HostResult:
    """Fetch, parse, clean and store the sources of `urls` still in the config and still due (the one-shot
    run's ingest, over these only). Run again after a crash, it finds what was stored already known."""
    config = ctx.config()
    wanted = set(urls)
    sources = tuple(s for s in config.sources if s.url in wanted)
    now = ctx.clock()
    summary = RunSummary(started=now, dry_run=False)
    options = RunOptions()
    deadline = options.clock() + config.fetch.run_deadline
    raw_states = ctx.store.source_states([s.url for s in sources])
    await fetch_and_ingest(config, options, sources, raw_states, ctx.store, now, summary, None, ctx.pool, deadline,
                           ctx.backlog)
    ran = [r for r in summary.sources if r.kind != "not_due"]
    result = HostResult(len(ran), sum(r.kind in ("failed", "gone") for r in ran),
                        sum(r.new for r in ran), sum(r.updated for r in ran))
    for report in ran:
        if report.kind in ("failed", "gone"):
            log.error("source %r (%s): %s", report.name, report.source.url, report.error)
    return result


def publish_if_changed(ctx: WorkerContext) -> PublishReport | None:
    """Publish when the store or the config changed since the last publish (None: nothing to do), then
    the daily pruning. Runs in a thread: its own connection, so the event loop's never crosses it."""
    config = ctx.config()
    now = ctx.clock()
    started = time.monotonic()
    with Store.open(config.state, lock_timeout_s=config.lock_timeout, shared=True) as store:
        key = publish_key(config, store.generation())
        if outputs_current(config, key, now):
            return None
        report = publish(config, store, now, workers=ctx.workers, executor=ctx.pool.running())
        log_publish(report, config.output.dir)
        log.info("published %d files (%d unchanged) in %.2f s", len(report.written), len(report.unchanged),
                 time.monotonic() - started)
        prune_daily(config, store, now)
    return report


def outputs_stale(ctx: WorkerContext) -> bool:
    """Whether the outputs this machine published are behind the store or the config. Never before the
    first source's state is saved: publishing an empty store would leave a marker that makes the next
    start refuse the state as lost (issue 20's guard), and there is nothing to show yet."""
    if not ctx.store.has_sources():
        return False
    config = ctx.config()
    return not outputs_current(config, publish_key(config, ctx.store.generation()), ctx.clock())
