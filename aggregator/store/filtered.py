"""What the filters dropped (table `filtered`): recorded per source and article, found again for `why`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.store.connection import Connection
from aggregator.model import FilterDecision
from aggregator.store.dedup import canonical_link
from aggregator.store.rows import from_micros, to_micros
from aggregator.store.upsert import LAST_SEEN_STEP

# A decision already recorded is written again only when its rule changed or, like an entry's last_seen,
# when it was last seen longer than LAST_SEEN_STEP ago: a changed feed lists its dropped items again on
# every parse (they have no fingerprint, so they are judged again), and that must cost no write.
_RECORD = """
INSERT INTO filtered (source_url, id, original_id, link_key, link, title, rule, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source_url, id) DO UPDATE SET original_id = excluded.original_id, link_key = excluded.link_key,
    link = excluded.link, title = excluded.title, rule = excluded.rule, last_seen = excluded.last_seen
WHERE filtered.rule <> excluded.rule OR filtered.last_seen < ?
"""


@dataclass(frozen=True, slots=True)
class FilteredMatch:
    """A recorded filter decision matching a `why` query."""

    source_url: str
    id: str
    original_id: str
    link: str
    title: str
    rule: str
    first_seen: datetime
    last_seen: datetime


def record_filtered(conn: Connection, source_url: str, decisions: Sequence[FilterDecision],
                    now: datetime) -> None:
    """Remember what the filters dropped from one source's feed (one statement for all of them)."""
    now_us = to_micros(now)
    stale = now_us - LAST_SEEN_STEP // timedelta(microseconds=1)
    latest = {d.article_id: d for d in decisions}  # an id listed twice: its last decision stands
    conn.execute("INSERT INTO sources (url) VALUES (?) ON CONFLICT DO NOTHING", (source_url,))
    conn.executemany(_RECORD, [
        (source_url, d.article_id, d.original_id.strip(), canonical_link(d.link), d.link, d.title, d.rule,
         now_us, now_us, stale) for d in latest.values()])


def find_filtered(conn: Connection, query: str) -> list[FilteredMatch]:
    """Decisions about the article whose id, guid or (canonical) link is `query`, oldest source first."""
    link = canonical_link(query)
    rows = conn.execute(
        "SELECT source_url, id, original_id, link, title, rule, first_seen, last_seen FROM filtered "
        "WHERE id = ? OR (original_id = ? AND original_id <> '') OR (link_key = ? AND link_key <> '') "
        "ORDER BY first_seen, source_url, id",
        (query, query, link)).fetchall()
    return [FilteredMatch(source_url, entry_id, original_id, link, title, rule, from_micros(first_seen),
                          from_micros(last_seen))
            for source_url, entry_id, original_id, link, title, rule, first_seen, last_seen in rows]
