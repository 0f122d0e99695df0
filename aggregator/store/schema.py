"""The state file's schema and its forward migrations (PRAGMA user_version); no article logic.

Tables:
  sources   one row per source URL: the fetch stage's state as JSON, and apart from it the
            dates of its recent articles as first seen (date_samples, JSON; timezones.correct_dates).
  entries   one row per article ever stored: its stable id, identity hashes, dates, status.
            A pruned article keeps this row (status 'pruned') so it is still recognised.
  bodies    what a reader sees (title, link, content, ...); deleted by prune.
  fingerprints  (source, hash of an item as parsed, or of its raw XML: parse/known.py): items already
                processed, skipped next time; `entry` is the article the item stands for (v10).
  (sources.listed_at: when the source's feed was last parsed, i.e. when its current listing was read.)
  counters  'generation': bumped with every write that changes what a feed shows.
  (entries.needs_cleaning: stored as the feed gave it, cleaned before any output reads it.)
  keys      (source, kind, value) -> entry: the guids, canonical links and content hashes an
            article is recognised by. kind 'repeated' (entry NULL) marks a guid never to trust.
  filtered  (source, article id) -> the rule that dropped it, with its guid, link and title (v12), for
            `aggregator why`; pruned like fingerprints. (entries.pruned_at: when prune took its body.)
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from aggregator.store.connection import Connection
from aggregator.text import title_key

DATE_SAMPLES = "tz_samples"  # the state key stored in sources.date_samples

APPLICATION_ID = 0x41475254  # "AGRT": marks a file as ours, so a foreign SQLite file is refused

_V1 = """
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

# v2: the near-duplicate title rule (issue 6) needs each article's normalized title, indexed.
_V2 = """
ALTER TABLE entries ADD COLUMN title_key TEXT NOT NULL DEFAULT '';
CREATE INDEX entries_by_title ON entries(source_url, title_key) WHERE title_key != '';
"""


_V3 = """
CREATE TABLE fingerprints (
    source_url TEXT NOT NULL REFERENCES sources(url) ON DELETE CASCADE,
    value TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (source_url, value)
) WITHOUT ROWID;
"""


_V4 = """
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters (name, value) VALUES ('generation', 0);
"""


# v5: articles stored before cleaning (a first run's deep backlog) are marked, to be cleaned before output.
_V5 = """
ALTER TABLE entries ADD COLUMN needs_cleaning INTEGER NOT NULL DEFAULT 0;
CREATE INDEX entries_needing_cleaning ON entries(key) WHERE needs_cleaning = 1;
"""


# v6: date samples move out of the state JSON, which every run reads and rewrites for every source.
def _v6(conn: Connection) -> None:
    conn.execute("ALTER TABLE sources ADD COLUMN date_samples TEXT NOT NULL DEFAULT '{}'")
    for url, text in conn.execute("SELECT url, state FROM sources").fetchall():
        state = json.loads(text)
        if isinstance(state, dict) and DATE_SAMPLES in state:
            samples = state.pop(DATE_SAMPLES)
            conn.execute("UPDATE sources SET state = ?, date_samples = ? WHERE url = ?",
                         (json.dumps(state, ensure_ascii=False, sort_keys=True),
                          json.dumps(samples, ensure_ascii=False, sort_keys=True), url))


# v7: a feed's window (the newest entries of its sources) is sorted and cut on this index alone; only
# the window's rows are then read (the v1 index, a prefix of this one, had every row of the sources read).
_V7 = """
DROP INDEX entries_by_source_updated;
CREATE INDEX entries_by_source_window ON entries(source_url, status, updated, published, id);
"""


# v8: a version per source, changed with any write to the entry rows its feeds are made of (Store
# bumps it in the same transaction); publishing leaves a feed whose sources all kept theirs unread.
# Not triggers: any trigger on entries, even an empty one, doubled the cost of a cold start's inserts.
_V8 = """
CREATE TABLE source_versions (source_url TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
"""


# v9: the window index (v7) serves the per-source count and newest date too; one index fewer to
# update per insert (a cold start inserts ~58,000 entries).
_V9 = """
DROP INDEX IF EXISTS entries_by_source_published;
"""


# v10 (issue 20): an article keeps its identity while its source's last successful fetch listed it,
# however that fetch was answered. A parse refreshes last_seen of every article it lists, the items the
# fast path skipped included (found through fingerprints.entry), and stamps sources.listed_at; a 304 or
# an unchanged body lists what the last parse listed, so it writes nothing. Prune then keeps every
# identity seen at (or within LAST_SEEN_STEP before) its source's listed_at. Fingerprints from before
# have no entry: they are dropped, so each source's next changed feed is parsed whole once and records
# them; listed_at 0 (never listed since) keeps every identity of the source until then.
def _v10(conn: Connection) -> None:
    conn.execute("ALTER TABLE sources ADD COLUMN listed_at INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE fingerprints ADD COLUMN entry INTEGER")
    conn.execute("DELETE FROM fingerprints")


