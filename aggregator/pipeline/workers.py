"""The run's worker pool: started lazily (one worker with the first request, the rest with the first
body), used for parsing, cleaning and publishing's deferred cleaning.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor
from typing import Self

from aggregator.pool import PipePool

# Parsing, cleaning and filtering run in the workers (each imports them at start): the run's own
# process imports them only when it parses in-process, so a run where nothing changed never pays for
# lxml, nh3, feedparser and re2 (a fifth of a no-op run's start-up).
WORKER_MODULES = ["aggregator.worker_jobs", "aggregator.parse", "aggregator.clean", "aggregator.filters",
                  "aggregator.fulltext"]


# Below this many bodies to parse, a process pool costs more to start than it saves.
POOL_THRESHOLD = 8


class LazyPool:
    """The worker pool (pool.PipePool), for runs of POOL_THRESHOLD sources or more. One worker starts
    with the first requests and imports while they are in flight, the others with the first
    body to parse. Measured on 1,000 sources: all of them with the first body held a steady run at
    100 ms per request back (the bodies waited for the imports); all of them at once made
    a run where every source answers 304 slower at 0 ms (their imports took CPU from the run)."""

    def __init__(self, count: int, workers: int) -> None:
        self._count, self._workers = count, workers
        self._executor: PipePool | None = None

    def warm(self, workers: int | None = 1) -> None:
        """Start `workers` workers now (None: all), at lower priority than the run; calls queue until
        one is ready."""
        if self._executor is None:
            self._executor = make_executor(self._count, self._workers, start=workers)
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


def make_executor(count: int, workers: int, start: int | None = None) -> PipePool | None:
    if count < POOL_THRESHOLD:
        return None  # run_in_executor(None) uses the default thread pool: cheap for a few feeds
    return PipePool(workers or os.cpu_count() or 1, preload=WORKER_MODULES, nicer_than=os.getpid(), start=start)
