"""What the worker processes run: parse, clean and filter one fetched body, clean waiting articles, or
put an article page's full text in its article.

Pure CPU work, no I/O and no event loop. Kept apart from the pipeline so the workers (pool.py) import
only this and the parse/clean stages, not the HTTP client or the publishers (less time before the
first body can be parsed, and less memory in every worker).
"""

from __future__ import annotations

import hashlib
import logging
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aggregator import patterns
from aggregator.errors import ParseError
from aggregator.model import Article, CleanConfig, FilterDecision, ParsedFeed, Source

if TYPE_CHECKING:
    from aggregator.filters import Rule
    from aggregator.store.dedup import Hashes

log = logging.getLogger("aggregator")


@dataclass(frozen=True)
class Processed:
    feed: ParsedFeed | None
    error: str = ""
    dropped: tuple[FilterDecision, ...] = ()  # what the filters dropped, and by which rule
    explain: tuple[str, ...] = ()
    seen: tuple[str, ...] = ()  # fingerprints of items skipped because the store already has them
    hashes: dict[str, Hashes] = field(default_factory=dict)  # store.dedup.article_hashes by fingerprint


# Workers run this much nicer than their run: the run's own process (fetching, storing, publishing)
# is a run's critical path, and on two cores the workers and their imports took CPU from
# it. Measured on steady runs of 1,000 sources: faster in the median and in the worst case
# (bench/RESULTS.md). Workers still get every cycle the run leaves idle.
WORKER_NICENESS = 10


def yield_cpu_to(run_pid: int, pid: int) -> None:
    """Lower process `pid` (0: this one) to WORKER_NICENESS below the run; never raises."""
    try:
        target = min(os.getpriority(os.PRIO_PROCESS, run_pid) + WORKER_NICENESS, 19)
        if os.getpriority(os.PRIO_PROCESS, pid) < target:
            os.setpriority(os.PRIO_PROCESS, pid, target)
    except OSError:
        pass  # priority is an optimisation: a process we may not renice runs as it is


