"""Date sanity per source: detect a consistent clock offset, correct dates; pure: no clock, no store, no I/O.

Real feeds lie about time. Chinese sources often write local time (UTC+8) and mark it as UTC, so a fresh
article claims to be published 8 h in the future of the moment we first saw it. Other feeds give a date
without a time (midnight) or a date far in the future. The store keeps, per article, the date as the feed
stated it and the first-seen time; from those pairs `detect_offset` finds a consistent offset and
`correct_date` turns a stated date into the one to publish (never "now" at render time: first-seen is
stored once).

Detection is deliberately conservative. Only *future* offsets are detected: a feed that states times
8 h too early looks exactly like a feed whose articles we discovered 8 h late, so that case is left
alone. A sample counts for an offset O when stated - first_seen lies in [O - LAG_WINDOW, O + SKEW]
and is itself more than SKEW in the future; O runs over multiples of STEP up to MAX_OFFSET; the
smallest O with the most support wins (the freshest articles bound it from below). It is reported
only with at least MIN_SAMPLES supporting samples that are also at least AGREEMENT of the informative
ones (not date-only, not discovered more than LAG_WINDOW late).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from aggregator.model import Article

STEP = timedelta(minutes=30)  # real offsets are whole or half hours (+8, +9, +5:30, +3:30)
MAX_OFFSET = timedelta(hours=14)  # UTC+14 is the largest offset in use
SKEW = timedelta(minutes=10)  # clock differences between the publisher and us
LAG_WINDOW = timedelta(hours=1)  # how late we may see a fresh article (fetch interval + publisher caches)
MIN_SAMPLES = 5
AGREEMENT = 0.8


def detect_offset(
    samples: Sequence[tuple[datetime, datetime]],
    *,
    min_samples: int = MIN_SAMPLES,
    agreement: float = AGREEMENT,
) -> timedelta | None:
    """The consistent future offset of a source's stated dates, or None when there is no clear one.

    `samples` are (published as the feed stated it, first-seen time) for recent articles of one source;
    naive datetimes are taken as UTC. Stated values at exactly midnight are date-only and ignored.
    """
    deltas = [_utc(stated) - _utc(first_seen) for stated, first_seen in samples if not is_date_only(stated)]
    informative = [delta for delta in deltas if delta >= -LAG_WINDOW]
    future = [delta for delta in informative if delta > SKEW]
    if len(future) < min_samples:
        return None
    best, support = _best_offset(future)
    if support < min_samples or support < agreement * len(informative):
        return None
    return best


def _best_offset(future: Sequence[timedelta]) -> tuple[timedelta, int]:
    """The candidate offset covering the most samples; the smallest one on ties."""
    best, support = timedelta(0), 0
    for steps in range(1, math.ceil(MAX_OFFSET / STEP) + 1):
        candidate = steps * STEP
        low, high = candidate - LAG_WINDOW, candidate + SKEW
        count = sum(low <= delta <= high for delta in future)
        if count > support:
            best, support = candidate, count
    return best, support


def correct_date(
    published: datetime | None, first_seen: datetime, offset: timedelta | None, future_margin: timedelta
) -> datetime:
    """The date to publish (tz-aware UTC) for an article, given its source's detected offset.

    - no date: first-seen;
    - date-only (midnight) seen within a day of it: first-seen (same day, and it orders same-day articles);
      seen later: the date as given (a back-catalogue article: the day is all we know);
    - otherwise the stated date minus the offset;
    - whatever is still more than `future_margin` after first-seen becomes first-seen.
    """
    seen = _utc(first_seen)
    if published is None:
        return seen
    if is_date_only(published):
        day = _utc(published)
        if abs(seen - day) < timedelta(days=1):
            return seen
        corrected = day
    else:
        corrected = _utc(published) - (offset or timedelta(0))
    if corrected > seen + future_margin:
        return seen
    return corrected


def is_date_only(value: datetime) -> bool:
    """True for exactly midnight in the value's own zone: what parsers make of "2024-03-01"."""
    return value.hour == value.minute == value.second == value.microsecond == 0


def _utc(value: datetime) -> datetime:
    # A naive value is what a feed gave without a zone; RSS and Atom say that means UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --- per source: the samples a source's state keeps, and its articles' dates corrected --------------

MAX_SAMPLES = 60  # recent articles remembered per source for offset detection


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _sample_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def correct_dates(articles: Sequence[Article], stored_samples: Mapping[str, object], now: datetime,
                  future_margin: timedelta) -> tuple[tuple[Article, ...], dict[str, object]]:
    """Articles with sane dates, and the source's new date state (tz_samples, tz_offset_s).
    stored_samples: the tz_samples of the last run (article id -> [date as stated, first seen])."""
    samples: dict[str, list[str]] = {k: v for k, v in stored_samples.items() if isinstance(v, list) and len(v) == 2}
    for article in articles:  # first sighting: remember the date as stated and when we saw it
        if article.published is not None and article.id not in samples:
            samples[article.id] = [_iso(article.published), _iso(now)]
    if len(samples) > MAX_SAMPLES:  # keep the most recently first-seen
        keep = sorted(samples.items(), key=lambda item: item[1][1])[-MAX_SAMPLES:]
        samples = dict(keep)
    pairs = [(p, f) for p, f in ((_sample_time(a), _sample_time(b)) for a, b in samples.values()) if p and f]
    offset = detect_offset(pairs)
    corrected = tuple(_correct(a, samples, now, offset, future_margin) for a in articles)
    return corrected, {"tz_samples": samples, "tz_offset_s": int(offset.total_seconds()) if offset else 0}


def _correct(article: Article, samples: Mapping[str, list[str]], now: datetime, offset: timedelta | None,
             margin: timedelta) -> Article:
    if article.published is None and article.updated is None:
        return article  # the store gives it its first-seen time
    seen = samples.get(article.id)
    first_seen = (_sample_time(seen[1]) if seen else None) or now
    published = correct_date(article.published, first_seen, offset, margin) if article.published else None
    updated = correct_date(article.updated, first_seen, offset, margin) if article.updated else None
    if published == article.published and updated == article.updated:
        return article
    return replace(article, published=published, updated=updated)
