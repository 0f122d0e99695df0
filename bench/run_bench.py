"""Benchmark driver: farm + nginx, then cold / noop / steady phases for every tool, interleaved reps.

Tools (each a fresh process, run one at a time, order rotated per rep):
  floor       bench/floor.py: aiohttp, whole bodies, validators; no parsing (the fetch floor)
  reader      bench/reader_run.py: lemon24/reader update_feeds(workers=16)
  naive       bench/naive.py: sequential feedparser, then feedgen
  aggregator  `aggregator run --force --config <generated>`: a fresh process per run, timed from spawn to
              exit (interpreter start-up, imports, worker pool and exit included: what a timer's run costs),
              at the shipped fetch defaults unless --concurrency/--per-host are given

Per run it records wall time, CPU (user+sys of the whole process tree: the larger of the
getrusage(RUSAGE_CHILDREN) delta and the sum over the tree of each process's last CPU seen by
psutil, descendants re-listed every 0.5 s; the second is needed because a multiprocessing
forkserver, and so its pool workers, is never waited for, and their CPU never reaches
RUSAGE_CHILDREN; both are lower bounds) and peak RSS of the
tree (psutil, sum of RSS over the process and all its descendants, sampled every 50 ms, the
descendants re-listed every 0.5 s: a
conservative upper bound, since forked workers share pages; ru_maxrss would give the largest
single process instead). Each steady rep checks that aggregator published exactly the items
the farm added. Results: a JSON file and a Markdown table (see bench/README.md).

    nice -n 5 /work/bench-venv/bin/python bench/run_bench.py --n 1000 --latency-ms 0 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import farm as farm_mod
from serve import Server

PHASES = ("cold", "noop", "steady")
# The shipped `fetch.concurrency` and `fetch.per_host` (README, config reference): the floor's schedule when the
# aggregator runs at its defaults (no --concurrency/--per-host), so both get the same budgets.
SHIPPED_CONCURRENCY, SHIPPED_PER_HOST = 100, 2
TOOLS = ("floor", "reader", "naive", "aggregator")
ATOM = "{http://www.w3.org/2005/Atom}"


@dataclass
class Sample:
    tool: str
    phase: str
    rep: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    rc: int
    proxy_cpu_s: float = 0.0
    cycle: int = 0
    loadavg: float = 0.0  # the 1-minute load average as the run started: other processes on the cores
    info: dict[str, Any] = field(default_factory=dict)


def measure(cmd: list[str], log: Path,
            poll_s: float = 0.05) -> tuple[float, float, float, int, str, float, float]:
    """Run cmd; return wall, CPU of its tree, peak tree RSS (MB), exit code, stdout, rusage CPU, peak PSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "wb") as err, open(log.with_suffix(".out"), "wb") as out:
        proc = psutil.Popen(cmd, stdout=out, stderr=err)
        tree: list[psutil.Process] = [proc]
        cpu_seen: dict[int, float] = {}
        peak, peak_pss, polls = 0, 0, 0
        while proc.poll() is None:
            if polls % 10 == 0:  # finding descendants scans /proc: every 0.5 s, not every sample
                tree = _tree(proc)
            rss, pss = _sample(tree, cpu_seen, with_pss=polls % 10 == 5)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            polls += 1
            time.sleep(poll_s)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rusage_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # A forkserver's workers are reaped by the forkserver, which nobody waits for: their CPU never
    # reaches our RUSAGE_CHILDREN. So also sum the last CPU seen per process of the tree.
    return wall, max(rusage_cpu, sum(cpu_seen.values())), peak / 2**20, proc.returncode, \
        log.with_suffix(".out").read_text(errors="replace"), rusage_cpu, peak_pss / 2**20


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def _sample(tree: list[psutil.Process], cpu_seen: dict[int, float], with_pss: bool) -> tuple[int, int]:
    """Sums of RSS and (every 0.5 s) PSS over the tree; records each process's own CPU so far."""
    total = pss = 0
    for p in tree:
        try:
            with p.oneshot():
                total += p.memory_info().rss
                if with_pss:  # PSS splits shared pages between the processes that share them
                    pss += p.memory_full_info().pss
                t = p.cpu_times()
            # own CPU only: a forkserver's children_* would count its workers a second time
            cpu_seen[p.pid] = max(cpu_seen.get(p.pid, 0.0), t.user + t.system)
        except psutil.Error:
            pass
    return total, pss


# --- tools -------------------------------------------------------------------------------------

def write_inputs(farm: farm_mod.Farm, work: Path, args: argparse.Namespace) -> None:
    urls = [farm.url(i) for i in range(farm.n)]
    (work / "urls.txt").write_text("".join(u + "\n" for u in urls))
    (work / "sources.json").write_text(json.dumps([{"url": u, "category": category(i)} for i, u in enumerate(urls)]))


