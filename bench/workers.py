"""Issue 23: `aggregator worker` on one machine beside the one-shot runs, over the bench farm.

For each latency, each rep (order of the setups rotated per rep), each setup:
  sqlite      `aggregator run --force --no-progress`, state in a fresh SQLite file
  pg          the same with `state: postgresql://...` (a fresh database on a throwaway local server)
  workers-K   K `aggregator worker --tick 1 --publish-delay 1` processes (concurrency default) on a fresh database
phases: cold (fresh state, farm at generation 0) and steady (farm moved to generation 1: 5 % of the feeds
gain 1-3 items). One-shots: wall time of the process, spawn to exit (run_bench.measure). Workers: cold is
from spawning them until settled (every source fetched, no fetch/publish job todo or doing, outputs
published for the store's current generation: tests/cluster.py `settled`, with "fetched successfully since the
phase started"); steady forces every source due by deleting `next_due` from its stored state and setting its
`due_at` (schema v13) to 0 (the shipped interval, 30 min, stays in the config so nothing is fetched twice
inside a phase), then times until settled
again. `startup_s` is spawn until the last worker logged "worker started" (workers run with -v: INFO lines,
one per source; without it they log nothing below warnings).

During PostgreSQL phases a sampler reads pg_locks / pg_stat_activity every 0.1 s: the share of samples in
which the store's write lock (advisory lock AGRT/3) is held, and the mean number of sessions waiting for an
advisory lock (that lock: the run lock is only ever tried, never waited for).

    .venv/bin/python bench/workers.py --n 300 --reps 2 --out bench/results/workers-n300.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import farm as farm_mod  # noqa: E402
import run_bench  # noqa: E402
from cluster import settled  # noqa: E402  (tests/cluster.py: what "the workers are done" means)
from pg import PostgresServer, postgres_bin  # noqa: E402
from serve import Server  # noqa: E402

from aggregator.store import schema  # noqa: E402

SETUPS = ("sqlite", "pg", "workers-1", "workers-2", "workers-4")
WRITE_LOCK = (schema.APPLICATION_ID, 3)  # store/postgres.py: _LOCK_CLASS, _WRITE_LOCK
POLL_S = 0.25


@dataclass
class Sample:
    setup: str
    phase: str
    latency_ms: float
    rep: int
    wall_s: float
    cpu_s: float  # the tool's process tree (workers: their trees and parser pools)
    pg_cpu_s: float = 0.0  # the PostgreSQL server's processes
    proxy_cpu_s: float = 0.0
    startup_s: float = 0.0
    loadavg: float = 0.0
    ok: bool = True
    info: dict[str, Any] = field(default_factory=dict)


class BenchPostgres(PostgresServer):
    """tests/pg.py's throwaway server with room for 4 workers' pools (each up to concurrency + 2 = 22
    connections, plus the store's): the tests' max_connections=60 is too few."""

    def start(self) -> None:
        if self._as_user:
            os.chown(self.folder, *_nobody())
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        options = (f"-k {self.folder} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=250")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
                  "-o", options, "-w", "-t", "60", "start")

    def cpu_s(self) -> float:
        """Postmaster + live backends + reaped ones (children_*), so deltas survive backends exiting."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return tree_cpu_s(psutil.Process(pid))


def _nobody() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def tree_cpu_s(root: psutil.Process) -> float:
    total = 0.0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


class LockSampler:
    """Every 0.1 s: is the write lock held, how many sessions wait for an advisory lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.held: list[int] = []
        self.waiting: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="bench sampler") as conn:
            while not self._stop.wait(0.1):
                row = conn.execute(
                    f"SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = {WRITE_LOCK[0]} "
                    f"AND objid = {WRITE_LOCK[1]} AND granted AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())), "
                    "(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory')").fetchone()
                assert row is not None
                self.held.append(int(row[0]))
                self.waiting.append(int(row[1]))

    def summary(self) -> dict[str, float]:
        n = max(len(self.held), 1)
        return {"write_lock_held_share": round(sum(1 for h in self.held if h) / n, 3),
                "advisory_waiters_mean": round(sum(self.waiting) / n, 2), "lock_samples": len(self.held)}


# --- phases -------------------------------------------------------------------------------------

def force_due(url: str) -> None:
    """Every source due now: its next_due gone (None: due), as a fresh state has it, and its due_at (what the
    tick reads, schema v13) 0."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE sources SET state = (state::jsonb - 'next_due')::text, due_at = 0")


