"""Pure scheduling decisions given `now`: due or not, backoff, Retry-After, cache lifetimes, moves; no I/O."""

from __future__ import annotations

import email.utils
import math
import random
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from ..model import FeedMeta, FetchConfig, Source
from .state import SourceState

# A Retry-After further away than this is clamped (FAULTS.md S5: a week).
MAX_RETRY_AFTER_S = 7 * 86400
# A permanent redirect moves a source only after this many consecutive fetches over at least this long.
MOVE_AFTER_FETCHES = 3
MOVE_AFTER = timedelta(days=1)
# Backoff jitter: the delay is shortened by up to this fraction, so it never exceeds max_backoff.
BACKOFF_JITTER = 0.2

Decision = Literal["due", "not_due", "gone"]


def is_due(state: SourceState, now: datetime, *, force: bool = False, retry_gone: bool = False) -> Decision:
    """Gone sources wait for retry_gone; a server's Retry-After holds even against force."""
    if state.gone and not retry_gone:
        return "gone"
    if state.retry_after_until is not None and now < state.retry_after_until:
        return "not_due"
    if force or state.next_due is None or now >= state.next_due:
        return "due"
    return "not_due"


NEVER_DUE_US = 2**62  # a gone source: due only when asked (retry_gone)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def due_at_us(state: SourceState) -> int:
    """The moment (microseconds since the epoch, UTC) from which is_due(state, now) says "due" without
    force or retry_gone: 0 when it already does whatever the time, NEVER_DUE_US for a gone source. The
    store keeps it beside the state, so a worker's tick asks the database for the due sources only."""
    if state.gone:
        return NEVER_DUE_US
    moments = [m for m in (state.next_due, state.retry_after_until) if m is not None]
    return (max(moments) - _EPOCH) // timedelta(microseconds=1) if moments else 0


def source_interval(source: Source, config: FetchConfig) -> int:
    return source.interval if source.interval is not None else config.interval


def backoff_s(failures: int, base_s: float, max_backoff_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff: base, 2*base, 4*base ... up to max, shortened by a random jitter."""
    exponent = min(max(failures - 1, 0), 60)  # no float overflow for absurd counts
    delay = min(float(max_backoff_s), float(base_s) * (2.0**exponent))
    jitter = (rng or random).random() * BACKOFF_JITTER
    return max(delay * (1.0 - jitter), 0.0)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None when invalid."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return float(min(int(text[:12]), MAX_RETRY_AFTER_S))  # slicing: no giant ints from hostile input
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), float(MAX_RETRY_AFTER_S))


def cache_lifetime_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """Freshness from Cache-Control max-age (preferred) or Expires, as HTTP caches compute it."""
    cache_control = headers.get("cache-control", "")
    match = re.search(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", cache_control, re.IGNORECASE)
    if match:
        return float(min(int(match.group(1)[:12]), MAX_RETRY_AFTER_S))
    expires = headers.get("expires")
    if not expires:
        return None
    try:
        when = email.utils.parsedate_to_datetime(expires)
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0  # RFC 9111: an invalid Expires means already expired
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    base = now
    date = headers.get("date")
    if date:
        try:
            base = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError, OverflowError):
            base = now
        if base.tzinfo is None:
            base = base.replace(tzinfo=UTC)
    return max((when - base).total_seconds(), 0.0)


def success_delay_s(
    interval: int, ttl_s: int | None, headers: Mapping[str, str], config: FetchConfig, now: datetime
) -> float:
    """The source interval, lengthened (never shortened) by what the feed or server advertises.

    Advertised values (ttl, max-age, Expires) are clamped to [min_interval, max_interval] first.
    """
    advertised = [v for v in (ttl_s, cache_lifetime_s(headers, now)) if v is not None and v > 0]
    delay = float(interval)
    if advertised:
        clamped = min(max(max(advertised), float(config.min_interval)), float(config.max_interval))
        delay = max(delay, clamped)
    return delay


def track_redirect(state: SourceState, permanent_target: str, now: datetime) -> SourceState:
    """Counts consecutive fetches that saw the same permanent redirect; confirms a move when it held."""
    if not permanent_target:
        if not state.redirect_target and not state.redirect_count and state.redirect_since is None:
            return state  # the usual case: no redirect now or before (no copy for every source)
        return replace(state, redirect_target="", redirect_count=0, redirect_since=None)
    if permanent_target == state.redirect_target and state.redirect_since is not None:
        state = replace(state, redirect_count=state.redirect_count + 1)
    else:
        state = replace(state, redirect_target=permanent_target, redirect_count=1, redirect_since=now)
    assert state.redirect_since is not None
    is_confirmed = state.redirect_count >= MOVE_AFTER_FETCHES and now - state.redirect_since >= MOVE_AFTER
    if is_confirmed and permanent_target.startswith(("http://", "https://")):
        return replace(
            state, moved_to=permanent_target, redirect_target="", redirect_count=0, redirect_since=None
        )
    return state


def after_response(state: SourceState, now: datetime, status: int | None) -> SourceState:
    """Every attempt records when it happened and what status came back."""
    return replace(state, last_fetch=now, last_status=status)


def after_success(
    state: SourceState, interval: int, headers: Mapping[str, str], config: FetchConfig, now: datetime
) -> SourceState:
    delay = success_delay_s(interval, state.feed_ttl_s, headers, config, now)
    return replace(
        state,
        last_success=now,
        last_error="",
        failures=0,
        next_due=now + timedelta(seconds=delay),
        retry_after_until=None,
        gone=False,
    )


def after_failure(
    state: SourceState,
    error: str,
    interval: int,
    config: FetchConfig,
    now: datetime,
    *,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> SourceState:
    """One more consecutive failure: back off exponentially; a Retry-After is a floor nobody may skip."""
    failures = state.failures + 1
    delay = backoff_s(failures, interval, config.max_backoff, rng)
    until = None
    if retry_after_s is not None and math.isfinite(retry_after_s):
        until = now + timedelta(seconds=min(retry_after_s, MAX_RETRY_AFTER_S))
        delay = max(delay, retry_after_s)
    return replace(
        state,
        last_error=error,
        failures=failures,
        next_due=now + timedelta(seconds=delay),
        retry_after_until=until,
    )


def after_gone(state: SourceState, error: str) -> SourceState:
    return replace(state, gone=True, last_error=error, next_due=None, retry_after_until=None)


def reschedule_after_parse(
    state: SourceState,
    meta: FeedMeta,
    headers: Mapping[str, str],
    config: FetchConfig,
    interval: int | None,
    now: datetime,
) -> SourceState:
    """The body parsed: the source succeeded; next_due from interval, feed ttl and cache headers."""
    # the title names a source without `name:` in reports and logs: one line, of a sane length
    state = replace(state, feed_ttl_s=meta.ttl_s, title=meta.name)
    return after_success(state, interval if interval is not None else config.interval, headers, config, now)


def mark_parse_failed(
    state: SourceState,
    error: str,
    config: FetchConfig,
    now: datetime,
    *,
    interval: int | None = None,
    rng: random.Random | None = None,
) -> SourceState:
    """The body did not parse: back off like a fetch failure, and forget validators and hash so the
    next fetch downloads and parses again instead of passing as 'not modified'."""
    state = replace(state, etag="", last_modified="", body_hash="")
    return after_failure(
        state, error, interval if interval is not None else config.interval, config, now, rng=rng
    )
