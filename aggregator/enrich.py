"""Per-source enrichment between parsing and storing: date sanity and full text; pure (no I/O, no clock).

Dates: each source's state keeps (stated date, first-seen) samples of its recent articles; from
them timezones.detect_offset finds a consistent clock offset (Chinese sources writing UTC+8 as
UTC), which is applied to every date of the source, and dates still beyond `future_margin` in
the future become the first-seen time. First-seen times are recorded once, so a corrected date
never changes from run to run.

Full text: the page of a new article from a `full_text` source goes through the extractor and
then through the same cleaning as feed content; on failure the teaser stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from aggregator.fulltext import extract_main_content
from aggregator.model import Article, CleanConfig
from aggregator.timezones import correct_date, detect_offset

MAX_SAMPLES = 60  # recent articles remembered per source for offset detection


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _parse(value: object) -> datetime | None:
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
    pairs = [(p, f) for p, f in ((_parse(a), _parse(b)) for a, b in samples.values()) if p and f]
    offset = detect_offset(pairs)
    corrected = tuple(_correct(a, samples, now, offset, future_margin) for a in articles)
    return corrected, {"tz_samples": samples, "tz_offset_s": int(offset.total_seconds()) if offset else 0}


def _correct(article: Article, samples: Mapping[str, list[str]], now: datetime, offset: timedelta | None,
             margin: timedelta) -> Article:
    if article.published is None and article.updated is None:
        return article  # the store gives it its first-seen time
    seen = samples.get(article.id)
    first_seen = (_parse(seen[1]) if seen else None) or now
    published = correct_date(article.published, first_seen, offset, margin) if article.published else None
    updated = correct_date(article.updated, first_seen, offset, margin) if article.updated else None
    if published == article.published and updated == article.updated:
        return article
    return replace(article, published=published, updated=updated)


def full_text_article(article: Article, page: bytes, page_url: str, config: CleanConfig,
                      rules: Sequence[Mapping[str, object]]) -> tuple[Article, str]:
    """The article with its page's main content, cleaned; or the article unchanged and a reason."""
    from aggregator.clean import clean_article  # runs in a worker; the run's own process may never need it

    try:
        content = extract_main_content(page, page_url)
    except Exception as exc:  # noqa: BLE001 - an extractor bug keeps the teaser
        return article, f"extractor failed: {type(exc).__name__}: {exc}"
    if not content:
        return article, "no article text found on the page"
    teaser = article.summary
    enriched = replace(article, content_html=content, base_url=page_url, summary=teaser)
    return clean_article(enriched, config, rules), ""