def category(i: int) -> str:
    return f"c{i // 10}"  # 10 feeds per category, spread over 10 hosts


def aggregator_config(farm: farm_mod.Farm, state_dir: Path, args: argparse.Namespace) -> Path:
    cats = sorted({category(i) for i in range(farm.n)}, key=lambda c: int(c[1:]))
    fetch = [] if args.shipped_defaults else ["fetch:", f"  concurrency: {args.concurrency}",
                                              f"  per_host: {args.per_host}"]
    lines = [
        "output:",
        f"  dir: {state_dir / 'feeds'}",
        "  base_url: http://localhost/feeds/",
        f"state: {state_dir / 'state.db'}",
        *fetch,
        "categories:",
        *[f"  {c}: {{title: Bench {c}}}" for c in cats],
        "sources:",
        *[f"  - {{url: '{farm.url(i)}', category: {category(i)}, name: feed-{i}}}" for i in range(farm.n)],
    ]
    path = state_dir / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def command(tool: str, work: Path, state_dir: Path, farm: farm_mod.Farm, args: argparse.Namespace) -> list[str]:
    py = sys.executable
    if tool == "floor":
        return [py, str(HERE / "floor.py"), "--urls", str(work / "urls.txt"), "--state", str(state_dir / "floor.json"),
                "--concurrency", str(args.concurrency), "--per-host", str(args.per_host)]
    if tool == "reader":
        return [py, str(HERE / "reader_run.py"), "--urls", str(work / "urls.txt"), "--db",
                str(state_dir / "reader.sqlite"), "--workers", str(args.reader_workers)]
    if tool == "naive":
        return [py, str(HERE / "naive.py"), "--sources", str(work / "sources.json"), "--state",
                str(state_dir / "naive.json"), "--out", str(state_dir / "feeds")]
    config = state_dir / "aggregator.yaml"
    if not config.exists():
        config = aggregator_config(farm, state_dir, args)
    return [*args.aggregator.split(), "run", "--force", "--no-progress", "--config", str(config)]


# --- correctness -------------------------------------------------------------------------------

def published(feeds_dir: Path) -> dict[str, tuple[str, str]]:
    """link -> (title, file) over every category feed (all.atom left out: it repeats them)."""
    out: dict[str, tuple[str, str]] = {}
    for path in sorted(feeds_dir.glob("*.atom")):
        if path.name == "all.atom":
            continue
        for entry in ET.parse(path).getroot().iter(f"{ATOM}entry"):
            link = next((ln.get("href", "") for ln in entry.iter(f"{ATOM}link")
                         if ln.get("rel", "alternate") == "alternate"), "")
            out[link] = ((entry.findtext(f"{ATOM}title") or "").strip(), path.stem)
    return out


def check_steady(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]],
                 added: list[farm_mod.Item]) -> dict[str, Any]:
    expected = {it.link: (it.title, category(it.feed)) for it in added}
    new = {link: v for link, v in after.items() if link not in before}
    missing = sorted(set(expected) - set(new))
    extra = sorted(set(new) - set(expected))
    wrong = sorted(link for link in set(new) & set(expected) if new[link] != expected[link])
    return {"ok": not (missing or extra or wrong), "added": len(expected), "new_published": len(new),
            "missing": missing[:5], "extra": extra[:5], "wrong": wrong[:5]}


def check_cold(farm: farm_mod.Farm, after: dict[str, tuple[str, str]], max_entries: int) -> dict[str, Any]:
    per_cat: dict[str, int] = {}
    for i in range(farm.n):
        spec = farm_mod.feed_spec(farm, i)
        per_cat[category(i)] = per_cat.get(category(i), 0) + spec.window
    expected = sum(min(max_entries, c) for c in per_cat.values())
    return {"ok": len(after) == expected, "published": len(after), "expected": expected}


# --- driver ------------------------------------------------------------------------------------

def prepare_farm(args: argparse.Namespace) -> farm_mod.Farm:
    epoch = (datetime.fromisoformat(args.epoch) if args.epoch
             else datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1))
    epoch = epoch.astimezone(UTC)
    farm = farm_mod.Farm(args.seed, args.n, min(args.hosts, args.n), args.base_port, epoch)
    meta = args.farm_dir / "farm.json"
    if meta.exists():
        old, _ = farm_mod.load(args.farm_dir)
        if old == farm:
            farm_mod.mutate(args.farm_dir, 0)
            return farm
        shutil.rmtree(args.farm_dir)
    args.farm_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    total = farm_mod.generate(args.farm_dir, farm)
    print(f"farm: {farm.n} feeds, {total / 1e6:.1f} MB in {time.perf_counter() - t:.0f} s", flush=True)
    return farm


