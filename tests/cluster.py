"""Helpers for the worker tests (issue 23): feed hosts on loopback that log what is in flight, `aggregator
worker` processes, and waiting until a cluster has nothing left to do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import psycopg
from conftest import ROOT, RecordingServer, Route, _RecordingHandler

from aggregator.config import load_config
from aggregator.pipeline.publishing import outputs_current, publish_key
from aggregator.store import Store

ATOM = "{http://www.w3.org/2005/Atom}"


class _Handler(_RecordingHandler):
    server: FeedHost

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.enter()
        try:
            if self.server.delay_s:
                time.sleep(self.server.delay_s)
            route = self.server.routes.get(self.path)
            etag = route.headers.get("ETag") if route else None
            if etag and self.headers.get("If-None-Match") == etag:  # a conditional GET of an unchanged feed
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with self.server.lock:
                    self.server.requests.append((self.path, dict(self.headers.items())))
                return
            super().do_GET()
        finally:
            self.server.leave()


class FeedHost(RecordingServer):
    """A RecordingServer that answers after `delay_s` and logs how many requests it held at once."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0))
        self.RequestHandlerClass = _Handler
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0
        self.log: list[tuple[float, int]] = []  # (monotonic time, requests in flight after it changed)

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.log.append((time.monotonic(), self.in_flight))

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1
            self.log.append((time.monotonic(), self.in_flight))


def growing_feed(title: str, items: Sequence[int]) -> bytes:
    """A small RSS feed holding items numbered `items` (dated an hour apart, newest last added)."""
    body = "".join(
        f"<item><title>{title} item {n}</title><link>https://{title}.example/{n}</link>"
        f"<guid>{title}-{n}</guid><pubDate>{format_datetime(EPOCH + timedelta(hours=n))}</pubDate>"
        f"<description>Item {n} of {title}.</description></item>" for n in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>https://{title}.example/</link><description>x</description>{body}</channel></rss>").encode()


EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


def serve_growing(host: FeedHost, path: str, title: str, items: Sequence[int]) -> None:
    body = growing_feed(title, items)
    host.routes[path] = Route(200, {"Content-Type": "application/rss+xml",
                                    "ETag": '"' + hashlib.sha256(body).hexdigest()[:16] + '"'}, body)


@contextmanager
def feed_hosts(count: int, delay_s: float = 0.0) -> Iterator[list[FeedHost]]:
    hosts = [FeedHost(delay_s) for _ in range(count)]
    for host in hosts:
        threading.Thread(target=host.serve_forever, daemon=True).start()
    try:
        yield hosts
    finally:
        for host in hosts:
            host.shutdown()
            host.server_close()


def start_worker(config: Path, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`aggregator worker` on `config`, ticking every second (output to `log`, else discarded)."""
    command = [sys.executable, "-m", "aggregator.cli", "worker", "-c", str(config), "--tick", "1",
               "--publish-delay", "1", "--heartbeat", "1", "--workers", "1", *args]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child holds it
    try:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        if log:
            out.close()


def stop_workers(workers: Sequence[subprocess.Popen[bytes]], timeout_s: float = 60) -> list[int | None]:
    """SIGTERM each, then wait: their exit codes."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    codes = []
    for worker in workers:
        try:
            codes.append(worker.wait(timeout_s))
        except subprocess.TimeoutExpired:
            worker.kill()
            codes.append(None)
    return codes


def jobs_left(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
                           "AND task_name <> 'aggregator.tick'").fetchone()
    return int(row[0]) if row else 0


def settled(config_path: Path, since: datetime | None = None) -> bool:
    """Every source fetched (successfully since `since`, when given), no fetch or publish job waiting or
    running, and the outputs published from the store as it is now."""
    config = load_config(config_path)
    try:
        with Store.open_read_only(config.state) as store:
            states = store.source_states()
            generation = store.generation()
    except Exception:  # noqa: BLE001 - the schema may not be there yet
        return False
    if any(not states.get(s.url, {}).get("last_fetch") for s in config.sources):
        return False
    if since and any(_moment(states[s.url].get("last_success")) < since for s in config.sources):
        return False
    if jobs_left(config.state):
        return False
    return outputs_current(config, publish_key(config, generation), datetime.now(UTC))


def _moment(saved: object) -> datetime:
    return datetime.fromisoformat(saved) if isinstance(saved, str) else datetime.min.replace(tzinfo=UTC)


def wait_settled(config_path: Path, workers: Sequence[subprocess.Popen[bytes]], timeout_s: float = 180,
                 log: Path | None = None, since: datetime | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not settled(config_path, since):
        dead = [w.returncode for w in workers if w.poll() is not None]
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        assert not dead, f"a worker exited ({dead}):\n{tail}"
        assert time.monotonic() < deadline, f"the workers did not settle in {timeout_s} s:\n{tail}"
        time.sleep(0.3)


def atom_entries(path: Path) -> dict[str, tuple[str, str, str]]:
    """An Atom feed's entries: id -> (title, link, content); a repeated id fails."""
    entries: dict[str, tuple[str, str, str]] = {}
    for entry in ET.parse(path).getroot().iter(f"{ATOM}entry"):
        entry_id = entry.findtext(f"{ATOM}id") or ""
        assert entry_id not in entries, f"{path.name}: entry {entry_id} twice"
        link = entry.find(f"{ATOM}link[@rel='alternate']")
        entries[entry_id] = (entry.findtext(f"{ATOM}title") or "", "" if link is None else link.get("href", ""),
                             entry.findtext(f"{ATOM}content") or "")
    return entries


def settled_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """One worker on `config`, started and waited for until it has fetched and published everything."""
    worker = start_worker(config, log=log)
    try:
        wait_settled(config, [worker], log=log)
    except BaseException:
        stop_workers([worker])
        raise
    return worker
