"""A simulated span of daily runs (issue 20), longer than tests/test_year.py's 400 days (run by hand).

    .venv/bin/python bench/year.py [--days 1500] [--every 100] [--sources-scale 1]

The real CLI (`aggregator.cli.main`, in-process, clock moved a day per run) over the loopback feeds of
tests/year_sim.py: a monthly blog (304s), a daily news feed rotating items out, a feed whose items
change an unrelated field daily, one whose lastBuildDate changes daily, one quiet for most of the
span, one down for months, one without dates. `--sources-scale N` repeats that set N times. Prints,
every `--every` days: items posted so far, runs, new reported vs new expected vs items posted that
day, state file size and rows; and checks what the test checks (exit 0, new == expected every day).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import RecordingServer  # noqa: E402
from test_year import MODELS  # noqa: E402
from year_sim import FeedModel, Simulation  # noqa: E402


def scaled(models: tuple[FeedModel, ...], times: int) -> list[FeedModel]:
    if times == 1:
        return list(models)
    return [dataclasses.replace(m, name=f"{m.name}{i}", offset_min=m.offset_min + i)
            for i in range(times) for m in models]


def stretched(model: FeedModel, days: int) -> FeedModel:
    """The test's quiet and down periods, repeated every 400 days over a longer span."""
    def repeat(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        return tuple((a + k * 400, b + k * 400) for k in range(days // 400 + 1) for a, b in ranges)

    return dataclasses.replace(model, quiet=repeat(model.quiet), down=repeat(model.down))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1500)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--sources-scale", type=int, default=1)
    args = parser.parse_args()
    server = RecordingServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    models = scaled(tuple(stretched(m, args.days) for m in MODELS), args.sources_scale)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        sim = Simulation(server, Path(folder), models, retention="3d", max_entries=4, prune_every=30)
        new = expected = added = 0
        print(f"{len(models)} sources, {args.days} daily runs, retention 3d, max_entries 4, prune every 30 days")
        print(f"{'day':>5} {'items':>6} {'runs':>5} {'new':>5} {'expect':>6} {'added':>5} "
              f"{'state KB':>8} {'WAL KB':>6} {'entries':>7} {'bodies':>6} {'keys':>5} {'fprints':>7} {'s/run':>6}")
        window = time.monotonic()
        posts: dict[str, bytes] = {}
        for day in range(args.days):
            record = sim.run_day(day)
            if record.exit_code != 0 or record.new != record.expected_new:
                raise SystemExit(f"day {day}: exit {record.exit_code}, {record.new} new, "
                                 f"{record.expected_new} expected\n{record.output}")
            if any(record.posts.get(name) != body for name, body in posts.items()):
                raise SystemExit(f"day {day}: a Hexo post was rewritten or removed")
            posts = record.posts
            new, expected, added = new + record.new, expected + record.expected_new, added + record.added
            if (day + 1) % args.every == 0 or day == 0:
                rows = record.rows
                runs = args.every if day else 1
                print(f"{day:>5} {sum(m.posted(day) for m in models):>6} {day + 1:>5} {new:>5} {expected:>6} "
                      f"{added:>5} {record.state_bytes / 1024:>8.0f} {record.wal_bytes / 1024:>6.0f} "
                      f"{rows['entries']:>7} {rows['bodies']:>6} {rows['keys']:>5} {rows['fingerprints']:>7} {(time.monotonic() - window) / runs:>6.3f}",
                      flush=True)
                new = expected = added = 0
                window = time.monotonic()
        print(f"total {time.monotonic() - started:.0f} s; every run exit 0 and new == expected; "
              f"{len(record.posts)} Hexo posts, none rewritten")


if __name__ == "__main__":
    main()