def byte_compile(args: argparse.Namespace) -> None:
    """Every tool runs as installed: a pip install byte-compiles its package, but an editable install of
    the aggregator under PYTHONDONTWRITEBYTECODE (set on these machines) would recompile all of it per run."""
    python = Path(args.aggregator.split()[0]).with_name("python")
    if args.no_byte_compile or "aggregator" not in args.tools or not python.exists():
        return
    where = subprocess.run([str(python), "-c", "import aggregator, os; print(os.path.dirname(aggregator.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([str(python), "-m", "compileall", "-q", where], check=True)


def run(args: argparse.Namespace) -> list[Sample]:
    farm = prepare_farm(args)
    byte_compile(args)
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_inputs(farm, work, args)
    server = Server(args.farm_dir, farm.base_port, farm.hosts, args.latency_ms)
    server.start()
    samples: list[Sample] = []
    try:
        for rep in range(args.reps):
            farm_mod.mutate(args.farm_dir, 0)
            tools = args.tools[rep % len(args.tools):] + args.tools[:rep % len(args.tools)]
            dirs = {t: work / f"rep{rep}" / t for t in tools}
            for d in dirs.values():
                d.mkdir(parents=True)
            snapshots: dict[str, dict[str, tuple[str, str]]] = {}
            steps = [("cold", 0)] + [(phase, c) for c in range(args.cycles) for phase in ("noop", "steady")]
            for phase, cycle in steps:
                added: list[farm_mod.Item] = []
                if phase == "steady":  # generation cycle+1: 5 % of the feeds gain 1-3 items
                    added = farm_mod.mutate(args.farm_dir, cycle + 1)
                for tool in tools:
                    s = one(tool, phase, rep, work, dirs[tool], farm, server, args)
                    s.cycle = cycle
                    if tool == "aggregator" and s.rc == 0:
                        now = published(dirs[tool] / "feeds")
                        if phase == "cold":
                            s.info["check"] = check_cold(farm, now, 50)
                        elif phase == "noop":
                            s.info["check"] = {"ok": now == snapshots["last"],
                                               "changed": len(set(now) ^ set(snapshots["last"]))}
                        else:
                            s.info["check"] = check_steady(snapshots["last"], now, added)
                        snapshots["last"] = now
                    samples.append(s)
                    line = json.dumps(asdict(s), ensure_ascii=False)
                    print(line, flush=True)
                    with (work / "samples.jsonl").open("a") as fh:
                        fh.write(line + "\n")
            if not args.keep_state:
                shutil.rmtree(work / f"rep{rep}")
    finally:
        server.stop()
        farm_mod.mutate(args.farm_dir, 0)
    return samples


def one(tool: str, phase: str, rep: int, work: Path, state_dir: Path, farm: farm_mod.Farm, server: Server,
        args: argparse.Namespace) -> Sample:
    cmd = command(tool, work, state_dir, farm, args)
    proxy_before = server.proxy_cpu_s()
    load = os.getloadavg()[0]
    wall, cpu, rss, rc, out, rusage_cpu, pss = measure(cmd, state_dir / f"{phase}.log")
    info: dict[str, Any] = {"cpu_rusage_s": round(rusage_cpu, 3), "peak_pss_mb": round(pss, 1)}
    last = out.strip().splitlines()[-1:] if out.strip() else []
    if last and tool != "aggregator":
        try:
            info.update(json.loads(last[0]))
        except json.JSONDecodeError:
            info["stdout"] = last[0][:200]
    elif last:
        info["stdout"] = last[0][:300]
    if rc != 0:
        info["stderr"] = (state_dir / f"{phase}.log").read_text(errors="replace")[-600:]
    return Sample(tool, phase, rep, round(wall, 3), round(cpu, 3), round(rss, 1), rc,
                  round(server.proxy_cpu_s() - proxy_before, 3), loadavg=round(load, 2), info=info)


# --- report ------------------------------------------------------------------------------------

def machine_note() -> dict[str, Any]:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def summarize(samples: list[Sample]) -> dict[str, dict[str, dict[str, float]]]:
    table: dict[str, dict[str, dict[str, float]]] = {}
    for phase in PHASES:
        for tool in TOOLS:
            runs = [s for s in samples if s.tool == tool and s.phase == phase and s.rc == 0]
            if not runs:
                continue
            row = {k: statistics.median(getattr(s, k) for s in runs)
                   for k in ("wall_s", "cpu_s", "peak_rss_mb", "proxy_cpu_s")}
            row["reps"] = len(runs)
            if tool == "floor":
                row["fetch_s"] = statistics.median(float(s.info.get("fetch_s", s.wall_s)) for s in runs)
            table.setdefault(phase, {})[tool] = row
    return table


def took_s(sample: Sample) -> float | None:
    """The run's own "took N s" (its summary's last line): from its start to its summary, so without the
    interpreter's start-up, the imports before the run starts, and the exit."""
    words = str(sample.info.get("stdout", "")).split()
    if len(words) == 3 and words[0] == "took" and words[2] == "s":
        return float(words[1])
    return None


def markdown(table: dict[str, dict[str, dict[str, float]]], samples: list[Sample]) -> str:
    """The headline is `x floor fetch`: the whole command's wall time over the floor's fetch alone."""
    out = [("| phase | tool | wall s | CPU s | peak RSS MB (sum) | peak PSS MB | x floor fetch | x floor process "
            "| x floor CPU | run's own 'took' s | checks |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for phase, rows in table.items():
        floor = rows.get("floor", {})
        for tool, row in rows.items():
            ratio = f"{row['wall_s'] / floor['fetch_s']:.1f}" if floor else "-"
            ratio2 = f"{row['wall_s'] / floor['wall_s']:.1f}" if floor else "-"
            ratio3 = f"{row['cpu_s'] / floor['cpu_s']:.1f}" if floor else "-"
            tooks = [t for s in samples if s.tool == tool and s.phase == phase and s.rc == 0
                     if (t := took_s(s)) is not None]
            took = f"{statistics.median(tooks):.2f}" if tooks else ""
            checks = [s.info.get("check", {}).get("ok") for s in samples
                      if s.tool == tool and s.phase == phase and "check" in s.info]
            check = f"{sum(bool(c) for c in checks)}/{len(checks)} ok" if checks else ""
            pss = statistics.median(float(s.info.get("peak_pss_mb", 0)) for s in samples
                                    if s.tool == tool and s.phase == phase and s.rc == 0)
            out.append(f"| {phase} | {tool} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} | {row['peak_rss_mb']:.0f} "
                       f"| {pss:.0f} "
                       f"| {ratio} | {ratio2} | {ratio3} | {took} | {check} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epoch", default="", help="ISO date of the newest base item (default: yesterday 00:00 UTC)")
    ap.add_argument("--base-port", type=int, default=farm_mod.BASE_PORT)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=1,
                    help="noop+steady cycles after each cold phase (generation 1, 2, ...: new items each time)")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--concurrency", type=int, help="floor and aggregator: requests in flight (written into the "
                    f"aggregator's config; default: its shipped default, {SHIPPED_CONCURRENCY})")
    ap.add_argument("--per-host", type=int, help="floor and aggregator: requests in flight per host (written into "
                    f"the aggregator's config; default: its shipped default, {SHIPPED_PER_HOST})")
    ap.add_argument("--reader-workers", type=int, default=16)
    ap.add_argument("--aggregator", default="/work/venv/bin/aggregator", help="aggregator command (split on spaces)")
    ap.add_argument("--farm-dir", type=Path, default=Path("/tmp/bench-farm"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-work"))
    ap.add_argument("--out", type=Path, help="write the JSON result here")
    ap.add_argument("--keep-state", action="store_true")
    ap.add_argument("--no-byte-compile", action="store_true",
                    help="run the aggregator as found (an editable install under PYTHONDONTWRITEBYTECODE compiles "
                         "its modules in every process)")
    ap.add_argument("--render", type=Path, help="only print the table of an earlier --out JSON file")
    args = ap.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        old = [Sample(**s) for s in saved["samples"]]
        print(f"`{saved['command']}` ({saved['started']})\n\n{json.dumps(saved['machine'])}\n")
        print(markdown(summarize(old), old))
        return
    args.tools = args.tools.split(",")
    args.shipped_defaults = args.concurrency is None and args.per_host is None  # no fetch section in its config
    args.concurrency = SHIPPED_CONCURRENCY if args.concurrency is None else args.concurrency
    args.per_host = SHIPPED_PER_HOST if args.per_host is None else args.per_host
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops nginx and the proxy
    note = machine_note()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    samples = run(args)
    table = summarize(samples)
    note["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    head = subprocess.run(["git", "-C", str(HERE), "describe", "--always", "--dirty"], check=False, capture_output=True,
                          text=True).stdout.strip()
    result = {"started": started, "command": " ".join(sys.argv), "machine": note, "git": head,
              "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "summary": table, "samples": [asdict(s) for s in samples]}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(json.dumps(note))
    print(markdown(table, samples))


if __name__ == "__main__":
    main()
