"""Date formats feedparser misreads, taught to it once at import (its handlers are tried newest first).

feedparser's ISO 8601 reader takes `2020/1/10 14:33:00` (slash-separated, common in Chinese
forum and CMS feeds) for 2020-11-01 00:00. The handler below reads `Y/M/D[ H:M[:S]]` exactly;
like feedparser, a time without a zone is taken as UTC (the per-source offset detection in
aggregator.timezones corrects feeds that really mean local time).
"""

from __future__ import annotations

import calendar
import re
import time

import feedparser

_SLASHED = re.compile(
    r"^\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$"
)


def parse_slashed_date(value: str) -> time.struct_time | None:
    match = _SLASHED.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    try:
        parsed = time.gmtime(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    except (OverflowError, ValueError):
        return None
    return parsed if parsed.tm_mday == day else None  # 2021/2/30 would roll over into March


feedparser.registerDateHandler(parse_slashed_date)
