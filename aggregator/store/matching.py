"""Matching a source's batch to its stored entries (guid, link, content hash, title); writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aggregator.store.connection import Connection
from aggregator.store.dedup import Candidate, article_date, is_near_duplicate
from aggregator.store.rows import aware, from_micros, select_in

FUTURE_SLACK = timedelta(days=1)  # a date further ahead than this is bogus: first-seen time instead


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """What the upsert compares of a stored entry (its row, and its body's original_id)."""

    key: int
    id: str
    status: str
    original_id: str
    raw_hash: str
    content_hash: str
    meta_hash: str
    published: int
    updated: int
    last_seen: int
    needs_cleaning: int


@dataclass
class Matching:
    """The stored entry of each candidate (None: new), in batch order; every (kind, value) key found stored;
    the batch positions folded into an entry another candidate speaks for (a re-post or an alias)."""

    entries: list[StoredEntry | None]
    found: set[tuple[str, str]] = field(default_factory=set)
    absorbed: set[int] = field(default_factory=set)


def plausible_date(moment: datetime | None, now: datetime) -> datetime | None:
    """A date, or None when missing or implausibly far in the future."""
    if moment is None:
        return None
    moment = aware(moment)
    return None if moment > now + FUTURE_SLACK else moment


def match_batch(conn: Connection, source_url: str, now: datetime,
                candidates: Sequence[Candidate]) -> Matching:
    """Each candidate's stored entry in this source (store.dedup's identity rules, in their order)."""
    return _Matcher(conn, source_url, now, candidates).run()


class _Matcher:
    """One batch's matching: each rule claims entries the earlier rules left unclaimed."""

    def __init__(self, conn: Connection, source_url: str, now: datetime,
                 candidates: Sequence[Candidate]) -> None:
        self.conn = conn
        self.source_url = source_url
        self.now = now
        self.candidates = candidates
        self.result = Matching([None] * len(candidates))
        self.claimed: set[int] = set()
        self.stored: dict[int, StoredEntry] = {}

    def run(self) -> Matching:
        guid_map = self._lookup("guid", {c.guid for c in self.candidates if c.guid})
        link_map = self._lookup("link", {c.link_key for c in self.candidates if c.link_usable})
        self.stored = self._load_entries(set(guid_map.values()) | set(link_map.values()))
        self.result.found = {("guid", v) for v in guid_map} | {("link", v) for v in link_map}
        self._by_guid(guid_map)
        self._by_link(link_map)
        self._by_hash()
        self._by_title()
        return self.result

    def _by_guid(self, guid_map: dict[str, int]) -> None:
        """An entry's own guid first, so an alias (re-post, churned guid) never overrides it."""
        matches = self.result.entries
        for primary in (True, False):
            for i, c in enumerate(self.candidates):
                entry = self.stored.get(guid_map.get(c.guid, -1)) if c.guid else None
                if entry is None or matches[i] is not None or (entry.original_id.strip() == c.guid) != primary:
                    continue
                if entry.key in self.claimed:
                    self.result.absorbed.add(i)
                matches[i] = entry
                self.claimed.add(entry.key)

    def _by_link(self, link_map: dict[str, int]) -> None:
        matches = self.result.entries
        for i, c in enumerate(self.candidates):
            entry = self.stored.get(link_map.get(c.link_key, -1)) if c.link_usable else None
            if matches[i] is None and entry is not None and entry.key not in self.claimed:
                matches[i] = entry
                self.claimed.add(entry.key)

    def _by_hash(self) -> None:
        """Content hashes only for what is still unmatched: normalizing HTML is the costly part."""
        matches, candidates = self.result.entries, self.candidates
        unmatched = [i for i, c in enumerate(candidates) if matches[i] is None and not c.guid]
        hash_map = self._lookup("hash", {candidates[i].content_hash for i in unmatched})
        self.result.found |= {("hash", v) for v in hash_map}
        self.stored.update(self._load_entries(set(hash_map.values()) - set(self.stored)))
        for i in unmatched:
            entry = self.stored.get(hash_map.get(candidates[i].content_hash, -1))
            if entry is not None and entry.key not in self.claimed:
                matches[i] = entry
                self.claimed.add(entry.key)

    def _by_title(self) -> None:
        """The near-duplicate rule (store.dedup): collapse re-posts into the earlier article."""
        matches = self.result.entries
        keys = {c.title_key for c, m in zip(self.candidates, matches) if m is None and c.title_key}
        if not keys:
            return
        rows = select_in(
            self.conn,
            "SELECT key, title_key, published FROM entries WHERE source_url = ? AND title_key IN ({})",
            sorted(keys), prefix=(self.source_url,),
        )
        by_title: dict[str, list[tuple[int, int]]] = {}
        for key, tkey, published in rows:
            by_title.setdefault(tkey, []).append((key, published))
        entries = self._load_entries({key for key, _, _ in rows})
        for i, c in enumerate(self.candidates):
            if matches[i] is not None:
                continue
            date = plausible_date(article_date(c.article), self.now) or self.now
            for key, published in by_title.get(c.title_key, []):
                if is_near_duplicate(c.title_key, date, c.title_key, from_micros(published)):
                    matches[i] = entries[key]
                    self.result.absorbed.add(i)
                    break

    def _lookup(self, kind: str, values: set[str]) -> dict[str, int]:
        rows = select_in(
            self.conn,
            "SELECT value, entry FROM keys WHERE source_url = ? AND kind = ? AND entry IS NOT NULL AND value IN ({})",
            sorted(values), prefix=(self.source_url, kind),
        )
        return {value: entry for value, entry in rows}

    def _load_entries(self, keys: set[int]) -> dict[int, StoredEntry]:
        rows = select_in(
            self.conn,
            "SELECT e.key, e.id, e.status, coalesce(b.original_id, ''), e.raw_hash, e.content_hash, e.meta_hash, "
            "e.published, e.updated, e.last_seen, e.needs_cleaning FROM entries e LEFT JOIN bodies b ON b.entry = e.key "
            "WHERE e.key IN ({})",
            sorted(keys),
        )
        return {r[0]: StoredEntry(*r) for r in rows}
