"""`aggregator worker` on a real PostgreSQL (issue 23): workers publish what a one-shot run publishes,
one job per host holds the per-host budget across the cluster, kill -9 loses and duplicates nothing, a
tick never enqueues a source twice, SIGTERM hands running jobs back."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from conftest import CORPUS, Route, yaml_config
from test_outputs_frozen import category_of, corpus_feeds
from workers import FeedHost, atom_entries, feed_hosts, start_worker, stop_workers, wait_settled

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.pipeline import RunOptions, run

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
                                                         postgres_url: str, postgres_server: object) -> None:
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

    workers_url = postgres_server.new_database()  # type: ignore[attr-defined]
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
