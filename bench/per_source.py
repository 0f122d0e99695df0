"""How fair each feed is under output.max_per_source (issue 22 item 2): run the whole test corpus once
(the config of tests/test_outputs_frozen.py, served on loopback), then for each cap print every feed's
entries, the sources it shows out of those it has, and the most entries one source takes.

    .venv/bin/python bench/per_source.py [CAP ...]     (default caps: 0 3 5 10 20)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CORPUS, RecordingServer, Route  # noqa: E402
from test_outputs_frozen import category_of, corpus_feeds  # noqa: E402

from aggregator.config import load_config  # noqa: E402
from aggregator.pipeline import RunOptions, run  # noqa: E402
from aggregator.pipeline.publishing import feed_rows, feed_specs  # noqa: E402
from aggregator.store import Store  # noqa: E402

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REPS = 20  # window reads timed per cap (what a publish reads; a run that changed nothing publishes nothing)


def main(caps: list[int]) -> None:
    server = RecordingServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as folder:
        lines = []
        for name in corpus_feeds():
            server.routes["/" + name] = Route(200, {}, (CORPUS / name).read_bytes())
            lines.append(f"  - {{url: '{server.url('/' + name)}', category: {category_of(name)}, name: '{name}'}}")
        path = Path(folder) / "feeds.yaml"
        # retention far out: the run's pruning would drop the old corpus articles no uncapped feed shows
        path.write_text("output: {dir: out}\nstate: state.db\nretention: 36500d\ncategories:\n  zh: {title: zh}\n  pods: {title: pods}\n"
                        "  misc: {title: misc}\nsources:\n" + "\n".join(lines) + "\n", encoding="utf-8")
        config = load_config(path)
        run(config, RunOptions(force=True), now=NOW)
        sources_of = {spec.slug: len(urls) for spec, urls in feed_specs(config)}
        print(f"{len(lines)} sources; max_entries {config.output.max_entries}")
        print("cap  feed  entries  sources shown/with entries  most of one source")
        if os.environ.get("KEEP_STATE"):
            shutil.copy(config.state, os.environ["KEEP_STATE"])
        with Store.open(config.state) as store:
            having = {spec.slug: len({r.source_url for r in rows})
                      for spec, rows in feed_rows(replace(config, output=replace(config.output, max_entries=0)),
                                                  store, NOW, per_source=0)}
            for cap in caps:
                capped = replace(config, output=replace(config.output, max_per_source=cap))
                started = time.perf_counter()
                for _ in range(REPS):
                    windows = feed_rows(capped, store, NOW)
                print(f"cap {cap}: every feed's window read in {(time.perf_counter() - started) / REPS * 1000:.1f} ms")
                for spec, rows in windows:
                    counts = Counter(r.source_url for r in rows)
                    top = counts.most_common(1)[0][1] if counts else 0
                    print(f"{cap:>3}  {spec.slug:<5} {len(rows):>7}  {len(counts):>4}/{having[spec.slug]:<4} of "
                          f"{sources_of[spec.slug]:<4}  {top:>4}")
    server.shutdown()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [0, 3, 5, 10, 20])
