"""Full text in a run: the article pages of new items (and of teasers due a retry) of full_text sources,
fetched under the same budgets, extracted in the workers and put in place of the teasers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime

from aggregator.fetch import (
    FetchOutcome,
    fetch_sources,
)
from aggregator.model import Article, Config, Source
from aggregator.pipeline.results import SourceReport
from aggregator.store import Store
from aggregator.worker_jobs import Processed


@dataclass
class Deferred:
    outcome: FetchOutcome
    processed: Processed
    report: SourceReport
    retries: tuple[tuple[str, int], ...] = ()  # the source's state.full_text_retries after this run


# Article pages are bigger than feeds and less important: a tighter cap, no retries within a run.
FULL_TEXT_MAX_BODY = 5 * 1024 * 1024


# A page that gave no article text is tried again on the next runs that read the feed, this many times
# in all: a page down for a while gets its full text later, a page that never has any costs 3 fetches.
FULL_TEXT_ATTEMPTS = 3


async def add_full_text(config: Config, store: Store, deferred: Sequence[Deferred], executor: Executor | None,
                         now: datetime) -> None:
    """Fetch the pages of new articles from full-text sources, and of teasers due a retry, and extract them."""
    wanted: dict[str, list[tuple[Deferred, int]]] = {}
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
            if article.link and _wants_full_text(article, known_ids, known_links, retrying):
                wanted.setdefault(article.link, []).append((item, index))  # cached by URL within the run
    if wanted:
        await _fetch_full_texts(config, wanted, failures, executor, now)
    for item in deferred:
        item.retries = _next_retries(item, failures[id(item)])


def _wants_full_text(article: Article, known_ids: Collection[str], known_links: Collection[str],
                     retrying: Collection[str]) -> bool:
    """New to the store, or a teaser due a retry."""
    return article.id in retrying or (article.id not in known_ids and article.link not in known_links)


def _only_new_and_retried(processed: Processed, known_ids: Collection[str], known_links: Collection[str],
                          retrying: Collection[str]) -> Processed:
    """A feed read in full for its retries: the other known articles count as seen, as on any run,
    instead of being stored again with their teasers over the full text they got."""
    assert processed.feed is not None
    keep, seen = [], list(processed.seen)
    for article in processed.feed.articles:
        if _wants_full_text(article, known_ids, known_links, retrying):
            keep.append(article)
        elif article.fingerprint:
            seen.append(article.fingerprint)
    return replace(processed, feed=replace(processed.feed, articles=tuple(keep)), seen=tuple(seen))


def _next_retries(item: Deferred, failed: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
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


async def _fetch_full_texts(config: Config, wanted: Mapping[str, list[tuple[Deferred, int]]],
                            failures: dict[int, dict[str, str]], executor: Executor | None, now: datetime) -> None:
    """Fetch the wanted pages (same per-host budgets) and put each extracted article in its feed."""
    from aggregator.worker_jobs import full_text_article

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
