"""Store timings at issue 8's scale: 1,000 sources, ~59,000 articles per cold run (run by hand).

    /work/venv/bin/python bench/store_bench.py [--sources 1000] [--per-source 59]

Articles come from the real corpus (parsed once with feedparser), cycled over the sources with
per-source guids and links so every source holds distinct articles.
"""

from __future__ import annotations

import argparse
import calendar
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.model import Article
from aggregator.store import Store

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus"
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def corpus_articles() -> list[Article]:
    out = []
    for path in sorted(CORPUS.glob("feeds/*/*.xml")) + sorted(CORPUS.glob("rsshub/*.xml")):
        doc = feedparser.parse(path.read_bytes(), sanitize_html=False)
        for e in doc.entries:
            parsed = e.get("published_parsed") or e.get("updated_parsed")
            date = datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None
            content = e["content"][0]["value"] if e.get("content") else e.get("summary", "")
            out.append(Article(id="", source_url="", source_name=doc.feed.get("title", ""),
                               original_id=e.get("id", ""), title=e.get("title", ""), link=e.get("link", ""),
                               published=date, summary=e.get("summary", "")[:200], content_html=content))
    return out


def source_batch(pool: list[Article], n: int, per_source: int) -> tuple[str, list[Article]]:
    url = f"https://source{n}.example/feed.xml"
    picked = [pool[(n * per_source + i) % len(pool)] for i in range(per_source)]
    return url, [replace(a, source_url=url, id=f"tag:source{n}.example,2026:{i}", original_id=f"{n}-{i}",
                         link=f"https://source{n}.example/{i}") for i, a in enumerate(picked)]


def timed(label: str, fn: object) -> object:
    """Wall-clock and CPU time: on a loaded machine the CPU figure is the one to compare."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()  # type: ignore[operator]
    print(f"{label:<52} {time.perf_counter() - start:8.3f} s wall {time.process_time() - cpu:8.3f} s cpu")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--per-source", type=int, default=59)
    args = parser.parse_args()
    pool = corpus_articles()
    batches = [source_batch(pool, n, args.per_source) for n in range(args.sources)]
    total = sum(len(b) for _, b in batches)
    print(f"{len(pool)} corpus articles; {args.sources} sources, {total} articles per run")
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "state.db") as store:
        timed("cold run (every article new)", lambda: [store.upsert_articles(u, b, NOW) for u, b in batches])
        timed("warm run (nothing changed)", lambda: [store.upsert_articles(u, b, NOW + timedelta(hours=1))
                                                       for u, b in batches])
        url, articles = source_batch(pool, 0, 100)
        store.upsert_articles(url, articles, NOW)
        timed("100 x upsert of 100 unchanged articles", lambda: [store.upsert_articles(
            url, articles, NOW + timedelta(hours=1)) for _ in range(100)])
        category = [u for u, _ in batches[:50]]
        rows = timed("articles_for 50 sources, all", lambda: store.articles_for(category, now=NOW))
        print(f"  ({len(rows)} articles; corpus re-posts within a source were collapsed)")  # type: ignore[arg-type]
        timed("articles_for 50 sources, limit 50", lambda: store.articles_for(category, limit=50, now=NOW))
        every = [u for u, _ in batches]
        timed(f"articles_for all {args.sources} sources, limit 50",
              lambda: store.articles_for(every, limit=50, now=NOW))
        timed("sync (WAL checkpoint)", store.sync)
        print(f"{'state file size':<48} {(Path(tmp) / 'state.db').stat().st_size / 1e6:8.1f} MB")
        timed("prune (keep 30 days; most corpus dates are older)",
              lambda: store.prune(keep_days=30, now=NOW, active_source_urls=every))


if __name__ == "__main__":
    main()
