"""Reading feed windows: entry rows newest first, their articles or headlines; writes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from aggregator.limits import cap_per_key
from aggregator.model import Article
from aggregator.store.connection import Connection
from aggregator.store.rows import BODY_COLUMNS, article_from_row, headline_from_row, select_in
from aggregator.text import LEAD_SOURCE_CHARS


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
    first = first_seen_sources((r[0], r[2], r[3], r[4]) for r in rows if r[3])
    return [r for r in rows if not r[3] or first[r[3]] == r[2]]


def first_seen_sources(copies: Iterable[tuple[int, str, str, int]]) -> dict[str, str]:
    """link -> the source that saw it first, from (key, source, link, first_seen) rows. Sources that first
    saw it in the same run (the same first_seen) tie: the source URL decides, not the order in which the
    run's workers happened to finish, so the same input always publishes the same copy."""
    first: dict[str, tuple[int, str]] = {}
    for _key, source, link, first_seen in copies:
        if link not in first or (first_seen, source) < first[link]:
            first[link] = (first_seen, source)
    return {link: source for link, (_seen, source) in first.items()}


def read_feed_rows(conn: Connection, urls: Sequence[str], limit: int,
                   cutoff: int | None, per_source: int = 0) -> list[FeedRow]:
    """Store.feed_rows's rows of these (sorted, distinct) sources: the newest `limit` (0: all) updated at or
    after `cutoff` (microseconds; None: any), at most `per_source` (0: any) of one source, its newest."""
    if limit > 0:
        rows = _newest(conn, urls, limit, cutoff, per_source)
    else:
        rows = _per_source(_all_newest_first(conn, urls, cutoff), per_source)
    return [FeedRow(*r) for r in rows]


def read_rows_by_key(conn: Connection, keys: Sequence[int]) -> list[FeedRow]:
    """The entry rows of these keys (FeedRow.key), in the order given; missing ones left out."""
    rows = {r[0]: r for r in select_in(conn, _ROWS_BY_KEY_SQL, list(keys))}
    return [FeedRow(*rows[k]) for k in keys if k in rows]


def read_articles(conn: Connection, rows: Sequence[FeedRow]) -> list[Article]:
    """The articles of these rows, in their order."""
    bodies = {b[0]: b[1:] for b in select_in(
        conn, f"SELECT entry, {', '.join(BODY_COLUMNS)} FROM bodies WHERE entry IN ({{}})",
        [r.key for r in rows])}
    return [article_from_row(r.id, r.source_url, r.published, r.updated, bodies[r.key],
                             needs_cleaning=bool(r.needs_cleaning), first_seen=r.first_seen) for r in rows]


def read_headlines(conn: Connection, rows: Sequence[FeedRow]) -> list[Article]:
    """Store.headlines_of's articles of these rows: only what a listing shows, in their order. The start
    of the summary too: publish.similar compares it (the whole when a title derives from it)."""
    heads = {h[0]: h[1:] for h in select_in(
        conn, "SELECT entry, source_name, title, link, "
        f"CASE WHEN title = '' THEN summary ELSE substr(summary, 1, {LEAD_SOURCE_CHARS}) END, "
        "CASE WHEN title = '' THEN content_html ELSE '' END FROM bodies WHERE entry IN ({})",
        [r.key for r in rows])}
    return [headline_from_row(r.id, r.source_url, r.published, r.updated, heads[r.key], r.first_seen)
            for r in rows]


def _all_newest_first(conn: Connection, urls: Sequence[str],
                      cutoff: int | None) -> list[tuple[Any, ...]]:
    rows = select_in(conn, _ROWS_SQL, urls)
    rows.sort(key=_newest_first)
    rows = _drop_cross_source_duplicates(rows)
    return [r for r in rows if r[6] >= cutoff] if cutoff is not None else rows


def _newest(conn: Connection, urls: Sequence[str], limit: int,
            cutoff: int | None, per_source: int) -> list[tuple[Any, ...]]:
    """The newest `limit` rows, as _all_newest_first would give (capped `per_source`), reading only a
    window of rows (SQLite sorts and cuts): a feed shows 50 of a category's thousands (issue 8: steady
    runs). A source with `per_source` rows in a window has its rows known (the window is the start of
    every row in order); the next window leaves it out, so a chatty source does not fill every window."""
    window, open_urls = limit * 2 + 10, list(urls)
    full: list[tuple[Any, ...]] = []
    while True:
        rows, more = _window(conn, open_urls, cutoff, window)
        kept = _per_source(_first_seen_copies(conn, rows, urls), per_source)
        done = {source for source, count in Counter(r[2] for r in kept).items() if 0 < per_source <= count}
        found = sorted(full + kept, key=_newest_first)
        if not more:
            return found[:limit]
        known = [r for r in found if _newest_first(r) <= _newest_first(rows[-1])]  # no unread row before these
        if len(known) >= limit:
            return known[:limit]
        if done:
            full += [r for r in kept if r[2] in done]
            open_urls = [url for url in open_urls if url not in done]
        else:
            window *= 4


def _window(conn: Connection, urls: Sequence[str], cutoff: int | None, window: int
            ) -> tuple[list[tuple[Any, ...]], bool]:
    """The newest `window` rows of these sources and whether there are more: keys first, sorted and cut
    on the covering index (entries_by_source_window), then their rows."""
    sql = (_WINDOW_SQL + (" AND updated >= ?" if cutoff is not None else "")
           + f" ORDER BY updated DESC, published DESC, id LIMIT {window}")
    keys = [k for (k,) in select_in(conn, sql, urls, suffix=(cutoff,) if cutoff is not None else ())]
    rows = select_in(conn, _ROWS_BY_KEY_SQL, keys)
    rows.sort(key=_newest_first)
    return rows[:window], len(rows) >= window  # a chunk of sources may hold more beyond its window


def _first_seen_copies(conn: Connection, rows: list[tuple[Any, ...]],
                       urls: Sequence[str]) -> list[tuple[Any, ...]]:
    """rows without the copies of a link that another of these sources saw first (among all
    their published articles, dates aside: as _drop_cross_source_duplicates over every row)."""
    links = sorted({r[3] for r in rows if r[3]})
    if not links:
        return rows
    wanted = set(urls)
    copies = select_in(conn, "SELECT key, source_url, link_key, first_seen FROM entries "
                       "WHERE status = 'published' AND link_key != '' AND link_key IN ({})", links)  # partial index
    first = first_seen_sources(c for c in copies if c[1] in wanted)
    return [r for r in rows if not r[3] or first[r[3]] == r[2]]


def _per_source(rows: list[tuple[Any, ...]], per_source: int) -> list[tuple[Any, ...]]:
    """rows (newest first) without those past the first `per_source` (0: no cap) of their source."""
    return cap_per_key(rows, lambda row: row[2], per_source)[0]
