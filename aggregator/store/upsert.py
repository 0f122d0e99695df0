"""Writing one source's matched articles: compare, update, insert, cap, hold back (caller's transaction)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aggregator.store.connection import Connection
from aggregator.ids import derive_id
from aggregator.model import Article
from aggregator.store.dedup import (
    TITLE_KEY_MIN,
    Candidate,
    Hashes,
    article_date,
    is_near_duplicate,
    prepare_batch,
)
from aggregator.store.matching import StoredEntry, match_batch, plausible_date
from aggregator.store.rows import BODY_COLUMNS, body_values, from_micros, select_in, to_micros

DEFAULT_BURST_THRESHOLD = 20  # "new" articles with old dates from a known source before the breaker trips
LAST_SEEN_STEP = timedelta(hours=6)  # refresh last_seen this rarely, so unchanged runs write nothing


@dataclass(frozen=True)
class UpsertResult:
    """What one source's articles did to the store.

    new: articles stored and published for the first time (including held ones released);
    updated: real changes stored in place; unchanged: already known (also collapsed
    duplicates); held_back: articles held by the circuit breaker (not published).
    """

    new: int
    updated: int
    unchanged: int
    held_back: int
    warnings: tuple[str, ...]
    # fingerprints of new items left out by the per-source caps: not remembered, so seen again next time
    capped: frozenset[str] = field(default=frozenset(), compare=False)
    # item fingerprint -> the entry it stands for (Store keeps it with the fingerprint: issue 20)
    entry_of: Mapping[str, int] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Caps:
    """What one source may add to the state (issue 20: a feed of 30,000 fresh undated ids a fetch grew
    the state ~38 MB a fetch); 0 = no limit."""

    new_per_fetch: int = 0
    total: int = 0


NO_CAPS = Caps()


@dataclass
class _Tally:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    held_back: int = 0


class _Upsert:
    """One source's batch against the store, inside the caller's transaction."""

    def __init__(self, conn: Connection, source_url: str, now: datetime,
                 burst_threshold: int, accept_burst: bool, hashes: Mapping[str, Hashes] | None = None,
                 caps: Caps = NO_CAPS) -> None:
        self.conn = conn
        self.caps = caps
        self.capped: set[str] = set()
        self.hashes = hashes
        self.source_url = source_url
        self.now = now
        self.now_us = to_micros(now)
        self.burst_threshold = burst_threshold
        self.accept_burst = accept_burst
        self.tally = _Tally()
        self.warnings: list[str] = []
        self._reposts: dict[int, list[Candidate]] = {}  # id(kept candidate) -> its in-batch re-posts
        self.entry_of: dict[str, int] = {}

    def run(self, articles: Sequence[Article]) -> UpsertResult:
        self.conn.execute("INSERT INTO sources (url) VALUES (?) ON CONFLICT DO NOTHING", (self.source_url,))
        batch = prepare_batch(self.source_url, articles, self._repeated_guids(), self.hashes)
        self.warnings.extend(batch.warnings)
        self._remember_repeated(batch.repeated_guids)
        had_articles, newest = self._source_stats()
        matching = match_batch(self.conn, self.source_url, self.now, batch.candidates)
        matches = matching.entries
        fresh: list[Candidate] = []
        for i, (candidate, entry) in enumerate(zip(batch.candidates, matches)):
            if entry is None:
                fresh.append(candidate)
            else:
                self._update(candidate, entry, absorbed=i in matching.absorbed)
                self._map(candidate, entry.key)
        self._add_keys(batch.candidates, matches, matching.found)
        self._insert(fresh, had_articles, newest)
        if self.accept_burst:
            self._release_held()
        t = self.tally
        return UpsertResult(t.new, t.updated, t.unchanged, t.held_back, tuple(self.warnings),
                            frozenset(self.capped), self.entry_of)

    def _map(self, candidate: Candidate, key: int) -> None:
        if candidate.article.fingerprint:
            self.entry_of[candidate.article.fingerprint] = key

    # known articles -----------------------------------------------------------------------

    def _update(self, candidate: Candidate, entry: StoredEntry, *, absorbed: bool) -> None:
        """Compare a known article with its stored version; write only what really changed."""
        article = candidate.article
        if entry.status == "held":
            if not self.accept_burst:
                self.tally.held_back += 1
        elif entry.status == "pruned":
            self.tally.unchanged += 1
            self._touch(entry)
            return
        if absorbed:  # a re-post or alias of an article another candidate speaks for
            self._count(entry, unchanged=True)
            self._touch(entry)  # still in the feed: its identity must survive prune
            return
        digest = candidate.raw_hash
        if digest == entry.raw_hash or (article.needs_cleaning and not entry.needs_cleaning):
            self._count(entry, unchanged=True)  # an uncleaned copy never replaces a cleaned one
            self._touch(entry)
            return
        first_cleaning = bool(entry.needs_cleaning) and not article.needs_cleaning
        # a stored copy that was never cleaned: its hashes say nothing about a real change, and
        # replacing it with the cleaned one is no change a reader sees
        content = not first_cleaning and candidate.content_hash != entry.content_hash
        meta = first_cleaning or candidate.meta_hash != entry.meta_hash
        updated = self._bumped(article, entry) if content else entry.updated
        self.conn.execute(
            "UPDATE entries SET raw_hash = ?, content_hash = ?, meta_hash = ?, updated = ?, link_key = ?, "
            "title_key = ?, last_seen = ?, needs_cleaning = ? WHERE key = ?",
            (digest, candidate.content_hash, candidate.meta_hash, updated, candidate.link_key,
             candidate.title_key, self.now_us, int(article.needs_cleaning), entry.key),
        )
        if content or meta:
            sets = ", ".join(f"{c} = ?" for c in BODY_COLUMNS)
            self.conn.execute(f"UPDATE bodies SET {sets} WHERE entry = ?", (*body_values(article), entry.key))
        self._count(entry, unchanged=first_cleaning or not (content or meta))

    def _count(self, entry: StoredEntry, *, unchanged: bool) -> None:
        if entry.status != "published":
            return  # held ones are counted as held_back or, when released, as new
        if unchanged:
            self.tally.unchanged += 1
        else:
            self.tally.updated += 1

    def _bumped(self, article: Article, entry: StoredEntry) -> int:
        """The new `updated` of a real change: the feed's own newer date, else now."""
        feed_date = plausible_date(article.updated, self.now)
        if feed_date is not None and to_micros(feed_date) > entry.updated:
            return to_micros(feed_date)
        return max(self.now_us, entry.updated)

    def _touch(self, entry: StoredEntry) -> None:
        if entry.last_seen < self.now_us - LAST_SEEN_STEP // timedelta(microseconds=1):
            self.conn.execute("UPDATE entries SET last_seen = ? WHERE key = ?", (self.now_us, entry.key))

    def _add_keys(self, candidates: Sequence[Candidate], matches: Sequence[StoredEntry | None],
                  found: set[tuple[str, str]]) -> None:
        rows = [
            (self.source_url, kind, value, entry.key)
            for c, entry in zip(candidates, matches)
            if entry is not None and entry.raw_hash != c.raw_hash  # same raw article: same keys, known
            for kind, value in c.identity_keys() if (kind, value) not in found
        ]
        self.conn.executemany("INSERT INTO keys VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)

    # new articles --------------------------------------------------------------------------

    def _insert(self, fresh: Sequence[Candidate], had_articles: bool, newest: int | None) -> None:
        fresh = self._cap(self._collapse_reposts(fresh))
        held = self._held(fresh, had_articles, newest)
        next_key = (self.conn.execute("SELECT max(key) FROM entries").fetchone()[0] or 0) + 1
        ids = self._assign_ids(fresh)
        entries: list[tuple[object, ...]] = []
        bodies: list[tuple[object, ...]] = []
        keys: list[tuple[str, str, str, int]] = []
        for offset, (c, entry_id) in enumerate(zip(fresh, ids)):
            key = next_key + offset
            published, updated = self._dates(c.article)
            status = "held" if id(c) in held else "published"
            entries.append((key, entry_id, self.source_url, c.link_key, c.raw_hash, c.content_hash,
                            c.meta_hash, self.now_us, self.now_us, published, updated, status,
                            c.title_key, int(c.article.needs_cleaning)))
            bodies.append((key, *body_values(c.article)))
            keys.extend((self.source_url, kind, value, key) for kind, value in c.identity_keys())
            keys.extend((self.source_url, kind, value, key) for r in self._reposts.get(id(c), [])
                        for kind, value in r.identity_keys())
            for listed in (c, *self._reposts.get(id(c), [])):
                self._map(listed, key)
        self.conn.executemany(
            "INSERT INTO entries (key, id, source_url, link_key, raw_hash, content_hash, meta_hash, first_seen, "
            "last_seen, published, updated, status, title_key, needs_cleaning) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            entries,
        )
        marks = ", ".join("?" * (len(BODY_COLUMNS) + 1))
        self.conn.executemany(f"INSERT INTO bodies (entry, {', '.join(BODY_COLUMNS)}) VALUES ({marks})", bodies)
        self.conn.executemany("INSERT INTO keys VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", keys)
        self.tally.new += len(fresh) - len(held)
        self.tally.held_back += len(held)

    def _cap(self, fresh: list[Candidate]) -> list[Candidate]:
        """The first new items in document order that the caps allow; the rest are not stored (and their
        fingerprints not remembered, so a later fetch with room stores them), with one warning."""
        room = self.caps.new_per_fetch or len(fresh)
        stored = 0
        if self.caps.total and fresh:
            stored = self.conn.execute("SELECT count(*) FROM entries WHERE source_url = ?",
                                       (self.source_url,)).fetchone()[0]
            room = min(room, max(0, self.caps.total - stored))
        if len(fresh) <= room:
            return fresh
        kept, cut = fresh[:room], fresh[room:]
        for c in cut:
            self.capped.update(r.article.fingerprint for r in [c, *self._reposts.pop(id(c), [])]
                               if r.article.fingerprint)
        limits = []
        if self.caps.new_per_fetch:
            limits.append(f"{self.caps.new_per_fetch} new per fetch (fetch.max_new_per_fetch)")
        if self.caps.total:
            limits.append(f"{self.caps.total} in all, {stored} stored (fetch.max_items_per_source)")
        self.warnings.append(f"{len(fresh)} new items, more than this source may add: stored the first {room} "
                             f"in document order, left out {len(cut)}; limits: {'; '.join(limits)}")
        return kept

    def _collapse_reposts(self, fresh: Sequence[Candidate]) -> list[Candidate]:
        """In-batch near-duplicate titles: later re-posts fold into the first (store.dedup)."""
        kept: list[Candidate] = []
        by_title: dict[str, list[tuple[Candidate, datetime]]] = {}
        for c in fresh:
            if len(c.title_key) < TITLE_KEY_MIN:  # the rule never applies: skip the bookkeeping
                kept.append(c)
                continue
            date = plausible_date(article_date(c.article), self.now) or self.now
            earlier = by_title.setdefault(c.title_key, [])
            first = next((k for k, d in earlier if is_near_duplicate(c.title_key, date, k.title_key, d)), None)
            if first is None:
                kept.append(c)
                earlier.append((c, date))
            else:
                self._reposts.setdefault(id(first), []).append(c)
                self.tally.unchanged += 1
        return kept

    def _held(self, fresh: Sequence[Candidate], had_articles: bool, newest: int | None) -> set[int]:
        """The circuit breaker: too many new articles with old dates from a known source."""
        if not had_articles or newest is None or self.accept_burst:
            return set()
        cutoff = min(newest, self.now_us)
        old = set()  # id() of each candidate: Articles are large to hash
        for c in fresh:
            date = plausible_date(article_date(c.article), self.now)
            if date is not None and to_micros(date) < cutoff:
                old.add(id(c))
        if len(old) <= self.burst_threshold:
            return set()
        self.warnings.append(
            f"source {self.source_url}: {len(old)} new articles carry dates before its newest stored "
            f"article ({from_micros(newest).isoformat()}): held back as a suspected id churn or "
            f"re-import; run with --accept-burst {self.source_url} to publish them"
        )
        return old

    def _assign_ids(self, fresh: Sequence[Candidate]) -> list[str]:
        """Each article's own id unless another stored article already uses it (then a derived one)."""
        wanted = [c.article.id for c in fresh]
        taken = {r[0] for r in select_in(self.conn, "SELECT id FROM entries WHERE id IN ({})", sorted(set(wanted)))}
        ids = []
        for c, entry_id in zip(fresh, wanted):
            kind, value = c.identity()
            attempt = 0
            while not entry_id or entry_id in taken:
                entry_id = derive_id(self.source_url, f"{kind}:{value}" + (f"#{attempt}" if attempt else ""))
                attempt += 1
                if entry_id not in taken:
                    taken.update(r[0] for r in self.conn.execute("SELECT id FROM entries WHERE id = ?", (entry_id,)))
            taken.add(entry_id)
            ids.append(entry_id)
        return ids

    def _dates(self, article: Article) -> tuple[int, int]:
        """(published, updated) to store: the feed's own dates; missing ones = first seen (now)."""
        published = plausible_date(article.published, self.now)
        updated = plausible_date(article.updated, self.now)
        first = published or updated or self.now
        return to_micros(first), to_micros(updated or first)

    def _release_held(self) -> None:
        released = self.conn.execute(
            "UPDATE entries SET status = 'published' WHERE source_url = ? AND status = 'held'", (self.source_url,)
        ).rowcount
        if released:
            self.tally.new += released
            self.warnings.append(f"source {self.source_url}: released {released} held articles (--accept-burst)")

    # reads ------------------------------------------------------------------------------------

    def _repeated_guids(self) -> frozenset[str]:
        rows = self.conn.execute("SELECT value FROM keys WHERE source_url = ? AND kind = 'repeated'",
                                 (self.source_url,))
        return frozenset(r[0] for r in rows)

    def _remember_repeated(self, guids: Iterable[str]) -> None:
        self.conn.executemany("INSERT INTO keys VALUES (?, 'repeated', ?, NULL) ON CONFLICT DO NOTHING",
                              [(self.source_url, g) for g in sorted(guids)])
        # an untrusted guid must not keep matching its first article
        self.conn.executemany("DELETE FROM keys WHERE source_url = ? AND kind = 'guid' AND value = ?",
                              [(self.source_url, g) for g in sorted(guids)])

    def _source_stats(self) -> tuple[bool, int | None]:
        count, newest = self.conn.execute(
            "SELECT count(*), max(published) FROM entries WHERE source_url = ?", (self.source_url,)
        ).fetchone()
        return count > 0, newest


def apply_upsert(conn: Connection, source_url: str, articles: Sequence[Article], now: datetime,
                 burst_threshold: int, accept_burst: bool, hashes: Mapping[str, Hashes] | None = None,
                 caps: Caps = NO_CAPS) -> UpsertResult:
    """Store.upsert_articles's work, inside its transaction."""
    return _Upsert(conn, source_url, now, burst_threshold, accept_burst, hashes, caps).run(articles)
