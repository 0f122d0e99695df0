"""Schema migrations: a state file of the first schema (v1, frozen here as released) opens and upgrades."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import integrity_problems

from aggregator.store import Store
from aggregator.store.schema import APPLICATION_ID, VERSION

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SOURCE = "https://sina.example/finance.xml"

# Schema version 1 exactly as the first release created it. Never edit: it stands for files in the wild.
V1 = """
CREATE TABLE sources (
    url TEXT PRIMARY KEY,
    state TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE entries (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    source_url TEXT NOT NULL REFERENCES sources(url) ON DELETE CASCADE,
    link_key TEXT NOT NULL,
    raw_hash TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    meta_hash TEXT NOT NULL,
    first_seen INTEGER NOT NULL,   -- microseconds since the epoch, UTC
    last_seen INTEGER NOT NULL,
    published INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('published', 'held', 'pruned'))
);
CREATE INDEX entries_by_source_updated ON entries(source_url, status, updated);
CREATE INDEX entries_by_source_published ON entries(source_url, published);
CREATE INDEX entries_by_link ON entries(link_key) WHERE link_key != '';
CREATE TABLE bodies (
    entry INTEGER PRIMARY KEY REFERENCES entries(key) ON DELETE CASCADE,
    source_name TEXT NOT NULL,
    original_id TEXT NOT NULL,
    title TEXT NOT NULL,
    link TEXT NOT NULL,
    authors TEXT NOT NULL,       -- JSON list
    feed_published INTEGER,      -- the dates exactly as the feed gave them (NULL = none)
    feed_updated INTEGER,
    summary TEXT NOT NULL,
    content_html TEXT NOT NULL,
    tags TEXT NOT NULL,          -- JSON list
    enclosures TEXT NOT NULL,    -- JSON list of [url, type, length]
    image TEXT NOT NULL,
    base_url TEXT NOT NULL,
    language TEXT NOT NULL,
    feed TEXT NOT NULL           -- JSON object (FeedMeta)
);
CREATE TABLE keys (
    source_url TEXT NOT NULL REFERENCES sources(url) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('guid', 'link', 'hash', 'repeated')),
    value TEXT NOT NULL,
    entry INTEGER REFERENCES entries(key) ON DELETE CASCADE,
    PRIMARY KEY (source_url, kind, value)
) WITHOUT ROWID;
CREATE INDEX keys_by_entry ON keys(entry);
"""


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


SAMPLES = {"guid-1": ["2026-03-01T11:00:00+00:00", "2026-03-01T11:05:00+00:00"]}


def make_v1(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO sources VALUES (?, ?)", (SOURCE, json.dumps({"etag": '"abc"', "tz_samples": SAMPLES})))
    published = _us(NOW - timedelta(hours=1))
    conn.execute(
        "INSERT INTO entries VALUES (1, 'urn:uuid:0f0e0d0c-0b0a-5908-8706-050403020100', ?, "
        "'https://finance.sina.example/a/1', 'r', 'c', 'm', ?, ?, ?, ?, 'published')",
        (SOURCE, published, published, published, published),
    )
    conn.execute(
        "INSERT INTO bodies VALUES (1, '新浪财经', 'guid-1', '央行宣布下调存款准备金率0.5个百分点', "
        "'https://finance.sina.example/a/1', '[]', NULL, NULL, '', '<p>正文</p>', ?, '[]', '', "
        "'https://finance.sina.example/', 'zh', ?)",
        (json.dumps(["财经"]), json.dumps({"title": "新浪财经", "link": "", "id": "", "updated": None, "language": "zh",
                     "ttl_s": None, "format": "rss20"}),),
    )
    conn.execute("INSERT INTO keys VALUES (?, 'guid', 'guid-1', 1)", (SOURCE,))
    conn.commit()
    conn.close()


def test_v1_file_is_migrated_and_keeps_its_articles(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    make_v1(path)
    with Store.open(path) as store:
        # v6 moved the date samples out of the state that every run reads
        assert store.source_states() == {SOURCE: {"etag": '"abc"'}}
        assert store.date_samples(SOURCE) == SAMPLES
        [article] = store.articles_for([SOURCE], now=NOW)
        assert article.id == "urn:uuid:0f0e0d0c-0b0a-5908-8706-050403020100"
        assert article.title == "央行宣布下调存款准备金率0.5个百分点" and article.tags == ("财经",)
        assert article.published == NOW - timedelta(hours=1)
        # the v2 title index was backfilled: a re-post under a new guid is recognised
        repost = replace(article, id="urn:x:repost", original_id="guid-2", link="https://finance.sina.example/a/2",
                         title="央行宣布下调存款准备金率 0.5 个百分点！", published=NOW)
        result = store.upsert_articles(SOURCE, [repost], NOW)
        assert (result.new, result.unchanged) == (0, 1)
        # and the v1 guid key still identifies the article
        assert store.upsert_articles(SOURCE, [replace(article, id="urn:x:other")], NOW).new == 0
        assert integrity_problems(store.path) == []
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION == 13
    indexes = {row[1] for row in conn.execute("SELECT type, name FROM sqlite_master WHERE type = 'index'")}
    assert "entries_by_source_window" in indexes and "entries_by_source_updated" not in indexes  # v7
    assert "entries_by_source_published" not in indexes  # v9
    assert conn.execute("SELECT count(*) FROM fingerprints").fetchone() == (0,)  # v3 table, empty
    # v12: filter decisions have a table, and an entry pruned before it says it does not know when
    assert conn.execute("SELECT count(*) FROM filtered").fetchone() == (0,)
    assert conn.execute("SELECT pruned_at FROM entries").fetchall() == [(None,)]
    # v13: every source is due now until its next fetch saves when it is next due
    assert conn.execute("SELECT due_at FROM sources").fetchall() == [(0,)] * conn.execute(
        "SELECT count(*) FROM sources").fetchone()[0]
    assert "sources_due" in indexes
    conn.close()


def test_fresh_file_gets_the_latest_schema(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    columns = {row[1] for row in conn.execute("PRAGMA table_info(entries)")}
    conn.close()
    assert "title_key" in columns


def test_v10_keeps_every_identity_of_a_source_until_its_feed_is_parsed_again(tmp_path: Path) -> None:
    """Issue 20: before v10 nothing recorded what a source's last fetch listed, so an upgraded file keeps
    every identity of a source (whatever its last_seen) until a parse of its feed says what it lists."""
    path = tmp_path / "state.db"
    make_v1(path)
    with Store.open(path) as store:
        [article] = store.articles_for([SOURCE], now=NOW)
        year = NOW + timedelta(days=365)
        store.prune(keep_days=30, now=year, active_source_urls=[SOURCE])  # a year of 304s: nothing parsed
        assert store.upsert_articles(SOURCE, [article], year).new == 0  # still known
        store.upsert_articles(SOURCE, [], year + timedelta(days=1))  # a listing without it
        store.prune(keep_days=30, now=year + timedelta(days=40), active_source_urls=[SOURCE])
        assert store.upsert_articles(SOURCE, [article], year + timedelta(days=41)).new == 1  # gone: new again