def _backfill_title_keys(conn: Connection) -> None:
    rows = conn.execute("SELECT entry, title FROM bodies").fetchall()
    conn.executemany("UPDATE entries SET title_key = ? WHERE key = ?", [(title_key(t), k) for k, t in rows])


def _script(sql: str) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)

    return run


def _v2(conn: Connection) -> None:
    _script(_V2)(conn)
    _backfill_title_keys(conn)


# v11: the "unread feeds" publish layer is gone (issue 21: it saved 2 % of a steady publish), and with it
# the per-source versions every write had to bump.
_V11 = "DROP TABLE IF EXISTS source_versions"


# v12 (issue 22, `aggregator why`): what the filters dropped is remembered, once per article and source (a
# changed feed lists a dropped item again: the row is rewritten only when its rule changed or, like
# last_seen, every LAST_SEEN_STEP), and when prune took an entry's body (NULL: before v12, unknown).
# Lookups scan it (no index beyond the key): `why` is asked by hand, the writes come with every run.
_V12 = """
CREATE TABLE filtered (
    source_url TEXT NOT NULL REFERENCES sources(url) ON DELETE CASCADE,
    id TEXT NOT NULL,
    original_id TEXT NOT NULL,
    link_key TEXT NOT NULL,
    link TEXT NOT NULL,
    title TEXT NOT NULL,
    rule TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (source_url, id)
);
ALTER TABLE entries ADD COLUMN pruned_at INTEGER
"""


# v13 (issue 23, workers): when each source is next due (microseconds, as fetch.schedule.due_at_us: the
# moment is_due first says "due"), written with its state, so a worker's tick reads the due sources only,
# not every state (100,000 of them: ~2 s a tick). 0, the default of rows from before, is "due now": the
# first tick after the upgrade enqueues them all, each job finds most not due and saves their due_at.
_V13 = """
ALTER TABLE sources ADD COLUMN due_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sources_due ON sources(due_at)
"""


# MIGRATIONS[n] brings a database from user_version n to n + 1. Never edit a released step.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _script(_V1), _v2, _script(_V3), _script(_V4), _script(_V5), _v6, _script(_V7), _script(_V8),
    _script(_V9), _v10, _script(_V11), _script(_V12), _script(_V13))
VERSION = len(MIGRATIONS)


def _set_user_version(conn: Connection, version: int) -> None:
    conn.execute(f"PRAGMA user_version = {version}")


def migrate(conn: Connection, current: int,
            record: Callable[[Connection, int], None] = _set_user_version) -> None:
    """Apply every step after `current`, each with its version bump (`record`: SQLite's user_version, or
    store.postgres's table) in the caller's transaction."""
    for version in range(current, VERSION):
        MIGRATIONS[version](conn)
        record(conn, version + 1)


@dataclass(frozen=True)
class Blueprint:
    """The schema at VERSION as the migrations build it: every CREATE statement in creation order, each
    table's columns, and the rows the migrations seed. A new PostgreSQL database is created from it
    (store.postgres) and migrate-state copies its tables (store.transfer): a new table is one migration
    step, and nothing else to change."""

    statements: tuple[str, ...]
    columns: Mapping[str, tuple[str, ...]]  # table -> its columns, tables in creation order
    keys: Mapping[str, tuple[str, ...]]  # table -> its primary key's columns
    seeded: Mapping[str, tuple[tuple[object, ...], ...]]


@lru_cache(maxsize=1)
def blueprint() -> Blueprint:
    with contextlib.closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        migrate(conn, 0)
        master = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")
        rows = master.fetchall()
        tables = [name for kind, name, _sql in rows if kind == "table"]
        info = {t: conn.execute(f"PRAGMA table_info({t})").fetchall() for t in tables}  # (cid, name, .., pk)
        columns = {t: tuple(c[1] for c in rows) for t, rows in info.items()}
        keys = {t: tuple(c[1] for c in sorted((c for c in rows if c[5]), key=lambda c: c[5])) for t, rows in info.items()}
        seeded = {t: tuple(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    return Blueprint(tuple(sql for _kind, _name, sql in rows), columns, keys,
                     {t: rows for t, rows in seeded.items() if rows})
