"""`aggregator worker` on a real PostgreSQL (issue 23): workers publish what a one-shot run publishes,
one job per host holds the per-host budget across the cluster, kill -9 loses and duplicates nothing, a
tick never enqueues a source twice, SIGTERM hands running jobs back."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pg
import psycopg
import pytest
from conftest import CORPUS, Route, integrity_problems, yaml_config
from test_outputs_frozen import category_of, corpus_feeds
from cluster import (
    FeedHost,
    atom_entries,
    feed_hosts,
    serve_growing,
    settled_worker,
    start_worker,
    stop_workers,
    wait_settled,
)

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.pipeline import RunOptions, run
from aggregator.pipeline.workers import LazyPool
from aggregator.store import Store, postgres
from aggregator.worker.app import FETCH_TASK, Worker, WorkerOptions
from aggregator.worker.jobs import ConfigWatch, WorkerContext

CATEGORIES = ("zh", "pods", "misc")


def _serve(hosts: list[FeedHost], every: int = 3) -> list[str]:
    """Every `every`th corpus feed, spread over the hosts; the config's source lines."""
    lines = []
    for n, name in enumerate(corpus_feeds()[::every]):
        host = hosts[n % len(hosts)]
        kind = "application/feed+json" if name.endswith(".json") else "application/xml"
        host.routes["/" + name] = Route(200, {"Content-Type": kind}, (CORPUS / name).read_bytes())
        lines.append(f"  - {{url: '{host.url('/' + name)}', category: {category_of(name)}, name: '{name}'}}")
    return lines


