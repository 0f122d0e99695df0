"""The same-story rule (publish/similar.py) over the whole test corpus: how many merges, which, what it costs.

    .venv/bin/python bench/similar_corpus.py [--corpus tests/corpus] [--pairs 20000]

Every corpus feed (tests/corpus/feeds/** and rsshub/*.xml, as tests/test_outputs_frozen.py takes them) is
a local-file source in the category that test gives it (zh, pods, misc); one real run (max_entries: 0)
stores them all. Then, for each output feed (the three categories and all): its articles, the groups
similar_groups finds in them (each listed for checking by eye), the pairs with one title from different
sources that were not merged and why, and the CPU time similar_groups takes (median of 5; CPU time, as the machine may be shared). Last, the lead
similarity of random pairs of unrelated articles, which LEAD_MIN_JACCARD must stay clear of.
A tool for people, not a test.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.config import load_config
from aggregator.model import Article
from aggregator.pipeline import RunOptions, run
from aggregator.pipeline.publishing import feed_rows
from aggregator.publish import similar
from aggregator.publish.formatting import published_of
from aggregator.store import Store
from aggregator.text import title_key

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SUFFIXES = (".xml", ".rss", ".atom", ".json", ".rdf")


def corpus_feeds(corpus: Path) -> list[Path]:
    paths = [p for p in (corpus / "feeds").rglob("*") if p.suffix in SUFFIXES] + list((corpus / "rsshub").glob("*.xml"))
    return sorted(paths)


def category_of(name: str) -> str:
    if name.startswith(("rsshub/", "feeds/wechat-feeds/", "feeds/rodel-reader/")):
        return "zh"
    return "pods" if "podcast" in name.lower() else "misc"


def write_config(work: Path, corpus: Path) -> Path:
    lines = [f"output: {{dir: '{work / 'out'}', max_entries: 0}}", f"state: '{work / 'state.db'}'",
             "categories: {zh: {title: zh}, pods: {title: pods}, misc: {title: misc}}", "sources:"]
    for path in corpus_feeds(corpus):
        name = path.relative_to(corpus).as_posix()
        lines.append(f"  - {{url: '{path}', category: {category_of(name)}, name: '{name}'}}")
    config = work / "feeds.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def why_not(a: Article, b: Article) -> str:
    """Why two articles with one title key from different sources were not merged."""
    if similar.is_generic_title(a.title):
        return "generic title"
    hours = abs((published_of(a) - published_of(b)).total_seconds()) / 3600
    if hours > similar.WINDOW_S / 3600:
        return f"{hours:.0f} h apart"
    key = title_key(a.title)
    lead_a, lead_b = similar.lead_key(a, key), similar.lead_key(b, key)
    if min(len(lead_a), len(lead_b)) < similar.LEAD_MIN_CHARS:
        return f"lead too short ({len(lead_a)}, {len(lead_b)} chars)"
    return f"leads differ (Jaccard {jaccard(lead_a, lead_b):.2f})"


def jaccard(a: str, b: str) -> float:
    length = min(len(a), len(b))
    grams_a = {a[i:i + 3] for i in range(length - 2)}
    grams_b = {b[i:i + 3] for i in range(length - 2)}
    return len(grams_a & grams_b) / max(1, len(grams_a | grams_b))


def report_feed(slug: str, articles: list[Article]) -> tuple[int, int, float]:
    times = []
    for _ in range(5):
        started = time.process_time()
        groups = similar.similar_groups(articles)
        times.append(time.process_time() - started)
    merged = sum(len(g.merged) for g in groups)
    print(f"\n## {slug}: {len(articles)} articles, {len(groups)} groups, {merged} merged, "
          f"similar_groups {statistics.median(times) * 1000:.2f} ms (median of 5)")
    for group in groups:
        print(f"  KEPT   {group.kept.title!r} [{group.kept.source_name}] {published_of(group.kept):%Y-%m-%d %H:%M}")
        key = title_key(group.kept.title)
        for other in group.merged:
            score = jaccard(similar.lead_key(group.kept, key), similar.lead_key(other, key))
            print(f"  MERGED {other.title!r} [{other.source_name}] {published_of(other):%Y-%m-%d %H:%M} "
                  f"lead Jaccard {score:.2f}")
    by_key: dict[str, list[Article]] = defaultdict(list)
    for article in articles:
        if title_key(article.title):
            by_key[title_key(article.title)].append(article)
    in_groups = {id(a) for g in groups for a in (g.kept, *g.merged)}
    misses: dict[str, int] = defaultdict(int)
    shown = 0
    for same in by_key.values():
        for i, a in enumerate(same):
            for b in same[i + 1:]:
                if a.source_url == b.source_url or (id(a) in in_groups and id(b) in in_groups):
                    continue
                reason = why_not(a, b)
                misses[reason.split(" (")[0]] += 1
                if shown < 15:
                    shown += 1
                    print(f"  not merged: {a.title[:60]!r} [{a.source_name}] / [{b.source_name}]: {reason}")
    if misses:
        print("  pairs with one title from different sources, not merged: "
              + ", ".join(f"{reason}: {count}" for reason, count in sorted(misses.items())))
    return len(groups), merged, statistics.median(times)


def unrelated_leads(articles: list[Article], pairs: int) -> None:
    """Lead similarity of random pairs of articles with different titles: what chance overlap looks like."""
    leads = [(title_key(a.title), similar.lead_key(a, title_key(a.title))) for a in articles]
    leads = [(t, lead) for t, lead in leads if len(lead) >= similar.LEAD_MIN_CHARS]
    rng = random.Random(22)
    scores = []
    for _ in range(pairs):
        (ta, la), (tb, lb) = rng.sample(leads, 2)
        if ta != tb and la != lb:
            scores.append(jaccard(la, lb))
    scores.sort()
    print(f"\nlead Jaccard of {len(scores)} random pairs of different stories: median {statistics.median(scores):.3f}, "
          f"99th percentile {scores[int(len(scores) * 0.99)]:.3f}, 99.9th {scores[int(len(scores) * 0.999)]:.3f}, "
          f"max {scores[-1]:.3f}; pairs at or above {similar.LEAD_MIN_JACCARD}: "
          f"{sum(s >= similar.LEAD_MIN_JACCARD for s in scores)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests" / "corpus")
    parser.add_argument("--pairs", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp), args.corpus.resolve()))
        print(f"{len(config.sources)} corpus feeds as sources; one run (max_entries: 0) ...")
        run(config, RunOptions(force=True), now=NOW)
        with Store.open_read_only(config.state) as store:
            feeds = [(spec.slug, store.articles_of(rows)) for spec, rows in feed_rows(config, store, NOW)]
    total_groups = total_merged = 0
    total_time = 0.0
    for slug, articles in feeds:
        groups, merged, seconds = report_feed(slug, articles)
        if slug != "all":
            total_groups, total_merged, total_time = total_groups + groups, total_merged + merged, total_time + seconds
    print(f"\ncategories: {sum(len(a) for s, a in feeds if s != 'all')} articles, {total_groups} groups, "
          f"{total_merged} merged, similar_groups {total_time * 1000:.2f} ms in all")
    unrelated_leads(dict(feeds)["all"], args.pairs)
    publish_cost(dict(feeds)["all"])


def publish_cost(articles: list[Article]) -> None:
    """What a publish pays: merge_similar over feeds of 50 (max_entries' default), title cache cold."""
    feeds = [articles[i:i + 50] for i in range(0, len(articles), 50)]
    times = []
    for _ in range(9):
        similar._title_key.cache_clear()
        started = time.process_time()
        for feed in feeds:
            similar.merge_similar(feed)
        times.append(time.process_time() - started)
    print(f"\nmerge_similar over {len(feeds)} feeds of 50 ({len(articles)} articles), cold title cache: "
          f"best {min(times) * 1000:.1f} ms, median {statistics.median(times) * 1000:.1f} ms "
          f"({min(times) / len(articles) * 1e6:.1f} µs an article)")


if __name__ == "__main__":
    main()
