"""Time-zone sanity: a synthetic +8 h source built from real Chinese feeds is detected and corrected;
correct feeds are left alone; date-only and future dates get their first-seen time."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from aggregator.timezones import correct_date, detect_offset, is_date_only

from conftest import CORPUS
MARGIN = timedelta(hours=1)
EIGHT = timedelta(hours=8)

# WeChat accounts (wechat-feeds) and a Chinese blog (rodel-reader), all stating "+0800" correctly.
PLUS_EIGHT_FEEDS = sorted((CORPUS / "feeds/wechat-feeds").glob("*.xml")) + [
    CORPUS / "feeds/rodel-reader/Rss_ruanyifeng.xml",
    CORPUS / "feeds/rodel-reader/ld.xml",  # 190 articles, 48 of them date-only ("00:00:00 +0800")
]
# RSSHub routes for Chinese sites, stating GMT (dribbble: every date is "Invalid Date").
RSSHUB_FEEDS = sorted(p for p in (CORPUS / "rsshub").glob("*.xml") if p.name != "dribbble-popular.xml")


def stated_dates(xml: bytes) -> list[datetime]:
    """The items' <pubDate> values, parsed as RFC 822 (feedparser is slow on the 190-item ld.xml).

    Unparseable ones ("Invalid Date" from RSSHub) are skipped: parse gives those articles no date.
    """
    dates = []
    for value in re.findall(rb"<pubDate>\s*([^<]+?)\s*</pubDate>", xml):
        try:
            dates.append(parsedate_to_datetime(value.decode()).astimezone(UTC))
        except ValueError:
            continue
    return dates


def lie_about_zone(xml: bytes) -> bytes:
    """The real bug: the same local clock time, marked as UTC."""
    return xml.replace(b" +0800</pubDate>", b" GMT</pubDate>")


def first_seen(truth: datetime) -> datetime:
    """Fetched every 30 min: seen 1-29 min after the real publication (deterministic per date)."""
    lag_min = 1 + hashlib.sha256(truth.isoformat().encode()).digest()[0] % 29
    return truth + timedelta(minutes=lag_min)


def simulate(path: Path, shift: bool) -> tuple[list[datetime], list[tuple[datetime, datetime]]]:
    xml = path.read_bytes()
    truths = stated_dates(xml)
    stated = stated_dates(lie_about_zone(xml)) if shift else truths
    assert len(stated) == len(truths) >= 2, path
    return truths, [(s, first_seen(t)) for s, t in zip(stated, truths, strict=True)]


@pytest.mark.parametrize("path", PLUS_EIGHT_FEEDS, ids=lambda p: p.name)
def test_shifted_chinese_feed_is_detected_and_corrected(path: Path) -> None:
    truths, samples = simulate(path, shift=True)
    assert all(s - t == EIGHT for (s, _), t in zip(samples, truths, strict=True))  # the lie is in place
    offset = detect_offset(samples)
    assert offset == EIGHT
    corrected = [correct_date(stated, seen, offset, MARGIN) for stated, seen in samples]
    # Date-only values (ld.xml) carry no clock time to correct: seen the same day, they take first-seen.
    expected = [
        seen if is_date_only(stated) else truth for truth, (stated, seen) in zip(truths, samples, strict=True)
    ]
    assert corrected == expected
    assert sum(c == t for c, t in zip(corrected, truths, strict=True)) >= 0.7 * len(truths)


@pytest.mark.parametrize("path", PLUS_EIGHT_FEEDS + RSSHUB_FEEDS, ids=lambda p: p.name)
def test_correct_feed_is_left_alone(path: Path) -> None:
    truths, samples = simulate(path, shift=False)
    assert detect_offset(samples) is None
    assert detect_offset(samples, min_samples=2) is None  # not even with a lower bar
    # Untouched, except date-only values seen the same day, which get their first-seen time of day.
    expected = [
        seen if is_date_only(truth) else truth for truth, (_, seen) in zip(truths, samples, strict=True)
    ]
    assert [correct_date(stated, seen, None, MARGIN) for stated, seen in samples] == expected


def test_without_correction_the_lie_lands_in_the_future_margin() -> None:
    # Undetected (too few samples), the +8 h dates are still caught by the future margin.
    _, samples = simulate(PLUS_EIGHT_FEEDS[0], shift=True)
    assert detect_offset(samples[:4]) is None
    assert [correct_date(stated, seen, None, MARGIN) for stated, seen in samples] == [s for _, s in samples]


def test_backlog_on_first_fetch_is_not_evidence() -> None:
    # First fetch of a +8 h source: every article was published long before we saw it.
    truths, _ = simulate(PLUS_EIGHT_FEEDS[0], shift=True)
    fetched = max(truths) + timedelta(days=3)
    backlog = [(t + EIGHT, fetched) for t in truths]
    assert detect_offset(backlog) is None
    # Backlog plus enough fresh articles: the fresh ones decide.
    _, fresh = simulate(PLUS_EIGHT_FEEDS[1], shift=True)
    assert detect_offset(backlog + fresh) == EIGHT


def test_disagreeing_samples_give_no_offset() -> None:
    # Half the articles +8 h in the future, half correct: no consistent offset.
    _, shifted = simulate(PLUS_EIGHT_FEEDS[0], shift=True)
    _, correct = simulate(PLUS_EIGHT_FEEDS[1], shift=False)
    assert detect_offset(shifted[:10] + correct[:10]) is None
    # Scattered future dates (scheduled posts) are not an offset either.
    base = datetime(2021, 6, 17, 3, tzinfo=UTC)
    scattered = [(base + timedelta(hours=h, minutes=7), base) for h in (2, 5, 9, 13, 30, 70)]
    assert detect_offset(scattered) is None


def test_half_hour_offset() -> None:
    truths, _ = simulate(PLUS_EIGHT_FEEDS[2], shift=False)
    half = timedelta(hours=5, minutes=30)
    samples = [(t + half, first_seen(t)) for t in truths]
    assert detect_offset(samples) == half


def test_date_only_values() -> None:
    # ld.xml (a Chinese blog) states many dates as "00:00:00 +0800": a date without a time.
    xml = (CORPUS / "feeds/rodel-reader/ld.xml").read_bytes()
    raw = [v.decode() for v in re.findall(rb"<pubDate>([^<]+)</pubDate>", xml)]
    date_only = [
        datetime.strptime(value, "%a, %d %b %Y %H:%M:%S %z") for value in raw if " 00:00:00 " in value
    ]
    assert len(date_only) > 20 and all(is_date_only(d) for d in date_only)
    assert not is_date_only(datetime(2025, 11, 14, 0, 28, 57, tzinfo=timezone(EIGHT)))
    # Date-only values are no evidence of an offset, even "in the future" of first-seen.
    assert detect_offset([(d, d - timedelta(hours=7)) for d in date_only]) is None
    day = date_only[0]
    # Seen the same day: first-seen, which has the time of day the feed left out.
    seen = day + timedelta(hours=10, minutes=3)
    assert correct_date(day, seen, None, MARGIN) == seen
    assert correct_date(day, seen, EIGHT, MARGIN) == seen  # an offset is about clock times, not days
    # Seen weeks later (back catalogue): the day is all we know, and it is kept.
    late = day + timedelta(days=30)
    assert correct_date(day, late, None, MARGIN) == day.astimezone(UTC)
    assert correct_date(day, late, None, MARGIN).tzinfo is UTC


def test_future_dates_and_missing_dates() -> None:
    seen = datetime(2022, 7, 14, 12, 40, tzinfo=UTC)
    assert correct_date(None, seen, None, MARGIN) == seen
    assert correct_date(None, seen, EIGHT, MARGIN) == seen
    # Within the margin: kept as stated (clock skew, scheduled a bit ahead).
    near = seen + timedelta(minutes=50)
    assert correct_date(near, seen, None, MARGIN) == near
    # Beyond it: first-seen, never "now".
    far = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)
    assert correct_date(far, seen, None, MARGIN) == seen
    assert (
        correct_date(seen + timedelta(hours=9, minutes=1), seen, EIGHT, MARGIN) == seen
    )  # >1 h ahead after -8 h
    assert correct_date(seen + timedelta(hours=8, minutes=30), seen, EIGHT, MARGIN) == seen + timedelta(
        minutes=30
    )
    # Naive values are UTC; results are always tz-aware UTC.
    naive = datetime(2022, 7, 14, 11, 5)
    assert correct_date(naive, seen, None, MARGIN) == naive.replace(tzinfo=UTC)
    local = datetime(2022, 7, 14, 19, 5, tzinfo=timezone(EIGHT))
    assert correct_date(local, seen, None, MARGIN) == datetime(2022, 7, 14, 11, 5, tzinfo=UTC)