def _config(folder: Path, state: str, sources: list[str], fetch: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return yaml_config(folder, ["output: {dir: out, base_url: 'https://news.example.org/feeds/'}", f"state: '{state}'",
                                "categories: {zh: {title: 中文}, pods: {title: Podcasts}, misc: {title: Misc}}",
                                *([f"fetch: {fetch}"] if fetch else []), "sources:", *sources])


def _published(folder: Path) -> dict[str, dict[str, tuple[str, str, str]]]:
    return {slug: atom_entries(folder / "out" / f"{slug}.atom") for slug in (*CATEGORIES, "all")}


@pytest.fixture
def hosts() -> Iterator[list[FeedHost]]:
    with feed_hosts(4) as served:
        yield served


def test_four_workers_publish_what_one_shot_runs_publish(tmp_path: Path, hosts: list[FeedHost],
                                                         postgres_url: str, postgres_server: pg.PostgresServer) -> None:
    """A third of the corpus on 4 hosts: what 4 workers publish is what SQLite and PostgreSQL one-shot runs
    publish (ids, titles, links, content). A third, because over the whole corpus even two one-shot runs
    differ: where several sources carry one item (the same link or guid: Daring Fireball's Atom and JSON
    feeds, say), the copy stored first keeps the plain id and is the one shown, and that is the order
    fetches happen to finish. This third has no such item (checked below), so the comparison is exact."""
    sources = _serve(hosts)
    now = datetime.now(UTC)
    one_shot = {}
    for name, state in (("sqlite", "state.db"), ("postgresql", postgres_url)):
        config = _config(tmp_path / name, state, sources)
        summary = run(load_config(config), RunOptions(), now=now)
        assert [r.error for r in summary.sources if r.kind == "failed"] == []
        one_shot[name] = _published(tmp_path / name)
    assert one_shot["sqlite"] == one_shot["postgresql"]
    assert sum(len(e) for e in one_shot["sqlite"].values()) > 100
    assert _links_of_several_sources(tmp_path / "sqlite" / "state.db") == []

    workers_url = postgres_server.new_database()
    config = _config(tmp_path / "workers", workers_url, sources)
    log = tmp_path / "workers.log"
    workers = [start_worker(config, "--concurrency", "4", log=log) for _ in range(4)]
    try:
        wait_settled(config, workers, log=log)
    finally:
        codes = stop_workers(workers)
    assert codes == [0, 0, 0, 0], log.read_text(errors="replace")[-3000:]
    assert _published(tmp_path / "workers") == one_shot["sqlite"]
    # each feed was fetched once by each one-shot run and once by the workers, never twice by them
    for host in hosts:
        paths = [path for path, _headers in host.requests]
        assert paths and sorted(paths) == sorted(list(set(paths)) * 3)


def _links_of_several_sources(sqlite_state: Path) -> list[str]:
    """Links that more than one source's items carry (stored first wins: fetch order decides)."""
    with sqlite3.connect(sqlite_state) as conn:
        return [row[0] for row in conn.execute(
            "SELECT link_key FROM entries WHERE link_key <> '' GROUP BY link_key HAVING count(DISTINCT source_url) > 1")]


def _growing(hosts: list[FeedHost], feeds_per_host: int, items: int = 3) -> tuple[list[str], dict[str, list[int]]]:
    """Small feeds that the test can grow (grow()), `feeds_per_host` on each host: source lines, items by URL."""
    lines, served = [], {}
    for host in hosts:
        for n in range(feeds_per_host):
            url = host.url(f"/grow/{n}.xml")
            served[url] = list(range(items))
            serve_growing(host, f"/grow/{n}.xml", _title(url), served[url])
            lines.append(f"  - {{url: '{url}', category: misc}}")
    return lines, served


def _title(url: str) -> str:
    return url.split("//")[1].replace(":", "-").replace("/", "-").replace(".", "-")


def grow(hosts: list[FeedHost], served: dict[str, list[int]], url: str) -> None:
    """One more item in the feed at `url`."""
    served[url].append(len(served[url]))
    host = next(h for h in hosts if url.startswith(h.base + "/"))
    serve_growing(host, url.removeprefix(host.base), _title(url), served[url])


FAST_SCHEDULE = "{interval: 1s, min_interval: 1s, max_interval: 2s, per_host: 2}"


def test_the_per_host_budget_holds_across_the_cluster(tmp_path: Path, postgres_url: str) -> None:
    """Three workers, sources due every second on three slow hosts: the hosts' own logs never show more
    than per_host (2) requests in flight, though the cluster fetches several hosts at once."""
    with feed_hosts(3, delay_s=0.15) as hosts:
        lines, _served = _growing(hosts, 6)
        config = _config(tmp_path, postgres_url, lines, fetch=FAST_SCHEDULE)
        log = tmp_path / "workers.log"
        workers = [start_worker(config, "--concurrency", "4", log=log) for _ in range(3)]
        try:
            deadline = time.monotonic() + 60
            while sum(len(h.requests) for h in hosts) < 120 and time.monotonic() < deadline:
                assert all(w.poll() is None for w in workers), log.read_text(errors="replace")[-3000:]
                time.sleep(0.2)
        finally:
            assert stop_workers(workers) == [0, 0, 0]
        assert all(len(h.requests) >= 20 for h in hosts), [len(h.requests) for h in hosts]
        most = [h.most_in_flight for h in hosts]
        assert max(most) == 2 and all(n <= 2 for n in most), most  # the budget is used, and never exceeded
        merged = sorted((t, h, n) for h, host in enumerate(hosts) for t, n in host.log)
        now_in_flight = [0, 0, 0]
        most_at_once = 0
        for _t, h, n in merged:
            now_in_flight[h] = n
            most_at_once = max(most_at_once, sum(now_in_flight))
        assert most_at_once > 2  # hosts were fetched side by side


def _tick_worker(config_path: Path, store: Store, pool: LazyPool) -> Worker:
    watch = ConfigWatch(config_path)
    ctx = WorkerContext(watch, store, pool, lambda: datetime.now(UTC))
    return Worker(watch.current.state, ctx, WorkerOptions())


def test_two_ticks_never_enqueue_a_source_twice(tmp_path: Path, postgres_url: str) -> None:
    with feed_hosts(3) as hosts:
        lines, served = _growing(hosts, 4)
        config_path = _config(tmp_path, postgres_url, lines)
        from procrastinate.schema import SchemaManager

        postgres.create_once(postgres_url, "procrastinate_jobs", SchemaManager.get_schema())

        async def ticks() -> list[int]:
            with Store.open(postgres_url, shared=True) as store, LazyPool(0, 1) as pool:
                first, second = _tick_worker(config_path, store, pool), _tick_worker(config_path, store, pool)
                async with first.app.open_async(), second.app.open_async():
                    at_once = await asyncio.gather(first.tick(), second.tick(), first.tick())
                    return [*at_once, await second.tick()]

        enqueued = asyncio.run(ticks())
    assert sum(enqueued) == 3 and enqueued[-1] == 0
    with psycopg.connect(postgres_url) as conn:
        jobs = conn.execute("SELECT lock, args FROM procrastinate_jobs WHERE task_name = %s", (FETCH_TASK,)).fetchall()
    assert sorted(lock for lock, _args in jobs) == sorted(f"host:127.0.0.1:{h.server_address[1]}" for h in hosts)
    urls = [url for _lock, args in jobs for url in args["urls"]]
    assert sorted(urls) == sorted(served)  # every due source once


def test_sigterm_hands_running_jobs_back(tmp_path: Path, postgres_url: str) -> None:
    with feed_hosts(1, delay_s=1.0) as hosts:
        lines, _served = _growing(hosts, 6)
        config = _config(tmp_path, postgres_url, lines, fetch="{per_host: 1}")
        log = tmp_path / "worker.log"
        worker = start_worker(config, "--stop-timeout", "0.5", log=log)
        deadline = time.monotonic() + 60
        while not hosts[0].requests:
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        with psycopg.connect(postgres_url) as conn:
            statuses = [row[0] for row in conn.execute(
                "SELECT status FROM procrastinate_jobs WHERE task_name = %s", (FETCH_TASK,))]
        assert statuses == ["aborted"]  # handed back: not left running, not lost as failed
        fetched_before = len(hosts[0].requests)
        assert fetched_before < 6
        again = start_worker(config, log=log)  # a later tick enqueues the host again
        try:
            wait_settled(config, [again], log=log)
        finally:
            assert stop_workers([again]) == [0]


def test_a_worker_needs_a_database_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "state.db", ["  - {url: 'http://127.0.0.1:9/feed', category: misc}"])
    assert main(["worker", "-c", str(config)]) == 1
    assert "workers share a PostgreSQL state" in capsys.readouterr().err
    assert main(["worker", "-c", str(config), "--tick", "7"]) == 2  # a usage error, before anything is opened
    assert "--tick 7: must divide a minute" in capsys.readouterr().err


