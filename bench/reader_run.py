"""The reader peer: lemon24/reader (pip package `reader`, its own venv) adds every URL and runs
`update_feeds(scheduled=False, workers=16)` on a SQLite file; prints entry counts.

    /work/bench-venv/bin/python bench/reader_run.py --urls farm/urls.txt --db /tmp/reader.sqlite
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reader import make_reader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--urls", type=Path, required=True)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=16)
    args = ap.parse_args()
    reader = make_reader(str(args.db))
    for url in args.urls.read_text().split():
        reader.add_feed(url, exist_ok=True)
    reader.update_feeds(scheduled=False, workers=args.workers)  # like --force: every feed, every run
    counts = reader.get_entry_counts()
    errors = sum(1 for f in reader.get_feeds() if f.last_exception)
    reader.close()
    print(json.dumps({"entries": counts.total, "feeds_with_errors": errors}))


if __name__ == "__main__":
    main()
