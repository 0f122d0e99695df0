"""Per-item cost of the clean stage vs nh3 alone over the real corpus (issue 8 target: <= 3x nh3).

Run: /work/venv/bin/python bench/clean_cost.py [CORPUS_DIR] [--farm FARM_DIR] [--reps 3]   (default tests/corpus)
Reports the median and the mean (= total) cost per item (the mean is what a run pays) of the whole clean
stage, of clean_html on the content alone, and of two lower bounds: the design floor (parse, serialize,
sanitize) and the floor plus one read-only visit of every element.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import nh3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aggregator.clean import clean_article, clean_html
from aggregator.clean.sanitize import sanitize
from aggregator.clean.tree import parse_fragment, serialize
from aggregator.clean.urls import first_base
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


def _floor_and_one_walk(a: Article, config: CleanConfig) -> None:
    """The design floor plus one read-only visit of every element from Python (tag, text, tail): a
    lower bound for any structural pass, which must at least look at each node once."""
    root = parse_fragment(a.content_html)
    for el in root.iter():
        el.tag, el.text, el.tail  # noqa: B018 - reading them is the cost measured
    sanitize(serialize(root), config.iframe_hosts)


def _content_only(a: Article, config: CleanConfig) -> None:
    """The issue's narrower reading, "structural pass plus sanitizer": clean_html on the content alone
    (no title, summary, lead image or link), against nh3 on the content alone."""
    clean_html(a.content_html, first_base(a.base_url, a.link, a.feed.link), config)


def _nh3_content(a: Article, config: CleanConfig) -> None:
    nh3.clean(a.content_html)


def _nh3_article(a: Article, config: CleanConfig) -> None:
    nh3.clean(a.content_html)
    if a.summary:
        nh3.clean(a.summary)


def _clean_article(a: Article, config: CleanConfig) -> None:
    clean_article(a, config)


Timed = Callable[[Article, CleanConfig], None]
# name -> what runs per item; each compared with the baseline named after it
MEASURES: dict[str, tuple[Timed, str]] = {
    "clean_article": (_clean_article, "nh3 article"),
    "clean_html, content only": (_content_only, "nh3 content"),
    "design floor": (_design_floor, "nh3 article"),
    "design floor + one walk": (_floor_and_one_walk, "nh3 article"),
}
BASELINES: dict[str, Timed] = {"nh3 article": _nh3_article, "nh3 content": _nh3_content}
_HTML_ONLY = ("design floor", "design floor + one walk")  # both parse: plain-text items skip them


# Interleaved per item within a group, as in the first sessions' measurement (nh3, clean_article,
# floor); the second group's measures run in a pass of their own, so they do not change the first's.
GROUPS = (("nh3 article", "clean_article", "design floor"),
          ("nh3 content", "clean_html, content only", "design floor + one walk"))


def _time_items(articles: list[Article], config: CleanConfig, reps: int) -> dict[str, list[float]]:
    """Per item and measure: the fastest of `reps` interleaved runs (noise only adds)."""
    steps: dict[str, Timed] = {**BASELINES, **{name: fn for name, (fn, _base) in MEASURES.items()}}
    best = {name: [float("inf")] * len(articles) for name in steps}
    for group in GROUPS:
        for _ in range(reps):
            for i, a in enumerate(articles):
                for name in group:
                    if name in _HTML_ONLY and "<" not in a.content_html:
                        best[name][i] = 0.0
                        continue
                    t0 = time.perf_counter()
                    steps[name](a, config)
                    best[name][i] = min(best[name][i], time.perf_counter() - t0)
    return best


def report(name: str, articles: list[Article], reps: int) -> None:
    config = CleanConfig()
    for a in articles[:50]:
        clean_article(a, config)  # warm caches (rules compile once per worker)
    best = _time_items(articles, config, reps)
    print(f"{name}: {len(articles)} items, best of {reps} interleaved reps per item")
    for label, values in best.items():
        print(f"  {label:26} median {statistics.median(values) * 1e6:8.1f} us/item, "
              f"mean {statistics.fmean(values) * 1e6:8.1f} us/item, total {sum(values) * 1e3:8.1f} ms")
    for label, (_fn, base) in MEASURES.items():
        ratio_mean = sum(best[label]) / sum(best[base])
        line = f"  {label + ' / ' + base:41} mean (= total) {ratio_mean:5.2f}x"
        if label not in _HTML_ONLY:
            line += f", median {statistics.median(best[label]) / statistics.median(best[base]):5.2f}x"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "corpus")
    ap.add_argument("--farm", type=Path, help="also measure a bench farm directory (bench/farm.py generate)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions; each item keeps its fastest")
    args = ap.parse_args()
    report("corpus", [a for a in corpus_articles(args.corpus) if a.content_html], args.reps)
    if args.farm:
        report("farm", [a for a in farm_articles(args.farm) if a.content_html], args.reps)


if __name__ == "__main__":
    main()