def fingerprint(article: Article) -> str:
    """A hash of everything an item says, as parsed (the feed's own metadata left out: it changes often)."""
    a = article
    fields = (a.source_name, a.original_id, a.title, a.link, a.authors, a.published, a.updated, a.summary,
              a.content_html, a.tags, a.enclosures, a.image, a.base_url, a.language)
    return hashlib.blake2b(repr(fields).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _split_known(articles: Sequence[Article], known: frozenset[str]) -> tuple[list[Article], list[str]]:
    """Articles to process, and fingerprints of known ones to skip. A known item sharing a guid or
    link with a new one is processed again, so the store judges them together (repeated guids).
    An article's fingerprint is its raw digest when the parser gave one (parse/known.py)."""
    marked = [a if a.fingerprint else replace(a, fingerprint=fingerprint(a)) for a in articles]
    fresh = [a for a in marked if a.fingerprint not in known]
    clashes = {a.original_id for a in fresh if a.original_id} | {a.link for a in fresh if a.link}
    todo = [a for a in marked if a.fingerprint not in known or a.original_id in clashes or a.link in clashes]
    kept = {id(a) for a in todo}
    return todo, [a.fingerprint for a in marked if id(a) not in kept]


@dataclass(frozen=True)
class BodyJob:
    """One fetched feed document and everything its processing depends on; pickled to a worker."""

    packed: bytes  # the body, zlib-compressed (cheaper to hold while it waits and to send)
    headers: Mapping[str, str]
    source: Source
    final_url: str  # where the body came from after redirects ("" = the source's URL)
    clean_config: CleanConfig
    rules: tuple[Rule, ...]  # the source's filter rules, compiled
    now: datetime
    explain: bool = False  # record what cleaning and the filters removed
    known: frozenset[str] = frozenset()  # fingerprints of items the store has: not parsed again
    # False: the articles are stored marked, and cleaned only if an output ever shows them
    # (pipeline.ingest's _clean_now); their title and link are cleaned now, as deduplication needs them
    clean_now: bool = True


def process_body(job: BodyJob) -> Processed:
    """Parse, clean and filter one feed document. Runs in a worker process; never raises."""
    packed, headers, source, final_url = job.packed, job.headers, job.source, job.final_url
    clean_config, rules, now, explain = job.clean_config, job.rules, job.now, job.explain
    known, clean_now = job.known, job.clean_now
    from aggregator.clean import clean_article, defer_cleaning
    from aggregator.filters import apply_filters
    from aggregator.parse import parse_feed
    from aggregator.store.dedup import article_hashes

    patterns.start_run(now, pattern_budget(clean_config))  # this run's time budgets for user patterns
    try:
        body = zlib.decompress(packed)
        parsed = parse_feed(body, headers, source.url, source.name, final_url or source.url, known)
    except ParseError as exc:
        return Processed(None, str(exc))
    except Exception as exc:  # noqa: BLE001 - a parser bug must cost only this source
        return Processed(None, f"parser crashed: {type(exc).__name__}: {exc}")
    name = source.name or parsed.meta.title.strip() or urlsplit(source.url).netloc or Path(source.url).name
    # replace() copies the article: skipped where the parser already gave the source's own name
    named = [a if a.source_name == name else replace(a, source_name=name) for a in parsed.articles]
    todo, seen = _split_known(named, known)
    kept: list[Article] = []
    dropped: list[FilterDecision] = []
    notes: list[str] = []
    for article in todo:
        if not clean_now:
            waiting = defer_cleaning(article)
            # an empty title is derived from the summary, and an article without guid or link is
            # known by its content's hash: both need the cleaning now
            if waiting.title and (waiting.original_id.strip() or waiting.link):
                kept.append(waiting)
                continue
        lines: list[str] | None = [] if explain else None
        try:
            cleaned = clean_article(article, clean_config, source.clean_rules, lines)
        except Exception as exc:  # noqa: BLE001 - one bad article never costs the feed
            notes.append(f"article {article.link or article.original_id!r} dropped: cleaning failed: {exc}")
            continue
        if lines:
            notes.extend(f"{cleaned.title[:60]!r}: {line}" for line in lines)
        label = apply_filters(cleaned, rules, now) if rules else None
        if label is not None:
            dropped.append(FilterDecision(label, cleaned.id, cleaned.original_id, cleaned.link,
                                          cleaned.title))
            continue
        kept.append(cleaned)
    # a pattern this source's articles disabled is told with this source (each pattern once a run)
    feed = replace(parsed, articles=tuple(kept), warnings=parsed.warnings + tuple(
        n for n in notes if "dropped:" in n) + tuple(patterns.take_notices()))
    # the store's hashes, computed here rather than in the run's one process (not for full text:
    # its content is replaced after this)
    hashes = {} if source.full_text else {a.fingerprint: article_hashes(a) for a in kept if a.fingerprint}
    return Processed(feed, dropped=tuple(dropped), explain=tuple(n for n in notes if "dropped:" not in n),
                      seen=parsed.skipped + tuple(seen), hashes=hashes)


def clean_batch(clean_config: CleanConfig, jobs: Sequence[tuple[Article, tuple[dict[str, object], ...]]]
                ) -> list[tuple[Article, Hashes] | None]:
    """Clean waiting articles (in a worker or in-process), each with the store's hashes of its cleaned
    self (store.dedup.article_hashes: normalizing HTML costs as much as cleaning it, so the workers
    do it); a failure costs that article, left out."""
    from aggregator.clean import clean_article
    from aggregator.store.dedup import article_hashes

    out: list[tuple[Article, Hashes] | None] = []
    for article, rules in jobs:
        try:
            cleaned = clean_article(article, clean_config, rules)
            out.append((cleaned, article_hashes(cleaned)))
        except Exception:  # noqa: BLE001 - one article's bug costs that article, not the feeds
            log.exception("article %s: cleaning failed; left out of the feeds", article.id)
            out.append(None)
    for notice in patterns.take_notices():
        log.warning("site rules: %s", notice)
    return out


def pattern_budget(clean_config: CleanConfig) -> patterns.Budget:
    return patterns.Budget(clean_config.regex_search_timeout, clean_config.regex_pattern_budget,
                           clean_config.regex_run_budget)


def full_text_article(article: Article, page: bytes, page_url: str, config: CleanConfig,
                      rules: Sequence[Mapping[str, object]]) -> tuple[Article, str]:
    """The article with its page's main content, cleaned; or the article unchanged and a reason."""
    from aggregator.clean import clean_article  # runs in a worker; the run's own process may never need it
    from aggregator.fulltext import extract_main_content

    try:
        content = extract_main_content(page, page_url)
    except Exception as exc:  # noqa: BLE001 - an extractor bug keeps the teaser
        return article, f"extractor failed: {type(exc).__name__}: {exc}"
    if not content:
        return article, "no article text found on the page"
    teaser = article.summary
    enriched = replace(article, content_html=content, base_url=page_url, summary=teaser)
    return clean_article(enriched, config, rules), ""
