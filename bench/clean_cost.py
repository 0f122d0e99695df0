"""Per-item cost of the clean stage vs nh3 alone over the real corpus (issue 8 target: <= 3x nh3).

Run: /work/venv/bin/python bench/clean_cost.py [CORPUS_DIR] [--farm FARM_DIR] [--reps 3]   (default ../shared/corpus)
Reports the median and the mean (= total) cost per item: the mean is what a run pays.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import nh3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aggregator.clean import clean_article
from aggregator.clean.html import parse_fragment, serialize
from aggregator.clean.sanitize import sanitize
from aggregator.model import Article, CleanConfig, Enclosure, FeedMeta


def corpus_articles(corpus: Path, paths: list[Path] | None = None) -> Iterator[Article]:
    """Articles built straight from feedparser (sanitizing and URL resolution off: clean does both)."""
    if paths is None:
        paths = sorted([*corpus.joinpath("feeds").rglob("*"), *corpus.joinpath("rsshub").glob("*.xml")])
    for path in paths:
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


def farm_articles(farm: Path) -> Iterator[Article]:
    """Articles of a bench farm (bench/farm.py generate --dir FARM): every uncompressed feed file in it."""
    yield from corpus_articles(farm, sorted(farm.rglob("*.xml")))


def _design_floor(a: Article, config: CleanConfig) -> None:
    """What the pass costs before any rewrite: lxml parse and serialize, then the final sanitizer."""
    sanitize(serialize(parse_fragment(a.content_html)), config.iframe_hosts)


def _time_items(articles: list[Article], config: CleanConfig, reps: int) -> tuple[list[float], list[float], list[float]]:
    """Per item: the fastest of `reps` interleaved runs of nh3 alone, of clean_article and of the design
    floor (noise only adds)."""
    base, ours, floor = ([float("inf")] * len(articles) for _ in range(3))
    for _ in range(reps):
        for i, a in enumerate(articles):
            t0 = time.perf_counter()
            nh3.clean(a.content_html)
            if a.summary:
                nh3.clean(a.summary)
            t1 = time.perf_counter()
            clean_article(a, config)
            t2 = time.perf_counter()
            if "<" in a.content_html:
                _design_floor(a, config)
            t3 = time.perf_counter()
            base[i] = min(base[i], t1 - t0)
            ours[i] = min(ours[i], t2 - t1)
            floor[i] = min(floor[i], t3 - t2)
    return base, ours, floor


def report(name: str, articles: list[Article], reps: int) -> None:
    config = CleanConfig()
    for a in articles[:50]:
        clean_article(a, config)  # warm caches (rules compile once per worker)
    base, ours, floor = _time_items(articles, config, reps)
    med_nh3, med_ours = statistics.median(base) * 1e6, statistics.median(ours) * 1e6
    mean_nh3, mean_ours = statistics.fmean(base) * 1e6, statistics.fmean(ours) * 1e6
    print(f"{name}: {len(articles)} items, best of {reps} interleaved reps per item")
    print(f"  nh3.clean alone: median {med_nh3:8.1f} us/item, mean {mean_nh3:8.1f} us/item, total {sum(base)*1e3:8.1f} ms")
    print(f"  clean_article:   median {med_ours:8.1f} us/item, mean {mean_ours:8.1f} us/item, total {sum(ours)*1e3:8.1f} ms")
    print(f"  ratio: median {med_ours/med_nh3:.2f}x, mean (= total) {mean_ours/mean_nh3:.2f}x")
    print(f"  design floor (lxml parse + serialize + final nh3, no rewrite): mean (= total) "
          f"{statistics.fmean(floor) / statistics.fmean(base):.2f}x nh3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    ap.add_argument("--farm", type=Path, help="also measure a bench farm directory (bench/farm.py generate)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions; each item keeps its fastest")
    args = ap.parse_args()
    report("corpus", [a for a in corpus_articles(args.corpus) if a.content_html], args.reps)
    if args.farm:
        report("farm", [a for a in farm_articles(args.farm) if a.content_html], args.reps)


if __name__ == "__main__":
    main()