# --- setups -------------------------------------------------------------------------------------

def write_config(farm: farm_mod.Farm, folder: Path, state: str, args: argparse.Namespace) -> Path:
    path = run_bench.aggregator_config(farm, folder, args)
    lines = [f"state: {state}" if ln.startswith("state: ") else ln for ln in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_shot(setup: str, farm: farm_mod.Farm, folder: Path, state: str, server: Server, pg: BenchPostgres,
             args: argparse.Namespace, rep: int) -> list[Sample]:
    config = write_config(farm, folder, state, args)
    cmd = [args.aggregator, "run", "--force", "--no-progress", "--config", str(config)]
    samples = []
    before: dict[str, tuple[str, str]] = {}
    for phase in ("cold", "steady"):
        added = farm_mod.mutate(args.farm_dir, 1) if phase == "steady" else []
        load, proxy0, pg0 = os.getloadavg()[0], server.proxy_cpu_s(), pg.cpu_s()
        sampler = LockSampler(state) if setup == "pg" else None
        if sampler:
            sampler.__enter__()
        wall, cpu, _rss, rc, out, _ru, _pss = run_bench.measure(cmd, folder / f"{phase}.log")
        if sampler:
            sampler.__exit__()
        s = Sample(setup, phase, args.latency_ms, rep, round(wall, 3), round(cpu, 3),
                   round(pg.cpu_s() - pg0, 3) if setup == "pg" else 0.0, round(server.proxy_cpu_s() - proxy0, 3),
                   loadavg=round(load, 2))
        s.info["took"] = out.strip().splitlines()[-1][:80] if out.strip() else ""
        if sampler:
            s.info.update(sampler.summary())
        s.ok = rc == 0 and check(s, farm, folder, before, added)
        if rc:
            s.info["stderr"] = (folder / f"{phase}.log").read_text(errors="replace")[-600:]
        samples.append(s)
        before = run_bench.published(folder / "feeds")
    return samples


def check(s: Sample, farm: farm_mod.Farm, folder: Path, before: dict[str, tuple[str, str]],
          added: list[farm_mod.Item]) -> bool:
    now = run_bench.published(folder / "feeds")
    result = run_bench.check_cold(farm, now, 50) if s.phase == "cold" else run_bench.check_steady(before, now, added)
    s.info["check"] = result
    return bool(result["ok"])


def workers(count: int, farm: farm_mod.Farm, folder: Path, url: str, server: Server, pg: BenchPostgres,
            args: argparse.Namespace, rep: int) -> list[Sample]:
    config = write_config(farm, folder, url, args)
    cmd = [args.aggregator, "worker", "-c", str(config), "--tick", "1", "--publish-delay", "1", "-v"]
    logs = [folder / f"worker{k}.log" for k in range(count)]
    setup = f"workers-{count}"
    samples: list[Sample] = []
    procs: list[psutil.Popen] = []
    try:
        load, proxy0, pg0 = os.getloadavg()[0], server.proxy_cpu_s(), pg.cpu_s()
        since = datetime.now(UTC)
        start = time.perf_counter()
        for log in logs:
            with open(log, "wb") as out:
                procs.append(psutil.Popen(cmd, stdout=out, stderr=subprocess.STDOUT))
        with LockSampler(url) as sampler:
            startup = wait_settled(config, since, procs, logs, start, args.timeout)
        wall = time.perf_counter() - start
        cpu_cold = sum(tree_cpu_s(p) for p in procs)
        s = Sample(setup, "cold", args.latency_ms, rep, round(wall, 3), round(cpu_cold, 3),
                   round(pg.cpu_s() - pg0, 3), round(server.proxy_cpu_s() - proxy0, 3), round(startup, 3),
                   round(load, 2), info=sampler.summary())
        s.ok = check(s, farm, folder, {}, [])
        samples.append(s)
        before = run_bench.published(folder / "feeds")

        added = farm_mod.mutate(args.farm_dir, 1)
        time.sleep(1.5)  # a tick between: nothing is due, so this is idle cost, left out of the phase
        load, proxy0, pg0 = os.getloadavg()[0], server.proxy_cpu_s(), pg.cpu_s()
        cpu0 = sum(tree_cpu_s(p) for p in procs)
        since = datetime.now(UTC)
        start = time.perf_counter()
        force_due(url)
        with LockSampler(url) as sampler:
            wait_settled(config, since, procs, logs, start, args.timeout)
        wall = time.perf_counter() - start
        s = Sample(setup, "steady", args.latency_ms, rep, round(wall, 3),
                   round(sum(tree_cpu_s(p) for p in procs) - cpu0, 3), round(pg.cpu_s() - pg0, 3),
                   round(server.proxy_cpu_s() - proxy0, 3), loadavg=round(load, 2), info=sampler.summary())
        s.ok = check(s, farm, folder, before, added)
        samples.append(s)
    finally:
        codes = stop(procs)
        for s in samples:
            s.info["exit_codes"] = codes
    return samples


def wait_settled(config: Path, since: datetime, procs: list[psutil.Popen], logs: list[Path], start: float,
                 timeout_s: float) -> float:
    """Poll until settled; the start-up time seen on the way (spawn until the last "worker started")."""
    startup = 0.0
    started = [False] * len(procs)
    while True:
        for k, log in enumerate(logs):
            if not started[k] and "worker started" in log.read_text(errors="replace"):
                started[k] = True
                if all(started):
                    startup = time.perf_counter() - start
        if settled(config, since):
            return startup
        dead = [p.returncode for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a worker exited {dead}: {logs[0].read_text(errors='replace')[-2000:]}")
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"not settled in {timeout_s} s: {logs[0].read_text(errors='replace')[-2000:]}")
        time.sleep(POLL_S)


def stop(procs: list[psutil.Popen]) -> list[int | None]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for p in procs:
        try:
            codes.append(p.wait(60))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(None)
    return codes


# --- driver -------------------------------------------------------------------------------------

def run_latency(farm: farm_mod.Farm, pg: BenchPostgres, args: argparse.Namespace) -> list[Sample]:
    server = Server(args.farm_dir, farm.base_port, farm.hosts, args.latency_ms)
    server.start()
    samples: list[Sample] = []
    try:
        for rep in range(args.reps):
            order = args.setups[rep % len(args.setups):] + args.setups[:rep % len(args.setups)]
            for setup in order:
                farm_mod.mutate(args.farm_dir, 0)
                folder = args.work / f"{int(args.latency_ms)}ms-rep{rep}-{setup}"
                folder.mkdir(parents=True)
                if setup == "sqlite":
                    got = one_shot(setup, farm, folder, str(folder / "state.db"), server, pg, args, rep)
                else:
                    url = pg.new_database()
                    try:
                        got = (one_shot(setup, farm, folder, url, server, pg, args, rep) if setup == "pg" else
                               workers(int(setup.split("-")[1]), farm, folder, url, server, pg, args, rep))
                    finally:
                        pg.drop_database(url)
                for s in got:
                    print(json.dumps(asdict(s)), flush=True)
                samples += got
                if not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        server.stop()
        farm_mod.mutate(args.farm_dir, 0)
    return samples


def table(samples: list[Sample], latencies: list[float]) -> str:
    head = "| setup | " + " | ".join(f"{ph} {int(lat)} ms" for lat in latencies for ph in ("cold", "steady")) + " |"
    lines = [head, "|---" + "|---:" * (2 * len(latencies)) + "|"]
    for setup in SETUPS:
        cells = []
        for lat in latencies:
            for phase in ("cold", "steady"):
                walls = sorted(s.wall_s for s in samples if (s.setup, s.phase, s.latency_ms) == (setup, phase, lat))
                cells.append(f"{statistics.median(walls):.1f} ({walls[0]:.1f}-{walls[-1]:.1f})" if walls else "-")
        lines.append(f"| {setup} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail(samples: list[Sample]) -> str:
    """Medians of everything else per setup/phase/latency."""
    lines = ["| latency | setup | phase | wall s | CPU s (tool) | CPU s (postgres) | proxy CPU s | start-up s "
             "| write lock held | advisory waiters | load | checks |", "|---" * 12 + "|"]
    keys = sorted({(s.latency_ms, SETUPS.index(s.setup), s.phase) for s in samples}, key=lambda k: (k[0], k[1], k[2] != "cold"))
    for lat, idx, phase in keys:
        runs = [s for s in samples if (s.latency_ms, s.setup, s.phase) == (lat, SETUPS[idx], phase)]

        def med(get: Any) -> float:
            return float(statistics.median(get(s) for s in runs))
        share = [s.info["write_lock_held_share"] for s in runs if "write_lock_held_share" in s.info]
        waiters = [s.info["advisory_waiters_mean"] for s in runs if "advisory_waiters_mean" in s.info]
        lines.append(f"| {int(lat)} | {SETUPS[idx]} | {phase} | {med(lambda s: s.wall_s):.1f} | {med(lambda s: s.cpu_s):.1f} "
                     f"| {med(lambda s: s.pg_cpu_s):.1f} | {med(lambda s: s.proxy_cpu_s):.1f} "
                     f"| {med(lambda s: s.startup_s):.1f} | {f'{statistics.median(share):.0%}' if share else '-'} "
                     f"| {f'{statistics.median(waiters):.2f}' if waiters else '-'} | {med(lambda s: s.loadavg):.1f} "
                     f"| {sum(s.ok for s in runs)}/{len(runs)} ok |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latencies", default="0,100")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--base-port", type=int, default=farm_mod.BASE_PORT)
    ap.add_argument("--aggregator", default=str(Path(sys.executable).with_name("aggregator")))
    ap.add_argument("--farm-dir", type=Path, default=Path("/tmp/bench-farm-workers"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-work-workers"))
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep each setup's folder (config, logs, outputs)")
    ap.add_argument("--render", type=Path, help="only print the tables of an earlier --out file")
    args = ap.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        old = [Sample(**s) for s in saved["samples"]]
        print(table(old, saved["latencies"]) + "\n\n" + detail(old))
        return
    args.setups = args.setups.split(",")
    args.epoch = ""
    args.shipped_defaults = True  # no fetch section: the shipped budgets, as run_bench's default
    latencies = [float(x) for x in args.latencies.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bin_dir = postgres_bin()
    if bin_dir is None:
        sys.exit("no PostgreSQL binaries")
    farm = run_bench.prepare_farm(args)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "aggregator")], check=True)
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    note = run_bench.machine_note()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    pg = BenchPostgres(bin_dir, Path(tempfile.mkdtemp(prefix="bench-pg-")))
    pg.start()
    samples: list[Sample] = []
    try:
        for latency in latencies:
            args.latency_ms = latency
            samples += run_latency(farm, pg, args)
    finally:
        pg.stop()
        shutil.rmtree(pg.folder, ignore_errors=True)
    note["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {"started": started, "command": " ".join(sys.argv), "machine": note, "latencies": latencies,
              "n": args.n, "samples": [asdict(s) for s in samples]}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(note))
    print(table(samples, latencies) + "\n\n" + detail(samples))


if __name__ == "__main__":
    main()
