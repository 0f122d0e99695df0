"""Per-item cost of the clean stage vs nh3 alone over the real corpus (issue 8 target: <= 3x nh3).

Run: /work/venv/bin/python bench/clean_cost.py [CORPUS_DIR]   (default ../shared/corpus)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import nh3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aggregator.clean import clean_article
from aggregator.model import Article, CleanConfig, Enclosure, FeedMeta


def corpus_articles(corpus: Path) -> Iterator[Article]:
    """Articles built straight from feedparser (sanitizing and URL resolution off: clean does both)."""
    for path in sorted([*corpus.joinpath("feeds").rglob("*"), *corpus.joinpath("rsshub").glob("*.xml")]):
        if not path.is_file() or path.suffix not in (".xml", ".rss", ".atom", ".rdf", ""):
            continue
        parsed = feedparser.parse(path.read_bytes(), sanitize_html=False, resolve_relative_uris=False)
        feed = FeedMeta(title=parsed.feed.get("title", ""), link=parsed.feed.get("link", ""))
        for i, entry in enumerate(parsed.entries):
            content = entry.get("content", [{}])[0].get("value", "") if entry.get("content") else ""
            summary = entry.get("summary", "")
            base = (entry.get("content", [{}])[0].get("base", "") if entry.get("content") else "") or ""
            media = entry.get("media_content", []) + entry.get("media_thumbnail", [])
            image = next((m.get("url", "") for m in media if m.get("url")), "")
            yield Article(
                id=f"{path.name}#{i}", source_url=str(path), source_name=path.name, title=entry.get("title", ""),
                link=entry.get("link", ""), summary=summary if content else "", content_html=content or summary,
                image=image, base_url=base if base.startswith("http") else "", feed=feed,
                enclosures=tuple(Enclosure(url=e.get("href", ""), type=e.get("type", "")) for e in entry.get("enclosures", []) if e.get("href")),
            )


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "corpus"
    articles = [a for a in corpus_articles(corpus) if a.content_html]
    config = CleanConfig()
    for a in articles[:50]:
        clean_article(a, config)  # warm caches (rules compile once per worker)
    ours, base = [], []
    for a in articles:
        t0 = time.perf_counter()
        nh3.clean(a.content_html)
        if a.summary:
            nh3.clean(a.summary)
        t1 = time.perf_counter()
        clean_article(a, config)
        t2 = time.perf_counter()
        base.append(t1 - t0)
        ours.append(t2 - t1)
    med_nh3, med_ours = statistics.median(base) * 1e6, statistics.median(ours) * 1e6
    print(f"items: {len(articles)}")
    print(f"nh3.clean alone:   median {med_nh3:8.1f} us/item, total {sum(base)*1e3:8.1f} ms")
    print(f"clean_article:     median {med_ours:8.1f} us/item, total {sum(ours)*1e3:8.1f} ms")
    print(f"ratio: median {med_ours/med_nh3:.2f}x, total {sum(ours)/sum(base):.2f}x")


if __name__ == "__main__":
    main()