def test_a_one_shot_run_refuses_to_run_beside_workers(tmp_path: Path, postgres_url: str, hosts: list[FeedHost],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, postgres_url, _growing(hosts, 1)[0])
    worker = settled_worker(config, tmp_path / "worker.log")
    try:
        assert main(["run", "-q", "-c", str(config), "--lock-timeout", "1"]) == 3
    finally:
        assert stop_workers([worker]) == [0]
    assert "(aggregator worker pid" in capsys.readouterr().err


def test_forty_kill_9s_lose_and_duplicate_nothing(tmp_path: Path, postgres_url: str) -> None:
    """Three workers over corpus feeds and feeds that keep growing; 40 times one of them is killed with
    SIGKILL at a random moment and started again. Afterwards the state holds exactly what a one-shot run
    over the final feeds stores: every item once, none lost, and the state whole."""
    rng = random.Random(23)
    with feed_hosts(3) as hosts:
        lines, served = _growing(hosts, 4)
        lines += _serve(hosts, every=4)
        config = _config(tmp_path / "workers", postgres_url, lines, fetch=FAST_SCHEDULE)
        log = tmp_path / "workers.log"
        workers = [start_worker(config, "--concurrency", "4", log=log) for _ in range(3)]
        growing = threading.Event()
        growing.set()

        def keep_growing() -> None:
            while growing.is_set():
                grow(hosts, served, rng.choice(sorted(served)))
                time.sleep(0.05)

        grower = threading.Thread(target=keep_growing)
        grower.start()
        try:
            for _kill in range(40):
                time.sleep(rng.uniform(0.1, 0.8))
                victim = rng.randrange(len(workers))
                workers[victim].kill()
                workers[victim].wait()
                workers[victim] = start_worker(config, "--concurrency", "4", log=log)
        finally:
            growing.clear()
            grower.join()
        grown_by = datetime.now(UTC)
        try:
            wait_settled(config, workers, log=log, since=grown_by, timeout_s=240)
        finally:
            assert stop_workers(workers) == [0, 0, 0]
        reference = _config(tmp_path / "one-shot", "state.db", lines)
        summary = run(load_config(reference), RunOptions(), now=datetime.now(UTC))
        assert [r.error for r in summary.sources if r.kind == "failed"] == []
    assert sum(len(items) for items in served.values()) > 12 * 3 + 40  # the feeds did grow meanwhile
    assert "of a worker that stopped answering: queued again" in log.read_text()  # kills landed mid-job
    assert integrity_problems(postgres_url) == []
    # entries as the store identifies them (id: the feed's guid or link, per store.dedup); a first run's
    # articles not yet shown have no cleaned body yet, so bodies are not compared, nor the status: the daily
    # pruning ran at a different moment of each (old items are `pruned` in one, still `published` in the other)
    query = "SELECT source_url, id FROM entries"
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute(query).fetchall()
    with sqlite3.connect(tmp_path / "one-shot" / "state.db") as conn:
        expected = conn.execute(query).fetchall()
    # ids compare exactly: no item two sources carry (see test_four_workers_publish_what_one_shot_runs_publish)
    assert _links_of_several_sources(tmp_path / "one-shot" / "state.db") == []
    assert sorted(stored) == sorted(expected)  # nothing lost, nothing extra, nothing stored twice
    for url, items in served.items():
        assert sum(1 for row in stored if row[0] == url) == len(items), url


