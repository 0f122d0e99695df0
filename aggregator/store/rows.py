"""Article <-> SQLite row encoding for the store (times as integer microseconds, tuples as JSON), and a chunked IN query."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from aggregator.store.connection import Connection
from aggregator.model import Article, Enclosure, FeedMeta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK = 500  # bound parameters per IN (...) query

BODY_COLUMNS = (
    "source_name", "original_id", "title", "link", "authors", "feed_published", "feed_updated",
    "summary", "content_html", "tags", "enclosures", "image", "base_url", "language", "feed",
)


def to_micros(moment: datetime) -> int:
    """Integer microseconds since the epoch (UTC); a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _opt_micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _opt_time(value: int | None) -> datetime | None:
    return None if value is None else from_micros(value)


def _dump(value: object) -> str:
    if isinstance(value, list) and not value:
        return "[]"  # most authors, tags and enclosures lists (a cold start encodes ~250,000)
    return _ENCODER.encode(value)


# One encoder: json.dumps with arguments builds a new one per call (a few µs, ~250,000 calls a cold start)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=256)  # every article of a feed carries the same FeedMeta
def _feed_json(feed: FeedMeta) -> str:
    return _dump({
        "title": feed.title, "link": feed.link, "id": feed.id, "updated": _opt_micros(feed.updated),
        "language": feed.language, "ttl_s": feed.ttl_s, "format": feed.format,
    })


@lru_cache(maxsize=256)
def _feed_meta(text: str) -> FeedMeta:
    data: dict[str, Any] = json.loads(text)
    return FeedMeta(
        title=data["title"], link=data["link"], id=data["id"], updated=_opt_time(data["updated"]),
        language=data["language"], ttl_s=data["ttl_s"], format=data["format"],
    )


def body_values(article: Article) -> tuple[object, ...]:
    """The `bodies` columns (BODY_COLUMNS order) for `article`."""
    return (
        article.source_name, article.original_id, article.title, article.link, _dump(list(article.authors)),
        _opt_micros(article.published), _opt_micros(article.updated), article.summary,
        article.content_html, _dump(list(article.tags)),
        _dump([[e.url, e.type, e.length] for e in article.enclosures]),
        article.image, article.base_url, article.language, _feed_json(article.feed),
    )


def article_from_row(entry_id: str, source_url: str, published: int, updated: int,
                     body: Sequence[Any], *, needs_cleaning: bool = False, first_seen: int | None = None) -> Article:
    """An Article from stored values; dates are the stored (filled-in) ones."""
    values = dict(zip(BODY_COLUMNS, body))
    return Article(
        id=entry_id,
        source_url=source_url,
        source_name=values["source_name"],
        original_id=values["original_id"],
        title=values["title"],
        link=values["link"],
        authors=tuple(json.loads(values["authors"])),
        published=from_micros(published),
        updated=from_micros(updated),
        summary=values["summary"],
        content_html=values["content_html"],
        tags=tuple(json.loads(values["tags"])),
        enclosures=tuple(Enclosure(u, t, n) for u, t, n in json.loads(values["enclosures"])),
        image=values["image"],
        base_url=values["base_url"],
        language=values["language"],
        feed=_feed_meta(values["feed"]),
        needs_cleaning=needs_cleaning,
        first_seen=_opt_time(first_seen),
    )


def headline_from_row(entry_id: str, source_url: str, published: int, updated: int,
                      head: Sequence[Any], first_seen: int | None = None) -> Article:
    """An Article with only a listing's fields: head is (source_name, title, link, summary, content)."""
    source_name, title, link, summary, content = head
    return Article(id=entry_id, source_url=source_url, source_name=source_name, title=title, link=link,
                   published=from_micros(published), updated=from_micros(updated), summary=summary,
                   content_html=content, first_seen=_opt_time(first_seen))


def select_in(conn: Connection, sql: str, values: Sequence[object],
               prefix: tuple[object, ...] = (), suffix: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Run `sql` (with one `IN ({})`) over `values` in chunks; all rows (none for an UPDATE or DELETE).
    prefix and suffix: the parameters before and after the IN list."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(values), CHUNK):
        chunk = values[start:start + CHUNK]
        cursor = conn.execute(sql.format(", ".join("?" * len(chunk))), (*prefix, *chunk, *suffix))
        if cursor.description is not None:  # a statement without rows: PostgreSQL's cursor has none to fetch
            rows.extend(cursor.fetchall())
    return rows


def aware(moment: datetime) -> datetime:
    """UTC-aware; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
