"""What `aggregator why` costs: the filter decisions a run records, and one question (run by hand).

    PYTHONPATH=/path/to/checkout .venv/bin/python bench/why_cost.py [--sources 1000] [--per-source 60] [--dropped 20]

Stores `--sources` x `--per-source` articles, then records `--dropped` filter decisions per source the
way a run does (Store.record_filtered, one call per source, inside the run's batched transaction):
first when they are new (every row inserted), then an hour later (the feed changed and lists them again:
nothing is due, nothing written), then a day later (last_seen refreshed). A source answering 304 or the
same bytes records nothing: its body is not parsed. Then times `why` lookups (Store.find_article) by
link, by guid and by id, and for something never seen: the keys and filtered tables are scanned.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.model import Article, FilterDecision
from aggregator.store import Store

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def article(source: str, n: int) -> Article:
    link = f"{source}posts/{n}"
    return Article(id=f"tag:{source[8:-1]},2026:{n}", source_url=source, source_name=source, original_id=f"g{n}",
                   title=f"Story {n} of {source}", link=link, published=NOW - timedelta(hours=n),
                   content_html=f"<p>Story {n}</p>" * 20)


def decisions(source: str, count: int) -> list[FilterDecision]:
    return [FilterDecision(f"drop title /sponsored/ (source {source!r}[0])", f"urn:x:{source}:{n}", f"d{n}",
                           f"{source}dropped/{n}", f"Sponsored {n}") for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--per-source", type=int, default=60)
    parser.add_argument("--dropped", type=int, default=20)
    args = parser.parse_args()
    sources = [f"https://s{i}.example/" for i in range(args.sources)]
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "state.db") as store:
        with store.batched():
            for source in sources:
                store.upsert_articles(source, [article(source, n) for n in range(args.per_source)], NOW)
        for label, when in (("new", NOW), ("an hour later", NOW + timedelta(hours=1)),
                            ("a day later", NOW + timedelta(days=1))):
            started, cpu = time.perf_counter(), time.process_time()
            with store.batched():
                for source in sources:
                    store.record_filtered(source, decisions(source, args.dropped), when)
            print(f"record {args.dropped} decisions x {args.sources} sources, {label:<14} "
                  f"{time.perf_counter() - started:6.3f} s wall {time.process_time() - cpu:6.3f} s cpu")
        middle = sources[len(sources) // 2]
        for label, query in (("by link", f"{middle}posts/7"), ("by guid", "g7"),
                             ("by id", f"tag:{middle[8:-1]},2026:7"), ("dropped, by link", f"{middle}dropped/3"),
                             ("never seen", "https://nowhere.example/x")):
            started = time.perf_counter()
            entries, dropped = store.find_article(query)
            print(f"find_article {label:<17} {1000 * (time.perf_counter() - started):7.1f} ms "
                  f"({len(entries)} entries, {len(dropped)} decisions)")


if __name__ == "__main__":
    main()
