"""Finding stored entries by id, guid or link for `aggregator why`, and which copy of a link a feed shows;
reads only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aggregator.store.connection import Connection
from aggregator.store.dedup import canonical_link
from aggregator.store.rows import from_micros, select_in
from aggregator.store.windows import first_seen_sources


@dataclass(frozen=True, slots=True)
class StoredMatch:
    """A stored entry matching a `why` query. Body fields are "" for a pruned entry (its body is gone)."""

    key: int
    id: str
    source_url: str
    status: str  # published, held, pruned
    link_key: str
    first_seen: datetime
    last_seen: datetime
    published: datetime
    updated: datetime
    pruned_at: datetime | None  # None: pruned before the store recorded when (or not pruned)
    needs_cleaning: bool
    title: str
    link: str
    original_id: str
    source_name: str
    matched_by: tuple[str, ...]  # "id", "guid", "link"
    # matched only through a guid or link the store recorded for it while the entry's own are others:
    # a re-post or a renamed item folded into this entry (store.dedup)
    alias: bool


_ENTRY_SQL = (
    "SELECT e.key, e.id, e.source_url, e.status, e.link_key, e.first_seen, e.last_seen, e.published, e.updated, "
    "e.pruned_at, e.needs_cleaning, b.title, b.link, b.original_id, b.source_name "
    "FROM entries e LEFT JOIN bodies b ON b.entry = e.key WHERE e.key IN ({})")


def find_entries(conn: Connection, query: str) -> list[StoredMatch]:
    """Entries whose published id, feed guid or canonical link is `query`, also through the guids and
    links the store recorded for re-posts and renamed items; oldest first. The keys table is scanned
    (it is indexed by source): a question asked by hand, not on every run."""
    link = canonical_link(query)
    how: dict[int, set[str]] = {}
    found = [("id", "SELECT key FROM entries WHERE id = ?", query),
             ("guid", "SELECT entry FROM keys WHERE kind = 'guid' AND value = ? AND entry IS NOT NULL", query)]
    if link:
        found += [("link", "SELECT key FROM entries WHERE link_key = ?", link),
                  ("link", "SELECT entry FROM keys WHERE kind = 'link' AND value = ? AND entry IS NOT NULL", link)]
    for kind, sql, value in found:
        for (key,) in conn.execute(sql, (value,)):
            how.setdefault(key, set()).add(kind)
    rows = select_in(conn, _ENTRY_SQL, sorted(how))
    matches = [_match(row, tuple(sorted(how[row[0]])), query, link) for row in rows]
    return sorted(matches, key=lambda m: (m.first_seen, m.key))


def _match(row: tuple[Any, ...], matched_by: tuple[str, ...], query: str, link: str) -> StoredMatch:
    (key, entry_id, source_url, status, link_key, first_seen, last_seen, published, updated, pruned_at,
     needs_cleaning, title, entry_link, original_id, source_name) = row
    own = ("id" in matched_by or ("link" in matched_by and link_key == link)
           or ("guid" in matched_by and (original_id is None or original_id.strip() == query)))
    return StoredMatch(
        key, entry_id, source_url, status, link_key, from_micros(first_seen), from_micros(last_seen),
        from_micros(published), from_micros(updated), None if pruned_at is None else from_micros(pruned_at),
        bool(needs_cleaning), title or "", entry_link or "", original_id or "", source_name or "",
        matched_by, alias=not own)


def entry_shown_for_link(conn: Connection, link_key: str, source_urls: Sequence[str]) -> int | None:
    """The key of the entry a feed of these sources shows for this canonical link: the copy first seen
    (the same rule as the feed windows); None when none of them has it published."""
    rows = select_in(conn, "SELECT key, source_url, link_key, first_seen FROM entries "
                     "WHERE status = 'published' AND link_key = ? AND source_url IN ({})",
                     sorted(set(source_urls)), prefix=(link_key,))
    if not rows:
        return None
    owner = first_seen_sources((r[0], r[1], r[2], r[3]) for r in rows)[link_key]
    return int(min(r[0] for r in rows if r[1] == owner))
