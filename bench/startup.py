"""What starting the aggregator costs before it fetches anything: each piece a fresh process, reps interleaved.

Pieces (wall time of the whole process, median and range over reps):
  interpreter      python -c pass
  floor imports    python -c "import aiohttp, asyncio" (what bench/floor.py pays before its fetch clock starts)
  --version        aggregator --version (interpreter, console script, the CLI module and its imports)
  run imports      the modules the run's own process imports (cli, pipeline, report)
  worker imports   the modules each worker imports at start (pipeline.workers.WORKER_MODULES)
  pool start       the worker pool started and answering one call per worker (PipePool with those modules)
  empty run        aggregator run --force on a config with one category and no source

Each piece runs twice: with the aggregator's bytecode compiled (as a `pip install` leaves it) and from
a copy of the package without bytecode under PYTHONDONTWRITEBYTECODE=1 (as an editable install on a
machine that sets it, so every process compiles every module it imports, each worker included).

    python bench/startup.py --python .venv/bin/python --reps 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_POOL = ("from aggregator.pool import PipePool; from aggregator.pipeline.workers import WORKER_MODULES; import os; "
         "p = PipePool(2, preload=WORKER_MODULES); [f.result() for f in [p.submit(os.getpid) for _ in range(4)]]; "
         "p.shutdown()")


def pieces(python: str, aggregator: str, config: Path) -> dict[str, list[str]]:
    from_run = "import aggregator.cli, aggregator.pipeline, aggregator.report"
    workers = "from aggregator.pipeline.workers import WORKER_MODULES as M; import importlib; " \
              "[importlib.import_module(m) for m in M]"
    return {
        "interpreter": [python, "-c", "pass"],
        "floor imports": [python, "-c", "import aiohttp, asyncio"],
        "--version": [aggregator, "--version"],
        "run imports": [python, "-c", from_run],
        "worker imports": [python, "-c", workers],
        "pool start": [python, "-c", _POOL],
        "empty run": [aggregator, "run", "--force", "--no-progress", "--config", str(config)],
    }


def empty_config(work: Path) -> Path:
    path = work / "empty.yaml"
    path.write_text(f"output:\n  dir: {work / 'out'}\nstate: {work / 'state.db'}\n"
                    "categories:\n  c0: {title: Empty}\nsources: []\n")
    return path


def package_dir(python: str) -> Path:
    out = subprocess.run([python, "-c", "import aggregator, os; print(os.path.dirname(aggregator.__file__))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + sys of the process and the children it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=".venv/bin/python", help="the aggregator's interpreter")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    python = str(Path(args.python).absolute())
    aggregator = str(Path(python).with_name("aggregator"))
    package = package_dir(python)
    subprocess.run([python, "-m", "compileall", "-q", str(package)], check=True)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        source_only = work / "src"  # a copy without __pycache__, first on the path
        shutil.copytree(package, source_only / "aggregator", ignore=shutil.ignore_patterns("__pycache__"))
        base = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        modes = {"compiled": base, "source only": {**base, "PYTHONPATH": str(source_only)}}
        cmds = pieces(python, aggregator, empty_config(work))
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _rep in range(args.reps):
            for name, cmd in cmds.items():
                for mode, env in modes.items():
                    times.setdefault((name, mode), []).append(timed(cmd, env))
    print(json.dumps({"loadavg": os.getloadavg(), "reps": args.reps, "python": sys.version.split()[0]}))
    print("| piece | compiled: wall s | compiled: CPU s | source only: wall s | source only: CPU s |")
    print("|---|---:|---:|---:|---:|")
    for name in cmds:
        cells = []
        for mode in modes:
            for measure in (0, 1):  # median (range) of wall, then of CPU
                t = [sample[measure] for sample in times[(name, mode)]]
                cells.append(f"{statistics.median(t):.3f} ({min(t):.3f}-{max(t):.3f})")
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
