"""The SQLite state file: sources' fetch state and every article ever stored; must not fetch or render.

Durability: WAL with ``synchronous=NORMAL``. A process crash (kill -9) cannot lose or tear a
committed transaction in WAL mode at NORMAL; only a power cut can drop the last few commits
(never corrupt the file). FULL would add an fsync per source (1,000 per run); instead the
pipeline calls :meth:`Store.sync` once before publishing, so every entry written to a feed
file is on disk first.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import quote

from aggregator.errors import StateError
from aggregator.model import Article
from aggregator.store import schema
from aggregator.store.dedup import Hashes, title_key
from aggregator.store.lock import RunLock
from aggregator.store.rows import (
    BODY_COLUMNS,
    article_from_row,
    aware,
    body_values,
    headline_from_row,
    select_in,
    to_micros,
)
from aggregator.store.schema import DATE_SAMPLES
from aggregator.store.upsert import (
    DEFAULT_BURST_THRESHOLD,
    LAST_SEEN_STEP,
    NO_CAPS,
    Caps,
    UpsertResult,
    apply_upsert,
)

MIN_IDENTITY_KEEP = timedelta(days=1)  # > upsert.LAST_SEEN_STEP: an identity in a feed is never pruned


class Store:
    """The state database. Open with :meth:`open`; one instance per process holds the run lock."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: RunLock | None) -> None:
        self.path = path
        self._conn = conn
        self._lock = lock
        self._batch_s = 0.0  # > 0 inside batched(): units of work share transactions this long
        self._batch_started = 0.0

    # --- opening and closing ----------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, lock_timeout_s: float = 30.0, earlier_runs: str = "") -> Store:
        """Lock, open (creating folder and schema) and migrate the state file at `path`.

        earlier_runs: a file that shows runs happened before (see refuse_fresh); then a missing or empty
        state file, or one no run ever wrote a source to, is refused rather than started afresh."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"state {path}: cannot create its folder: {exc}") from exc
        lock = RunLock.acquire(path.with_name(path.name + ".lock"), lock_timeout_s, what=f"state {path}")
        try:
            refuse_fresh(path, earlier_runs)
            return cls(path, _connect(path), lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open_read_only(cls, path: str | Path) -> Store:
        """For reports (`sources`): no lock, no migration, nothing written; works in a read-only folder.

        Raises StateError when the file is missing or unreadable."""
        path = Path(path)
        if not path.is_file():
            raise StateError(f"state {path}: no such file (no run has stored anything yet)")
        return cls(path, _connect_read_only(path), None)

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def sync(self) -> None:
        """Make every committed write durable (checkpoint the WAL with fsync); call before publishing."""
        with self._guard():
            self._conn.execute("PRAGMA wal_checkpoint(FULL)")

    # --- source state -----------------------------------------------------------------

    def source_states(self) -> dict[str, dict[str, object]]:
        """Every source's fetch state, without its date samples (read per source: date_samples)."""
        with self._guard():
            rows = self._conn.execute("SELECT url, state FROM sources ORDER BY url").fetchall()
        return {url: json.loads(state) for url, state in rows}

    def date_samples(self, source_url: str) -> dict[str, object]:
        """The source's remembered article dates (enrich.correct_dates): only a parsed body needs them."""
        with self._guard():
            row = self._conn.execute("SELECT date_samples FROM sources WHERE url = ?", (source_url,)).fetchone()
        samples = json.loads(row[0]) if row else {}
        return samples if isinstance(samples, dict) else {}

    def save_source_states(self, states: Mapping[str, Mapping[str, object]]) -> None:
        """Store each source's state, all in one transaction. A state's "tz_samples" (when given) go to
        their own column: they are most of its bytes, and a 304 neither reads nor rewrites them."""
        light, heavy = [], []
        for url, state in states.items():
            text = json.dumps({k: v for k, v in state.items() if k != DATE_SAMPLES}, ensure_ascii=False,
                              sort_keys=True)
            if DATE_SAMPLES in state:
                heavy.append((url, text, json.dumps(state[DATE_SAMPLES], ensure_ascii=False, sort_keys=True)))
            else:
                light.append((url, text))
        with self._guard(), self._transaction():
            self._conn.executemany(
                "INSERT INTO sources (url, state, date_samples) VALUES (?, ?, ?) ON CONFLICT (url) "
                "DO UPDATE SET state = excluded.state, date_samples = excluded.date_samples", heavy)
            self._conn.executemany(
                "INSERT INTO sources (url, state) VALUES (?, ?) ON CONFLICT (url) DO UPDATE SET state = excluded.state",
                light)

    # --- articles in ------------------------------------------------------------------

    def upsert_articles(self, source_url: str, articles: Sequence[Article], now: datetime, *,
                        burst_threshold: int = DEFAULT_BURST_THRESHOLD,
                        accept_burst: bool = False, seen_fingerprints: Collection[str] = (),
                        hashes: Mapping[str, Hashes] | None = None, caps: Caps = NO_CAPS,
                        listing: bool = True) -> UpsertResult:
        """Store one source's current articles in one transaction (identity rules: store.dedup).

        Known articles are compared by hash: unchanged ones cost no write; a real change of
        title or content is stored in place with `updated` moved to the feed's newer date or
        `now`; a change of link/enclosures/tags is stored without moving `updated`. New
        articles get missing dates filled with `now` (their first-seen time, stored). When a
        source that already has articles presents more than `burst_threshold` new ones dated
        before its newest stored article, those are stored as held, not published, unless
        `accept_burst` (which also releases the source's earlier held articles).

        Fingerprints: every article's `fingerprint` is remembered, and `seen_fingerprints` (items
        the caller skipped because :meth:`known_fingerprints` had them) are marked as still seen.
        hashes: dedup.article_hashes of articles by fingerprint, when the caller computed them.
        caps: at most this many new articles per call and in all for the source (upsert.Caps).

        listing: `articles` and `seen_fingerprints` are everything the source's feed lists now (a
        parse); every article listed is marked seen, and the source's listed_at is now, so prune keeps
        these identities for as long as no later parse leaves them out (issue 20). False for a call
        that only releases a held burst (nothing was parsed: the last listing stands).
        """
        now = aware(now)
        with self._guard(), self._transaction():
            result = apply_upsert(self._conn, source_url, articles, now, burst_threshold, accept_burst, hashes,
                                  caps)
            if result.new or result.updated:
                self._conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'generation'")
            if result.rows_changed:
                self._bump_versions([source_url])
            self._remember_fingerprints(source_url, result.entry_of,
                                        [a.fingerprint for a in articles
                                         if a.fingerprint and a.fingerprint not in result.capped],
                                        seen_fingerprints, now)
            if listing:  # refreshed as rarely as last_seen: an older listed_at only keeps identities longer
                now_us = to_micros(now)
                self._conn.execute("UPDATE sources SET listed_at = ? WHERE url = ? AND listed_at < ?",
                                   (now_us, source_url, now_us - LAST_SEEN_STEP // timedelta(microseconds=1)))
        if seen_fingerprints:
            result = replace(result, unchanged=result.unchanged + len(seen_fingerprints))
        return result

    def generation(self) -> int:
        """A number that changes, in the same transaction, whenever stored articles change what a
        feed shows: publishing can be skipped while it and the config stay the same."""
        with self._guard():
            return int(self._conn.execute("SELECT value FROM counters WHERE name = 'generation'").fetchone()[0])

    def article_counts(self) -> dict[str, int]:
        """Published articles per source URL (one cheap query, for reports)."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT source_url, count(*) FROM entries WHERE status = 'published' GROUP BY source_url")
            return {url: count for url, count in rows}

    def has_articles(self, source_url: str) -> bool:
        """Whether anything was ever stored for this source (pruned identities count)."""
        with self._guard():
            row = self._conn.execute("SELECT 1 FROM entries WHERE source_url = ? LIMIT 1", (source_url,)).fetchone()
            return row is not None

    def known_fingerprints(self, source_url: str) -> frozenset[str]:
        """Fingerprints of this source's items that were already processed."""
        with self._guard():
            rows = self._conn.execute("SELECT value FROM fingerprints WHERE source_url = ?", (source_url,))
            return frozenset(r[0] for r in rows)

    def _remember_fingerprints(self, source_url: str, entry_of: Mapping[str, int], fresh: Sequence[str],
                               seen: Collection[str], now: datetime) -> None:
        """Remember the fingerprints of the items just stored (with the entry each stands for), and mark
        the items the fast path skipped as seen: their fingerprints and, through fingerprints.entry,
        their entries, which prune keeps while the source's last listing holds them (issue 20)."""
        now_us = to_micros(now)
        self._conn.execute("INSERT OR IGNORE INTO sources (url) VALUES (?)", (source_url,))
        self._conn.executemany(
            "INSERT INTO fingerprints (source_url, value, last_seen, entry) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (source_url, value) DO UPDATE SET last_seen = excluded.last_seen, entry = excluded.entry",
            [(source_url, value, now_us, entry_of.get(value)) for value in fresh])
        # refresh rarely (as entries' last_seen): an unchanged run should write next to nothing
        stale = now_us - LAST_SEEN_STEP // timedelta(microseconds=1)
        self._conn.executemany(
            "UPDATE fingerprints SET last_seen = ? WHERE source_url = ? AND value = ? AND last_seen < ?",
            [(now_us, source_url, value, stale) for value in seen])
        # one statement per chunk of skipped items, touching only entries not seen for LAST_SEEN_STEP
        # (a changed feed of ~60 items: at most one write per entry every 6 hours)
        select_in(self._conn, "UPDATE entries SET last_seen = ? WHERE last_seen < ? AND key IN "
                  "(SELECT entry FROM fingerprints WHERE source_url = ? AND value IN ({}))",
                  sorted(seen), prefix=(now_us, stale, source_url))

    # --- articles out -----------------------------------------------------------------

    def articles_for(self, source_urls: Collection[str], *, limit: int = 0, max_age_s: float = 0,
                     now: datetime) -> list[Article]:
        """Published articles of these sources, newest `updated` first (then `published`, then id).

        The same canonical link from several sources appears once: the article first seen
        (the source URL breaks a tie). `max_age_s` > 0 drops articles updated longer ago; `limit` > 0
        keeps the newest that many.
        """
        return self.articles_of(self.feed_rows(source_urls, limit=limit, max_age_s=max_age_s, now=now))

    def feed_rows(self, source_urls: Collection[str], *, limit: int = 0, max_age_s: float = 0,
                  now: datetime) -> list[FeedRow]:
        """What articles_for would give, as entry rows (no bodies read): enough to tell whether a feed
        changed (FeedRow.raw_hash covers every stored field but the dates, which the row has too)."""
        urls = sorted(set(source_urls))
        if not urls:
            return []
        cutoff = to_micros(aware(now) - timedelta(seconds=max_age_s)) if max_age_s > 0 else None
        with self._guard():
            rows = self._newest(urls, limit, cutoff) if limit > 0 else self._all_newest_first(urls, cutoff)
        return [FeedRow(*r) for r in rows]

    def source_versions(self) -> dict[str, int]:
        """Each source's version (schema v8): a random number changed, in the same transaction, by every
        write to the entry rows feed_rows reads (_bump_versions: upsert, save_cleaned, prune). Same
        versions of a feed's sources, same feed_rows. A source never written has none."""
        with self._guard():
            return dict(self._conn.execute("SELECT source_url, version FROM source_versions").fetchall())

    def _bump_versions(self, source_urls: Iterable[str]) -> None:
        """Inside the writer's transaction: these sources' entry rows changed."""
        self._conn.executemany("INSERT OR REPLACE INTO source_versions (source_url, version) VALUES (?, random())",
                               [(url,) for url in set(source_urls)])

    def rows_by_key(self, keys: Sequence[int]) -> list[FeedRow]:
        """The entry rows of these keys (FeedRow.key), in the order given; missing ones left out."""
        with self._guard():
            rows = {r[0]: r for r in select_in(self._conn, _ROWS_BY_KEY_SQL, list(keys))}
        return [FeedRow(*rows[k]) for k in keys if k in rows]

    def articles_of(self, rows: Sequence[FeedRow]) -> list[Article]:
        """The articles of feed_rows' rows, in their order."""
        with self._guard():
            bodies = {b[0]: b[1:] for b in select_in(
                self._conn, f"SELECT entry, {', '.join(BODY_COLUMNS)} FROM bodies WHERE entry IN ({{}})",
                [r.key for r in rows])}
        return [article_from_row(r.id, r.source_url, r.published, r.updated, bodies[r.key],
                                 needs_cleaning=bool(r.needs_cleaning)) for r in rows]

    def headlines_of(self, rows: Sequence[FeedRow]) -> list[Article]:
        """Articles of feed_rows' rows with only what a listing shows: ids, dates, title, link and
        source name (summary and content only where the title is empty, as a title derives from them).
        For feeds that are not rendered again, whose articles only count, sort and head a list."""
        with self._guard():
            heads = {h[0]: h[1:] for h in select_in(
                self._conn, "SELECT entry, source_name, title, link, CASE WHEN title = '' THEN summary ELSE '' END, "
                "CASE WHEN title = '' THEN content_html ELSE '' END FROM bodies WHERE entry IN ({})",
                [r.key for r in rows])}
        return [headline_from_row(r.id, r.source_url, r.published, r.updated, heads[r.key]) for r in rows]

    def _all_newest_first(self, urls: Sequence[str], cutoff: int | None) -> list[tuple[Any, ...]]:
        rows = select_in(self._conn, _ROWS_SQL, urls)
        rows.sort(key=_newest_first)
        rows = _drop_cross_source_duplicates(rows)
        return [r for r in rows if r[6] >= cutoff] if cutoff is not None else rows

    def _newest(self, urls: Sequence[str], limit: int, cutoff: int | None) -> list[tuple[Any, ...]]:
        """The newest `limit` rows, as _all_newest_first would give, reading only a window of rows
        (SQLite sorts and cuts): a feed shows 50 of a category's thousands (issue 8: steady runs)."""
        window = limit * 2 + 10
        while True:
            # keys first, sorted and cut on the covering index (entries_by_source_window), then their rows
            sql = (_WINDOW_SQL + (" AND updated >= ?" if cutoff is not None else "")
                   + f" ORDER BY updated DESC, published DESC, id LIMIT {window}")
            keys = [k for (k,) in select_in(self._conn, sql, urls, suffix=(cutoff,) if cutoff is not None else ())]
            rows = select_in(self._conn, _ROWS_BY_KEY_SQL, keys)
            rows.sort(key=_newest_first)
            more = len(rows) >= window  # a chunk of sources may hold more beyond its window
            rows = rows[:window]
            kept = self._first_seen_copies(rows, urls)
            if len(kept) >= limit or not more:
                return kept[:limit]
            window *= 4

    def _first_seen_copies(self, rows: list[tuple[Any, ...]], urls: Sequence[str]) -> list[tuple[Any, ...]]:
        """rows without the copies of a link that another of these sources saw first (among all
        their published articles, dates aside: as _drop_cross_source_duplicates over every row)."""
        links = sorted({r[3] for r in rows if r[3]})
        if not links:
            return rows
        wanted = set(urls)
        copies = select_in(self._conn, "SELECT key, source_url, link_key, first_seen FROM entries "
                           "WHERE status = 'published' AND link_key != '' AND link_key IN ({})", links)  # partial index
        first = _first_seen_sources(c for c in copies if c[1] in wanted)
        return [r for r in rows if not r[3] or first[r[3]] == r[2]]

    def save_cleaned(self, cleaned: Sequence[tuple[Article, Hashes]]) -> None:
        """Store the cleaned versions of articles stored uncleaned (matched by id), each with its
        article_hashes (computed where it was cleaned). Not a change of what any feed shows (outputs
        only ever read cleaned articles), so the generation stays."""
        sets = ", ".join(f"{c} = ?" for c in BODY_COLUMNS)
        with self._guard(), self._transaction():
            rows = select_in(self._conn, "SELECT id, key, source_url FROM entries WHERE id IN ({})",
                             [article.id for article, _hashes in cleaned])
            stored = {row[0]: (row[1], row[2]) for row in rows}
            found = [(article, hashes, *stored[article.id]) for article, hashes in cleaned if article.id in stored]
            self._conn.executemany(
                "UPDATE entries SET raw_hash = ?, content_hash = ?, meta_hash = ?, title_key = ?, "
                "needs_cleaning = 0 WHERE key = ?",
                [(*hashes, title_key(article.title), key) for article, hashes, key, _source in found])
            self._conn.executemany(f"UPDATE bodies SET {sets} WHERE entry = ?",
                                   [(*body_values(article), key) for article, _hashes, key, _source in found])
            # the cleaned content identifies it from now on too (a guid-less article is known by it)
            self._conn.executemany("INSERT OR IGNORE INTO keys VALUES (?, 'hash', ?, ?)",
                                   [(source, hashes[1], key) for _article, hashes, key, source in found])
            self._bump_versions(source for _article, _hashes, _key, source in found)

    # --- retention --------------------------------------------------------------------

    def prune(self, *, keep_days: float, now: datetime, active_source_urls: Collection[str],
              keep_ids: Collection[str] = ()) -> int:
        """Remove what retention no longer needs; return the number of rows removed.

        `keep_ids`: articles a feed shows right now (within its max_entries); they keep their
        body whatever their age, so a quiet source's last entries never vanish from its feed.

        Articles whose `updated` is older than `keep_days` lose their body (they are no longer
        published) but keep their identity (ids, links, hashes), so they never come back as new
        while a feed still lists them. An identity (and an item's fingerprint) goes only once its
        article has been pruned, was last seen longer than `keep_days` (at least a day) ago, and its
        source's last listing (the last parse of its feed: upsert_articles) left it out. A source that
        answers 304, sends the same bytes, fails or goes quiet for a year keeps the identities of all
        it listed last (issue 20); a source no longer configured loses that protection, and keeps its
        state until all of its articles are gone.
        """
        now = aware(now)
        cut = to_micros(now - timedelta(days=keep_days))
        identity_cut = to_micros(now - max(timedelta(days=keep_days), MIN_IDENTITY_KEEP))
        step = LAST_SEEN_STEP // timedelta(microseconds=1)
        conn = self._conn
        with self._guard(), self._transaction():
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS keep_ids (id TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM keep_ids")
            conn.executemany("INSERT OR IGNORE INTO keep_ids VALUES (?)", [(i,) for i in keep_ids])
            old = "status != 'pruned' AND updated < ? AND id NOT IN (SELECT id FROM keep_ids)"
            # pruned rows leave every window (deleting them later changes none)
            self._bump_versions(r[0] for r in conn.execute(f"SELECT DISTINCT source_url FROM entries WHERE {old}",
                                                           (cut,)))
            removed = conn.execute(f"DELETE FROM bodies WHERE entry IN (SELECT key FROM entries WHERE {old})",
                                   (cut,)).rowcount
            conn.execute(f"UPDATE entries SET status = 'pruned' WHERE {old}", (cut,))
            conn.execute("DELETE FROM keep_ids")
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS active_sources (url TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM active_sources")
            conn.executemany("INSERT OR IGNORE INTO active_sources VALUES (?)", [(u,) for u in active_source_urls])
            # Not in the source's last listing: every article a parse lists is seen at it or, as last_seen
            # is refreshed at most every LAST_SEEN_STEP, within that step before it.
            unlisted = ("(last_seen < (SELECT listed_at FROM sources WHERE url = source_url) - ? "
                        "OR source_url NOT IN (SELECT url FROM active_sources))")
            gone = f"status = 'pruned' AND last_seen < ? AND {unlisted}"
            removed += conn.execute(f"DELETE FROM keys WHERE entry IN (SELECT key FROM entries WHERE {gone})",
                                    (identity_cut, step)).rowcount
            removed += conn.execute(f"DELETE FROM entries WHERE {gone}", (identity_cut, step)).rowcount
            removed += conn.execute(f"DELETE FROM fingerprints WHERE last_seen < ? AND {unlisted}",
                                    (identity_cut, step)).rowcount
            # an item whose article is gone is processed again if it comes back (entry keys are reused)
            removed += conn.execute("DELETE FROM fingerprints WHERE entry IS NOT NULL AND entry NOT IN "
                                    "(SELECT key FROM entries)").rowcount
            removed += self._drop_inactive_sources()
            conn.execute("DELETE FROM active_sources")
        return removed

    def _drop_inactive_sources(self) -> int:
        """Sources not in the temporary active_sources table and without entries left."""
        conn = self._conn
        empty = ("url NOT IN (SELECT url FROM active_sources) "
                 "AND url NOT IN (SELECT DISTINCT source_url FROM entries)")
        removed = conn.execute(
            f"DELETE FROM keys WHERE source_url IN (SELECT url FROM sources WHERE {empty})").rowcount
        return removed + conn.execute(f"DELETE FROM sources WHERE {empty}").rowcount

    # --- plumbing ---------------------------------------------------------------------

    @contextmanager
    def batched(self, seconds: float = 0.5) -> Iterator[None]:
        """Writes inside share one transaction per `seconds`: each unit (a source's articles, a batch of
        fetch states) is still all-or-nothing (a savepoint), but commits, which rewrite every index
        page a unit touched, happen a few times a second rather than per source. A run killed in
        between loses at most the last `seconds` of work, articles and fetch states together, so
        those sources are fetched again next time."""
        if self._batch_s:
            yield
            return
        with self._guard():
            self._conn.execute("BEGIN IMMEDIATE")
        self._batch_s, self._batch_started = seconds, time.monotonic()
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:  # a failed COMMIT or BEGIN between units may have ended it
                with self._guard():
                    self._conn.execute("ROLLBACK")
            raise
        finally:
            self._batch_s = 0.0
        with self._guard():
            self._conn.execute("COMMIT")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._batch_s:
            yield from self._savepoint()
            return
        # IMMEDIATE: take the write lock up front, so a transaction never fails halfway on SQLITE_BUSY.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _savepoint(self) -> Iterator[None]:
        self._conn.execute("SAVEPOINT unit")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO unit")
            self._conn.execute("RELEASE unit")
            raise
        self._conn.execute("RELEASE unit")
        if time.monotonic() - self._batch_started >= self._batch_s:
            self._conn.execute("COMMIT")
            self._conn.execute("BEGIN IMMEDIATE")
            self._batch_started = time.monotonic()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Database failures (corruption, full disk, I/O) become StateError naming the file."""
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # our bugs, not the file's
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state {self.path}: {exc}") from exc


def refuse_fresh(path: Path, earlier_runs: str) -> None:
    """Refuse a missing or zero-byte state file, or one no run ever wrote to, when `earlier_runs` names
    a file earlier runs left (issue 20): SQLite reads an empty file as a new database, and every article
    would be published again as new while the feeds drop all they showed. Truncated or foreign files
    are refused by _prepare; a new state on purpose is the caller's choice (`run --new-state`)."""
    if not earlier_runs:
        return
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        what = "missing"
    except OSError as exc:
        raise StateError(f"state {path}: cannot read: {exc.strerror or exc}") from exc
    else:
        what = "empty (0 bytes)" if not size else "never written by a run" if _never_written(path) else ""
    if what:
        raise StateError(_refusal(path, what, earlier_runs))


def _never_written(path: Path) -> bool:
    """Whether the file is a state database no run ever wrote a source to (created by another command
    after the state was lost, say); anything unreadable is left for _connect to judge."""
    try:
        with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
            if conn.execute("PRAGMA application_id").fetchone()[0] != schema.APPLICATION_ID:
                return False
            return conn.execute("SELECT 1 FROM sources LIMIT 1").fetchone() is None
    except sqlite3.Error:
        return False


def _refusal(path: Path, what: str, earlier_runs: str) -> str:
    return (f"state {path}: {what}, but {earlier_runs} shows earlier runs; refusing to start afresh (every "
            "article would be new again): restore the file from a backup, or run `aggregator run --new-state` "
            "to start over")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StateError(f"state {path}: cannot open: {exc}") from exc
    try:
        _prepare(conn, path)
    except sqlite3.OperationalError as exc:
        conn.close()
        if exc.sqlite_errorcode != sqlite3.SQLITE_FULL:
            raise _unusable(path, exc) from exc
        raise StateError(f"state {path}: disk full ({exc}); the file is intact: free some space") from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _unusable(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> StateError:
    return StateError(f"state {path}: not a usable SQLite database ({exc}); move it aside to start afresh "
                      "(its articles will be seen as new) or restore a backup")


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """mode=ro reads the WAL too but needs a writable folder for its -shm file; immutable=1 (the file
    is read as it is, WAL ignored: what a read-only folder can hold) is the fallback."""
    uri = "file:" + quote(str(path.resolve()))
    last: sqlite3.Error | None = None
    for query in ("?mode=ro", "?mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(uri + query, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            last = exc
            continue
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            conn.close()
            last = exc
            continue
        if app_id != schema.APPLICATION_ID or version != schema.VERSION:
            conn.close()
            raise StateError(f"state {path}: not readable without changing it (application_id {app_id:#x}, "
                             f"schema version {version}, this aggregator writes {schema.VERSION}); "
                             "run `aggregator run` once with write access")
        return conn
    raise StateError(f"state {path}: cannot open read-only: {last}")


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Check the file is ours (or empty), switch on WAL and foreign keys, migrate."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id != schema.APPLICATION_ID and (app_id or version or objects):
        raise StateError(
            f"state {path}: not an aggregator state file (a SQLite database of something else: "
            f"application_id {app_id:#x}, user_version {version}, {objects} schema objects); refusing to touch it"
        )
    if version > schema.VERSION:
        raise StateError(
            f"state {path}: schema version {version} is newer than this aggregator understands "
            f"({schema.VERSION}); upgrade aggregator"
        )
    conn.execute("PRAGMA busy_timeout = 10000")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StateError(f"state {path}: cannot switch to WAL journal mode (got {mode!r})")
    conn.execute("PRAGMA synchronous = NORMAL")
    # 8 MB of page cache (SQLite's default is 2 MB): a cold start inserts ~58,000 articles at random
    # places in the id, key and fingerprint indexes, and with 2 MB most inserts re-read their pages.
    # Measured on the N=1,000 farm: 2 MB -> 32 MB made a cold start 35 s -> 30 s; 8 MB is as fast
    # (30.7 vs 30.2-32.5 s, alternated) and the run's process peaks 27 MB lower.
    conn.execute("PRAGMA cache_size = -8192")
    conn.execute("PRAGMA foreign_keys = ON")
    if version < schema.VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
            schema.migrate(conn, version)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


class FeedRow(NamedTuple):
    """An entry as a feed lists it (_ROWS_SQL's columns, in order)."""

    key: int
    id: str
    source_url: str
    link_key: str
    first_seen: int
    published: int
    updated: int
    needs_cleaning: int
    raw_hash: str


_ROW_COLUMNS = "key, id, source_url, link_key, first_seen, published, updated, needs_cleaning, raw_hash"
_ROWS_SQL = f"SELECT {_ROW_COLUMNS} FROM entries WHERE status = 'published' AND source_url IN ({{}})"
_WINDOW_SQL = "SELECT key FROM entries WHERE status = 'published' AND source_url IN ({})"
_ROWS_BY_KEY_SQL = f"SELECT {_ROW_COLUMNS} FROM entries WHERE key IN ({{}})"


def _newest_first(row: tuple[Any, ...]) -> tuple[int, int, str]:
    return (-row[6], -row[5], row[1])


def _drop_cross_source_duplicates(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Keep one source per canonical link: the one whose article was seen first."""
    first = _first_seen_sources((r[0], r[2], r[3], r[4]) for r in rows if r[3])
    return [r for r in rows if not r[3] or first[r[3]] == r[2]]


def _first_seen_sources(copies: Iterable[tuple[int, str, str, int]]) -> dict[str, str]:
    """link -> the source that saw it first, from (key, source, link, first_seen) rows. Sources that first
    saw it in the same run (the same first_seen) tie: the source URL decides, not the order in which the
    run's workers happened to finish, so the same input always publishes the same copy."""
    first: dict[str, tuple[int, str]] = {}
    for _key, source, link, first_seen in copies:
        if link not in first or (first_seen, source) < first[link]:
            first[link] = (first_seen, source)
    return {link: source for link, (_seen, source) in first.items()}
