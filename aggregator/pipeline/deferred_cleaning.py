"""Articles stored uncleaned (a cold start's hundreds of thousands) are cleaned only when a feed is
about to show them, in chunks, in the workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING

from aggregator.model import Article, Config
from aggregator.pipeline.workers import LazyPool
from aggregator.store import Store
from aggregator.store.db import FeedRow
from aggregator.worker_jobs import clean_batch

if TYPE_CHECKING:
    from aggregator.store.dedup import Hashes


def clean_waiting(config: Config, store: Store, waiting: list[FeedRow], workers: int = 0,
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
            executor = stack.enter_context(LazyPool(len(unique), workers).started())
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


WAITING_CHUNK = 500  # read, cleaned and stored together (larger chunks held more in a cold start)
