"""kill -9 a real `aggregator run` at random moments: state stays consistent, nothing published is lost."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import CORPUS, RecordingServer, Route
from lxml import etree

KILLS = 50
ATOM = "{http://www.w3.org/2005/Atom}"


def rss_bases(count: int) -> list[bytes]:
    """Real UTF-8 RSS 2.0 corpus feeds we can append items to."""
    bases = []
    for path in sorted((CORPUS / "rsshub").glob("*.xml")) + sorted((CORPUS / "feeds").rglob("*.xml")):
        data = path.read_bytes()
        head = data[:200].lower()
        if b"<rss" in data[:2000] and b"</channel>" in data and (b"utf-8" in head or b"encoding" not in head):
            if len(data) < 150_000 and data.count(b"<item") >= 3:
                bases.append(data)
        if len(bases) == count:
            break
    return bases


def with_items(base: bytes, items: list[int], feed_no: int) -> bytes:
    extra = b"".join(
        f"<item><title>crash test item {feed_no}-{n}</title><link>https://crash.example/{feed_no}/{n}</link>"
        f"<guid>https://crash.example/{feed_no}/{n}</guid><description>&lt;p&gt;body {n}&lt;/p&gt;</description>"
        f"<pubDate>Mon, 0{1 + n % 9} Jan 2024 10:00:00 GMT</pubDate></item>".encode() for n in items)
    cut = base.rindex(b"</channel>")
    return base[:cut] + extra + base[cut:]


def published_ids(out: Path) -> dict[str, set[str]]:
    """Entry ids per output feed; every file must parse (old or new version, never half)."""
    result = {}
    for path in sorted(out.glob("*.atom")):
        root = etree.parse(str(path)).getroot()
        result[path.name] = {e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")}
    return result


def pool_workers(parent: int | None = None) -> set[int]:
    """Pids of live worker processes (aggregator.pool), those of `parent` only when given. Other test
    runs share the machine: their workers come and go too, so a test watches its own runs' workers."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            cmdline = (status.parent / "cmdline").read_bytes()
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            ppid, state = int(fields["PPid"]), fields["State"].split()[0]
        except (OSError, KeyError, ValueError):
            continue  # gone meanwhile
        if b"from aggregator.pool import serve" in cmdline and state != "Z" and parent in (None, ppid):
            found.add(int(status.parent.name))
    return found


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path, http_server: RecordingServer) -> None:
    rng = random.Random(20261126)
    orphans: set[int] = set()  # the workers of the runs killed
    bases = rss_bases(12)
    assert len(bases) >= 8
    items: list[list[int]] = [[] for _ in bases]
    lines = ["output:", f"  dir: {tmp_path / 'out'}", "  base_url: https://crash.example/feeds/", "  max_entries: 0",
             "  max_per_source: 0",
             f"state: {tmp_path / 'state.db'}", "fetch: {per_host: 8, concurrency: 16, retries: 0}",
             "categories:", "  a: {title: A}", "  b: {title: B}", "sources:"]
    for i, base in enumerate(bases):
        http_server.routes[f"/{i}.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, base)
        lines.append(f"  - {{url: '{http_server.url(f'/{i}.xml')}', category: {'ab'[i % 2]}}}")
    config = tmp_path / "feeds.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "aggregator.cli", "run", "--config", str(config), "--force", "--no-progress",
               "--workers", "2"]

    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    full_run_s = time.monotonic() - started
    seen = published_ids(tmp_path / "out")
    assert sum(len(ids) for ids in seen.values()) > 50

    kills = round_no = 0
    while kills < KILLS:
        round_no += 1
        assert round_no <= 3 * KILLS, f"only {kills} of {round_no} runs could be killed mid-way"
        feed_no = rng.randrange(len(bases))  # the farm changes between runs, so runs have work to do
        items[feed_no].append(round_no)
        http_server.routes[f"/{feed_no}.xml"] = Route(
            200, {"Content-Type": "application/rss+xml"}, with_items(bases[feed_no], items[feed_no], feed_no))
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, full_run_s * 0.9))
        if process.poll() is None:
            orphans |= pool_workers(parent=process.pid)
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)

        with sqlite3.connect(tmp_path / "state.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        now_published = published_ids(tmp_path / "out")
        for name, ids in seen.items():
            missing = ids - now_published.get(name, set())
            assert not missing, f"round {round_no}: {name} lost {len(missing)} entries"
            seen[name] = now_published[name]
        for name in set(now_published) - set(seen):
            seen[name] = now_published[name]

    # the next run recovers by itself and publishes everything the farm holds
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    final = published_ids(tmp_path / "out")
    everything = set().union(*final.values())
    for feed_no, numbers in enumerate(items):
        for n in numbers:
            assert any(f"crash.example/{feed_no}/{n}" in i for i in everything), (feed_no, n)

    # a killed run's workers notice (end of file on their stdin) and exit: no process pile-up when a
    # timer's runs get killed
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while orphans & pool_workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert orphans, "no killed run had started its workers"
    assert orphans & pool_workers() == set()
