"""A real feed reader (newsboat, Debian package newsboat) subscribes to our outputs over loopback HTTP.
It needs the Debian package; .ci/run installs it, and where it is missing the test reports a skip."""

from __future__ import annotations

import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import RecordingServer, Route
from test_publish import CATEGORIES, OUTPUT, feeds_of, make_articles
from test_publish_outputs import HOSTILE_FILES, articles_of

from aggregator.publish import FeedSpec, publish_outputs

NEWSBOAT = Path("/usr/bin/newsboat")
pytestmark = pytest.mark.skipif(not NEWSBOAT.exists(), reason="needs newsboat (Debian); .ci/run installs it")
TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml"}


def test_newsboat_sees_every_entry(tmp_path: Path, http_server: RecordingServer) -> None:
    assert NEWSBOAT.exists(), "newsboat missing: apt-get install newsboat"
    hostile = [a for path in HOSTILE_FILES[:12] for a in articles_of(path)]
    feeds = [*feeds_of(make_articles())[:2], (FeedSpec("hostile", "Hostile", ""), hostile)]
    feeds.append((FeedSpec("all", "Everything", ""), [a for _, articles in feeds for a in articles]))
    out = tmp_path / "out"
    publish_outputs(replace(OUTPUT, formats=["atom", "rss"], max_entries=0, max_per_source=0), out, feeds, CATEGORIES)
    expected = {a.id for _, articles in feeds for a in articles}
    for fmt in ("atom", "rss"):
        http_server.routes[f"/all.{fmt}"] = Route(
            200, {"Content-Type": TYPES[fmt]}, (out / f"all.{fmt}").read_bytes()
        )
        (tmp_path / "urls").write_text(http_server.url(f"/all.{fmt}") + "\n")
        cache = tmp_path / f"cache-{fmt}.db"
        result = subprocess.run(
            [str(NEWSBOAT), "-u", str(tmp_path / "urls"), "-c", str(cache), "-x", "reload"],
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TERM": "dumb"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        with sqlite3.connect(cache) as db:
            rows = db.execute("SELECT guid, title FROM rss_item").fetchall()
        assert {guid for guid, _ in rows} == expected, fmt
        assert all(title for _, title in rows)
    assert [path for path, _ in http_server.requests] == ["/all.atom", "/all.rss"]
