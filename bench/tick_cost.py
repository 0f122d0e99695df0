"""What one `aggregator worker` tick costs with many sources (issue 23): N saved source states in a throwaway
PostgreSQL (tests/pg.py's server), 1 in ~13 due, and the tick's planning (the store's due sources, grouped by
host) timed in this process. Run by hand:

    .venv/bin/python bench/tick_cost.py [--n 100000] [--reps 5]

Prints the medians; loading a config of N sources (once per change of the file) is timed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import pg  # noqa: E402  (tests/pg.py: the throwaway server)

from aggregator.config import load_config  # noqa: E402
from aggregator.fetch import SourceState  # noqa: E402
from aggregator.fetch.schedule import due_at_us  # noqa: E402
from aggregator.pipeline.workers import LazyPool  # noqa: E402
from aggregator.store import Store  # noqa: E402
from aggregator.worker.jobs import WorkerContext, plan_tick  # noqa: E402


def saved_states(n: int, now: datetime) -> dict[str, dict[str, object]]:
    """n states like a run saves them, next due spread over 15 minutes, on n / 5 hosts."""
    states = {}
    for i in range(n):
        state = SourceState(last_fetch=now, last_success=now, next_due=now + timedelta(seconds=i % 900),
                            etag=f'"e{i}"', last_modified="Sun, 01 Mar 2026 10:00:00 GMT", body_hash="x" * 64,
                            title=f"Feed {i}", items=30, last_status=200)
        states[f"https://host{i % max(n // 5, 1)}.example/feed/{i}.xml"] = state.to_dict()
    return states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    server_iter = pg.server()
    server = next(server_iter)
    try:
        url = server.new_database()
        now = datetime.now(UTC)
        states = saved_states(args.n, now)
        with Store.open(url) as store:
            store.save_source_states(states, {u: due_at_us(SourceState.from_dict(s)) for u, s in states.items()})
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "feeds.yaml"
            path.write_text(f"state: '{url}'\ncategories: {{c: {{title: C}}}}\nsources:\n"
                            + "".join(f"  - {{url: '{u}', category: c}}\n" for u in states), encoding="utf-8")
            started = time.perf_counter()
            config = load_config(path)
            load_s = time.perf_counter() - started
        with Store.open(url, shared=True) as store, LazyPool(0, 1) as pool:
            ctx = WorkerContext(lambda: config, store, pool, lambda: now + timedelta(seconds=60))
            times, due = [], 0
            for _ in range(args.reps):
                started = time.perf_counter()
                plan = plan_tick(ctx)
                times.append(time.perf_counter() - started)
                due = sum(len(urls) for urls in plan.values())
        print(f"n={args.n}: tick {statistics.median(times):.3f} s median of {args.reps} "
              f"(min {min(times):.3f}, max {max(times):.3f}); {due} due on {len(plan)} hosts; "
              f"config load {load_s:.1f} s")
    finally:
        for _ in server_iter:  # stops the server
            pass


if __name__ == "__main__":
    main()
