"""Retention: what prune removes (old bodies, identities no listing holds, sources gone); no feed reading."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from aggregator.store.connection import Connection
from aggregator.store.rows import to_micros
from aggregator.store.upsert import LAST_SEEN_STEP

MIN_IDENTITY_KEEP = timedelta(days=1)  # > upsert.LAST_SEEN_STEP: an identity in a feed is never pruned


def prune(conn: Connection, *, keep_days: float, now: datetime, active_source_urls: Collection[str],
          keep_ids: Collection[str] = ()) -> int:
    """Remove what retention no longer needs; return the number of rows removed. `now` is aware.

    `keep_ids`: articles a feed shows right now (within its max_entries); they keep their
    body whatever their age, so a quiet source's last entries never vanish from its feed.

    Articles whose `updated` is older than `keep_days` lose their body (they are no longer
    published) but keep their identity (ids, links, hashes), so they never come back as new
    while a feed still lists them. An identity (and an item's fingerprint) goes only once its
    article has been pruned, was last seen longer than `keep_days` (at least a day) ago, and its
    source's last listing (the last parse of its feed: Store.upsert_articles) left it out; the record of
    an article the filters dropped (store.filtered) goes by the same rule. A source that answers 304,
    sends the same bytes, fails or goes quiet for a year keeps the identities of all it listed last
    (issue 20); a source no longer configured loses that protection, and keeps its state until all of
    its articles are gone.
    """
    removed = _drop_old_bodies(conn, to_micros(now - timedelta(days=keep_days)), keep_ids, to_micros(now))
    _fill_temp(conn, "active_sources", "url", active_source_urls)
    identity_cut = to_micros(now - max(timedelta(days=keep_days), MIN_IDENTITY_KEEP))
    removed += _drop_unlisted_identities(conn, identity_cut)
    removed += _drop_inactive_sources(conn)
    conn.execute("DELETE FROM active_sources")
    return removed


def _fill_temp(conn: Connection, table: str, column: str, values: Collection[str]) -> None:
    """The temporary one-column table `table` holding exactly `values` (created when missing)."""
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({column} TEXT PRIMARY KEY)")
    conn.execute(f"DELETE FROM {table}")
    conn.executemany(f"INSERT INTO {table} VALUES (?) ON CONFLICT DO NOTHING", [(v,) for v in values])


def _drop_old_bodies(conn: Connection, cut: int, keep_ids: Collection[str], now_us: int) -> int:
    """Articles updated before `cut` and not in keep_ids lose their body and become 'pruned' (at `now_us`)."""
    _fill_temp(conn, "keep_ids", "id", keep_ids)
    old = "status != 'pruned' AND updated < ? AND id NOT IN (SELECT id FROM keep_ids)"
    removed: int = conn.execute(f"DELETE FROM bodies WHERE entry IN (SELECT key FROM entries WHERE {old})",
                                (cut,)).rowcount
    conn.execute(f"UPDATE entries SET status = 'pruned', pruned_at = ? WHERE {old}", (now_us, cut))
    conn.execute("DELETE FROM keep_ids")
    return removed


def _drop_unlisted_identities(conn: Connection, identity_cut: int) -> int:
    """Pruned entries and fingerprints last seen before `identity_cut` that their source's last listing
    left out (or whose source is not in the temporary active_sources table)."""
    step = LAST_SEEN_STEP // timedelta(microseconds=1)
    # Not in the source's last listing: every article a parse lists is seen at it or, as last_seen
    # is refreshed at most every LAST_SEEN_STEP, within that step before it.
    unlisted = ("(last_seen < (SELECT listed_at FROM sources WHERE url = source_url) - ? "
                "OR source_url NOT IN (SELECT url FROM active_sources))")
    gone = f"status = 'pruned' AND last_seen < ? AND {unlisted}"
    removed: int = conn.execute(f"DELETE FROM keys WHERE entry IN (SELECT key FROM entries WHERE {gone})",
                                (identity_cut, step)).rowcount
    removed += conn.execute(f"DELETE FROM entries WHERE {gone}", (identity_cut, step)).rowcount
    removed += conn.execute(f"DELETE FROM fingerprints WHERE last_seen < ? AND {unlisted}",
                            (identity_cut, step)).rowcount
    # what the filters dropped is remembered as long as an identity: while the source's feed lists it
    removed += conn.execute(f"DELETE FROM filtered WHERE last_seen < ? AND {unlisted}",
                            (identity_cut, step)).rowcount
    # an item whose article is gone is processed again if it comes back (entry keys are reused)
    removed += conn.execute("DELETE FROM fingerprints WHERE entry IS NOT NULL AND entry NOT IN "
                            "(SELECT key FROM entries)").rowcount
    return removed


def _drop_inactive_sources(conn: Connection) -> int:
    """Sources not in the temporary active_sources table and without entries left."""
    empty = ("url NOT IN (SELECT url FROM active_sources) "
             "AND url NOT IN (SELECT DISTINCT source_url FROM entries)")
    removed: int = conn.execute(
        f"DELETE FROM keys WHERE source_url IN (SELECT url FROM sources WHERE {empty})").rowcount
    removed += conn.execute(
        f"DELETE FROM filtered WHERE source_url IN (SELECT url FROM sources WHERE {empty})").rowcount
    return removed + conn.execute(f"DELETE FROM sources WHERE {empty}").rowcount
