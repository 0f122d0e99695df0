"""What issue 20's listing bookkeeping costs a steady run's store writes (run by hand, once per checkout).

    PYTHONPATH=/path/to/checkout .venv/bin/python bench/listing_cost.py [--sources 1000] [--per-source 60]

Stores `--sources` x `--per-source` articles (with fingerprints, as parsed feeds give them), then times
passes of the steady kind: every source's feed changed by 2 new articles and lists its other items,
which the known-item fast path skipped (`seen_fingerprints`). Passes 1 and 2 are a day apart (every
skipped item's last_seen is due for a refresh: the most the bookkeeping writes); pass 3 an hour after
pass 2 (nothing is due: the usual case of a timer every few minutes). A source answering 304 or the
same bytes costs the store nothing either way: it is not written to at all.
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.model import Article
from aggregator.store import Store

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def article(source: str, n: int) -> Article:
    link = f"{source}posts/{n}"
    return Article(id=link, source_url=source, source_name=source, original_id=link, title=f"Story {n} of {source}",
                   link=link, published=NOW - timedelta(hours=n), content_html=f"<p>Story {n}</p>" * 20,
                   fingerprint=f"{hash((source, n)) & (2**64 - 1):032x}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--per-source", type=int, default=60)
    args = parser.parse_args()
    import aggregator

    print(f"aggregator from {Path(aggregator.__file__).parent}; listing bookkeeping: "
          f"{'listing' in inspect.signature(Store.upsert_articles).parameters}")
    sources = [f"https://s{i}.example/" for i in range(args.sources)]
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "state.db") as store:
        with store.batched():
            for source in sources:
                store.upsert_articles(source, [article(source, n) for n in range(args.per_source)], NOW)
        top = args.per_source
        for label, when in (("a day later", NOW + timedelta(days=1)), ("two days later", NOW + timedelta(days=2)),
                            ("an hour after that", NOW + timedelta(days=2, hours=1))):
            fresh = {s: [article(s, n) for n in (top, top + 1)] for s in sources}
            seen = {s: [article(s, n).fingerprint for n in range(top - args.per_source + 2, top)] for s in sources}
            started, cpu = time.perf_counter(), time.process_time()
            with store.batched():
                for source in sources:
                    store.upsert_articles(source, fresh[source], when, seen_fingerprints=seen[source])
            print(f"steady pass {label:<20} {time.perf_counter() - started:6.3f} s wall "
                  f"{time.process_time() - cpu:6.3f} s cpu ({args.sources} sources, 2 new + "
                  f"{args.per_source - 2} skipped each)")
            top += 2


if __name__ == "__main__":
    main()