def test_a_worker_whose_database_went_away_exits_1_to_be_started_again(
        tmp_path: Path, postgres_url: str, postgres_server: pg.PostgresServer, hosts: list[FeedHost]) -> None:
    config, log = _config(tmp_path, postgres_url, _growing(hosts, 2)[0]), tmp_path / "worker.log"
    worker = settled_worker(config, log)
    try:
        postgres_server.restart()
        assert worker.wait(60) == 1
    finally:
        stop_workers([worker])
    assert "aggregator: worker stopped: " in log.read_text()
    again = start_worker(config, log=log)  # what systemd's Restart= does: fresh connections, and on it goes
    try:
        time.sleep(3)
        assert again.poll() is None, log.read_text()[-2000:]
    finally:
        assert stop_workers([again]) == [0]


def test_fetching_and_publishing_on_different_workers(tmp_path: Path, postgres_url: str,
                                                      hosts: list[FeedHost]) -> None:
    """A fetch-only worker (no output folder there) and a publish-only one: the feeds appear, and a config
    edit that changes no article (a category's title) is published too."""
    config = _config(tmp_path, postgres_url, _growing(hosts, 2)[0])
    log = tmp_path / "workers.log"
    workers = [start_worker(config, "--queue", "fetch", log=log), start_worker(config, "--queue", "publish", log=log)]
    try:
        wait_settled(config, workers, log=log)
        assert len(atom_entries(tmp_path / "out" / "misc.atom")) == len(hosts) * 2 * 3
        config.write_text(config.read_text().replace("misc: {title: Misc}", "misc: {title: Renamed}"))
        deadline = time.monotonic() + 60
        while b"Renamed" not in (tmp_path / "out" / "misc.atom").read_bytes():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
    finally:
        assert stop_workers(workers) == [0, 0]
