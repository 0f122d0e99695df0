"""kill -9 of a process in the middle of writing: the file stays sound and every commit survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

from conftest import CORPUS, ROOT, integrity_problems

from aggregator.store import Store

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

# Writes the Chinese corpus feeds as sources src<round>-<n>, announcing each commit on stdout.
WRITER = """
import calendar, sys
from datetime import datetime, timezone
from pathlib import Path
import feedparser
from aggregator.model import Article
from aggregator.store import Store

def articles(path, url):
    doc = feedparser.parse(Path(path).read_bytes(), sanitize_html=False)
    for i, e in enumerate(doc.entries):
        parsed = e.get("published_parsed")
        yield Article(id=f"urn:x:{abs(hash(url))}:{i}", source_url=url, source_name="s",
                      original_id=e.get("id", ""), title=e.get("title", ""), link=e.get("link", ""),
                      published=datetime.fromtimestamp(calendar.timegm(parsed), timezone.utc) if parsed else None,
                      content_html=(e.get("summary", "") + "<p>x</p>") * 20)

db, rounds, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
with Store.open(db) as store:
    for n, path in enumerate(paths * 50):
        url = f"https://src{rounds}-{n}.example/"
        batch = list(articles(path, url))
        store.upsert_articles(url, batch, now)
        store.save_source_states({url: {"count": len(batch)}})
        print(url, len(batch), flush=True)
"""


def test_kill_9_mid_write_loses_no_commit(state_location: str) -> None:
    """On SQLite and on PostgreSQL (whose run lock goes with the killed writer's connection)."""
    db = state_location
    paths = [str(p) for p in sorted(CORPUS.glob("rsshub/*.xml"))[:6]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    committed: dict[str, int] = {}
    for round_no, kill_after in enumerate((1, 3, 2, 5, 4)):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, db, str(round_no), *paths], env=env,
                                text=True, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        for _ in range(kill_after):
            url, count = proc.stdout.readline().split()
            committed[url] = int(count)
        os.kill(proc.pid, signal.SIGKILL)  # the writer is already inside its next source's work
        proc.wait()
        proc.stdout.close()
        with Store.open(db, lock_timeout_s=5) as store:
            assert integrity_problems(db) == []
            states = store.source_states()
            for url, count in committed.items():
                assert states[url] == {"count": count}
                assert len(store.articles_for([url], now=NOW)) == count
