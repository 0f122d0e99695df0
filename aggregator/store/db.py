"""Store, the state file's one entry point: fetch states and articles in and out; no fetching or rendering.

Opening, transactions and the lock: store.state_file."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from aggregator.model import Article, FilterDecision
from aggregator.store import retention
from aggregator.store.dedup import Hashes
from aggregator.store.filtered import FilteredMatch, find_filtered, record_filtered
from aggregator.store.lookup import StoredMatch, entry_shown_for_link, find_entries
from aggregator.store.opening import refuse_fresh
from aggregator.store.rows import BODY_COLUMNS, aware, body_values, select_in, to_micros
from aggregator.store.schema import DATE_SAMPLES
from aggregator.store.state_file import StateFile
from aggregator.store.upsert import (
    DEFAULT_BURST_THRESHOLD,
    LAST_SEEN_STEP,
    NO_CAPS,
    Caps,
    UpsertResult,
    apply_upsert,
)
from aggregator.store.windows import (
    FeedRow,
    read_articles,
    read_feed_rows,
    read_headlines,
    read_rows_by_key,
)
from aggregator.text import title_key

__all__ = ["FeedRow", "Store", "refuse_fresh"]  # what other packages import from here
_DAY_US = 86400 * 1_000_000


class Store(StateFile):
    """The state database. Open with :meth:`open`; one instance per process holds the run lock."""

    # --- source state -----------------------------------------------------------------

    def source_states(self, urls: Collection[str] | None = None) -> dict[str, dict[str, object]]:
        """Every source's fetch state (or only these URLs'), without its date samples (read per source:
        date_samples)."""
        with self._guard():
            if urls is None:
                rows = self._conn.execute("SELECT url, state FROM sources ORDER BY url").fetchall()
            else:
                rows = select_in(self._conn, "SELECT url, state FROM sources WHERE url IN ({})", sorted(urls))
        return {url: json.loads(state) for url, state in rows}

    def has_sources(self) -> bool:
        """Whether any source's state was ever saved (what tells a state in use from a new one)."""
        with self._guard():
            return self._conn.execute("SELECT 1 FROM sources LIMIT 1").fetchone() is not None

    def date_samples(self, source_url: str) -> dict[str, object]:
        """The source's remembered article dates (timezones.correct_dates): only a parsed body needs them."""
        with self._guard():
            row = self._conn.execute("SELECT date_samples FROM sources WHERE url = ?", (source_url,)).fetchone()
        samples = json.loads(row[0]) if row else {}
        return samples if isinstance(samples, dict) else {}

    def save_source_states(self, states: Mapping[str, Mapping[str, object]],
                           due_at: Mapping[str, int] | None = None) -> None:
        """Store each source's state, all in one transaction. A state's "tz_samples" (when given) go to
        their own column: they are most of its bytes, and a 304 neither reads nor rewrites them.
        due_at: when each source is next due (fetch.schedule.due_at_us; 0, "due now", when not given)."""
        due_at = due_at or {}
        light, heavy = [], []
        for url, state in states.items():
            text = json.dumps({k: v for k, v in state.items() if k != DATE_SAMPLES}, ensure_ascii=False,
                              sort_keys=True)
            if DATE_SAMPLES in state:
                heavy.append((url, text, due_at.get(url, 0),
                              json.dumps(state[DATE_SAMPLES], ensure_ascii=False, sort_keys=True)))
            else:
                light.append((url, text, due_at.get(url, 0)))
        with self._guard(), self._transaction():
            self._conn.executemany(
                "INSERT INTO sources (url, state, due_at, date_samples) VALUES (?, ?, ?, ?) ON CONFLICT (url) "
                "DO UPDATE SET state = excluded.state, due_at = excluded.due_at, "
                "date_samples = excluded.date_samples",
                heavy)
            self._conn.executemany(
                "INSERT INTO sources (url, state, due_at) VALUES (?, ?, ?) ON CONFLICT (url) "
                "DO UPDATE SET state = excluded.state, due_at = excluded.due_at", light)

    def due_source_states(self, now: datetime) -> tuple[dict[str, dict[str, object]], set[str]]:
        """The saved states of the sources due by `now` (as saved with their due_at), and the URLs of every
        source with a saved state (a source without one is due too): a worker's tick, without reading
        every state."""
        with self._guard():
            due = self._conn.execute("SELECT url, state FROM sources WHERE due_at <= ?",
                                     (to_micros(aware(now)),)).fetchall()
            known = {row[0] for row in self._conn.execute("SELECT url FROM sources")}
        return {url: json.loads(state) for url, state in due}, known

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

    def held_counts(self) -> dict[str, int]:
        """Articles held back by the burst breaker per source URL (for reports)."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT source_url, count(*) FROM entries WHERE status = 'held' GROUP BY source_url")
            return {url: count for url, count in rows}

    def first_seen_per_day(self, since: datetime) -> dict[str, dict[int, int]]:
        """Articles first seen from `since` on, per source URL and UTC day (days since 1970-01-01): what
        each source brought in, pruned articles included (their rows keep first_seen)."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT source_url, first_seen / ?, count(*) FROM entries WHERE first_seen >= ? GROUP BY 1, 2",
                (_DAY_US, to_micros(since)))
            counts: dict[str, dict[int, int]] = {}
            for url, day, count in rows:
                counts.setdefault(url, {})[int(day)] = count
            return counts

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
        self._conn.execute("INSERT INTO sources (url) VALUES (?) ON CONFLICT DO NOTHING", (source_url,))
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
                     now: datetime, per_source: int = 0) -> list[Article]:
        """Published articles of these sources, newest `updated` first (then `published`, then id).

        The same canonical link from several sources appears once: the article first seen
        (the source URL breaks a tie). `max_age_s` > 0 drops articles updated longer ago; `limit` > 0
        keeps the newest that many; `per_source` > 0 keeps at most that many of one source (its newest)
        before `limit` applies (output.max_per_source).
        """
        return self.articles_of(self.feed_rows(source_urls, limit=limit, max_age_s=max_age_s, now=now,
                                               per_source=per_source))

    def feed_rows(self, source_urls: Collection[str], *, limit: int = 0, max_age_s: float = 0,
                  now: datetime, per_source: int = 0) -> list[FeedRow]:
        """What articles_for would give, as entry rows (no bodies read): enough to tell whether a feed
        changed (FeedRow.raw_hash covers every stored field but the dates, which the row has too)."""
        urls = sorted(set(source_urls))
        if not urls:
            return []
        cutoff = to_micros(aware(now) - timedelta(seconds=max_age_s)) if max_age_s > 0 else None
        with self._guard():
            return read_feed_rows(self._conn, urls, limit, cutoff, per_source)

    def rows_by_key(self, keys: Sequence[int]) -> list[FeedRow]:
        """The entry rows of these keys (FeedRow.key), in the order given; missing ones left out."""
        with self._guard():
            return read_rows_by_key(self._conn, keys)

    def articles_of(self, rows: Sequence[FeedRow]) -> list[Article]:
        """The articles of feed_rows' rows, in their order."""
        with self._guard():
            return read_articles(self._conn, rows)

    def headlines_of(self, rows: Sequence[FeedRow]) -> list[Article]:
        """Articles of feed_rows' rows with only what a listing shows: ids, dates, title, link and
        source name (summary and content only where the title is empty, as a title derives from them).
        For feeds that are not rendered again, whose articles only count, sort and head a list."""
        with self._guard():
            return read_headlines(self._conn, rows)

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
            self._conn.executemany("INSERT INTO keys VALUES (?, 'hash', ?, ?) ON CONFLICT DO NOTHING",
                                   [(source, hashes[1], key) for _article, hashes, key, source in found])

    # --- what happened to an article (`aggregator why`) ---------------------------------

    def record_filtered(self, source_url: str, decisions: Sequence[FilterDecision], now: datetime) -> None:
        """Remember the articles the filters dropped from this source's feed (store.filtered): no write for
        a decision already recorded, unless its rule changed or it was last seen LAST_SEEN_STEP ago."""
        with self._guard(), self._transaction():
            record_filtered(self._conn, source_url, decisions, aware(now))

    def find_article(self, query: str) -> tuple[list[StoredMatch], list[FilteredMatch]]:
        """The stored entries and recorded filter decisions whose id, guid or canonical link is `query`."""
        query = query.strip()
        with self._guard():
            return find_entries(self._conn, query), find_filtered(self._conn, query)

    def entry_shown_for_link(self, link_key: str, source_urls: Collection[str]) -> int | None:
        """The key of the entry a feed of these sources shows for this canonical link (the copy first seen)."""
        with self._guard():
            return entry_shown_for_link(self._conn, link_key, sorted(source_urls))

    # --- retention --------------------------------------------------------------------

    def prune(self, *, keep_days: float, now: datetime, active_source_urls: Collection[str],
              keep_ids: Collection[str] = ()) -> int:
        """Remove what retention no longer needs (articles a feed shows now, `keep_ids`, keep their
        body); return the number of rows removed. The rules: store.retention.prune."""
        with self._guard(), self._transaction():
            return retention.prune(self._conn, keep_days=keep_days, now=aware(now),
                                   active_source_urls=active_source_urls, keep_ids=keep_ids)
