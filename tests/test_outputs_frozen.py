"""Outputs byte for byte: the whole corpus through a real run under a frozen clock gives the same files.

The guard rail for restructuring (issue 21): every output file (Atom, RSS, JSON Feed, index.html, OPML,
Hexo posts) of the corpus is recorded as its SHA-256 in tests/data/frozen_outputs.json. A change that
alters any byte fails here, naming the files. When a change of output is intended, look at the new
files, then record them:

    AGGREGATOR_RECORD_OUTPUTS=1 .venv/bin/python -m pytest -q tests/test_outputs_frozen.py

Article ids hash the source URL, so the server has a fixed loopback address and port; a lock file
makes concurrent test runs on one machine take turns.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT, RecordingServer, Route

from aggregator.config import load_config
from aggregator.pipeline import RunOptions, run

FROZEN_NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ADDRESS = ("127.73.87.1", 18787)  # fixed: ids and links depend on the source URLs
RECORD = ROOT / "tests" / "data" / "frozen_outputs.json"
FEED_SUFFIXES = (".xml", ".rss", ".atom", ".json", ".rdf")


def corpus_feeds() -> list[str]:
    paths = [p for p in (CORPUS / "feeds").rglob("*") if p.suffix in FEED_SUFFIXES] + list(
        (CORPUS / "rsshub").glob("*.xml"))
    return sorted(p.relative_to(CORPUS).as_posix() for p in paths)


def category_of(name: str) -> str:
    if name.startswith(("rsshub/", "feeds/wechat-feeds/", "feeds/rodel-reader/")):
        return "zh"
    return "pods" if "podcast" in name.lower() else "misc"


@pytest.fixture
def fixed_server() -> Iterator[RecordingServer]:
    with open(Path(tempfile.gettempdir()) / "aggregator-frozen-outputs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one run of this test at a time on this machine
        server = RecordingServer(ADDRESS)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()
        server.server_close()


def output_digests(tmp_path: Path, server: RecordingServer, state: str = "state.db") -> dict[str, str]:
    """Run the whole corpus once into tmp_path (config feeds.yaml, the state at `state`); every output's digest."""
    sources = []
    for name in corpus_feeds():
        kind = "application/feed+json" if name.endswith(".json") else "application/xml"
        server.routes["/" + name] = Route(200, {"Content-Type": kind}, (CORPUS / name).read_bytes())
        sources.append(f"  - {{url: '{server.url('/' + name)}', category: {category_of(name)}, name: '{name}'}}")
    config = tmp_path / "feeds.yaml"
    config.write_text("""\
output: {dir: out, base_url: 'https://news.example.org/feeds/', formats: [atom, rss, json], hexo: {dir: posts}}
state: '""" + state + """'
categories:
  zh: {title: 中文}
  pods: {title: Podcasts}
  misc: {title: Misc}
sources:
""" + "\n".join(sources) + "\n", encoding="utf-8")
    summary = run(load_config(config), RunOptions(force=True), now=FROZEN_NOW)
    assert sum(1 for r in summary.sources if r.kind == "fetched") == len(sources)
    digests = {}
    for path in sorted((tmp_path / "out").rglob("*")) + sorted((tmp_path / "posts").rglob("*")):
        if path.is_file():
            data = path.read_bytes().replace(str(tmp_path).encode(), b"/TMP")
            digests[path.relative_to(tmp_path).as_posix()] = hashlib.sha256(data).hexdigest()
    return digests


def test_the_corpus_renders_to_the_recorded_bytes(tmp_path: Path, fixed_server: RecordingServer) -> None:
    digests = output_digests(tmp_path, fixed_server)
    assert len(digests) > 100
    if os.environ.get("AGGREGATOR_RECORD_OUTPUTS"):
        RECORD.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert_recorded(digests)


def assert_recorded(digests: dict[str, str]) -> None:
    recorded = json.loads(RECORD.read_text(encoding="utf-8"))
    changed = sorted(name for name in set(recorded) | set(digests) if recorded.get(name) != digests.get(name))
    assert changed == [], f"{len(changed)} output files differ from the record, e.g. {changed[:8]}"
