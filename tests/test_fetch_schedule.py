"""Pure parts of the fetch stage: scheduling given `now`, the saved state, and the bounded decoder."""

from __future__ import annotations

import gzip
import ipaddress
import json
import random
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.fetch import SourceState, mark_parse_failed, reschedule_after_parse
from aggregator.fetch.body import BodyTooLarge, BoundedDecoder, UndecodableBody
from aggregator.fetch.safety import is_public_address
from aggregator.fetch.schedule import (
    after_failure,
    backoff_s,
    cache_lifetime_s,
    is_due,
    parse_retry_after,
    success_delay_s,
    track_redirect,
)
from aggregator.model import FeedMeta, FetchConfig

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = FetchConfig()


# --- state ---------------------------------------------------------------------------------------


def test_state_round_trips_through_json() -> None:
    state = SourceState(
        last_fetch=NOW,
        last_status=200,
        failures=2,
        next_due=NOW + timedelta(hours=1),
        etag='"x"',
        moved_to="https://example.org/new",
        gone=True,
        feed_ttl_s=600,
    )
    assert SourceState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_state_from_dict_tolerates_missing_unknown_and_bad_values() -> None:
    state = SourceState.from_dict(
        {"etag": '"e"', "from_the_future": 1, "failures": "many", "next_due": "not a date", "gone": 1}
    )
    assert state == SourceState(etag='"e"')
    naive = SourceState.from_dict({"last_fetch": "2026-03-01T12:00:00"})
    assert naive.last_fetch == NOW


# --- due or not ----------------------------------------------------------------------------------


def test_is_due() -> None:
    assert is_due(SourceState(), NOW) == "due"
    later = SourceState(next_due=NOW + timedelta(minutes=1))
    assert is_due(later, NOW) == "not_due"
    assert is_due(later, NOW, force=True) == "due"
    assert is_due(SourceState(gone=True), NOW, force=True) == "gone"
    assert is_due(SourceState(gone=True), NOW, retry_gone=True) == "due"
    asked = SourceState(retry_after_until=NOW + timedelta(seconds=30))
    assert is_due(asked, NOW, force=True) == "not_due"
    assert is_due(asked, NOW + timedelta(seconds=30)) == "due"


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    delays = [backoff_s(n, 1800, 86400, rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        plain = min(86400, 1800 * 2 ** (n - 1))
        assert plain * 0.8 <= delay <= plain
    assert backoff_s(10**6, 1800, 86400, random.Random(1)) <= 86400
    assert backoff_s(3, 1800, 86400, random.Random(3)) == backoff_s(3, 1800, 86400, random.Random(3))


def test_failure_counts_and_retry_after_is_a_floor() -> None:
    state = after_failure(SourceState(failures=1), "HTTP 500", 1800, CONFIG, NOW, rng=random.Random(0))
    assert state.failures == 2
    assert state.next_due is not None and NOW + timedelta(seconds=2880) <= state.next_due <= NOW + timedelta(
        hours=1
    )
    limited = after_failure(SourceState(), "HTTP 429", 60, CONFIG, NOW, retry_after_s=7200)
    assert limited.retry_after_until == NOW + timedelta(seconds=7200)
    assert limited.next_due == NOW + timedelta(seconds=7200)


# --- Retry-After and cache headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("Sun, 01 Mar 2026 13:00:00 GMT", 3600.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),
        ("99999999999999999999", 7 * 86400.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_cache_lifetime() -> None:
    assert cache_lifetime_s({"cache-control": "public, max-age=3600"}, NOW) == 3600
    expires = {"expires": "Sun, 01 Mar 2026 14:00:00 GMT", "date": "Sun, 01 Mar 2026 13:00:00 GMT"}
    assert cache_lifetime_s(expires, NOW) == 3600
    assert cache_lifetime_s({"expires": "0"}, NOW) == 0.0
    assert cache_lifetime_s({}, NOW) is None


def test_success_delay_lengthens_within_clamps() -> None:
    config = FetchConfig(interval=1800, min_interval=300, max_interval=86400)
    assert success_delay_s(1800, None, {}, config, NOW) == 1800
    assert success_delay_s(1800, 7200, {}, config, NOW) == 7200
    assert success_delay_s(1800, 60, {}, config, NOW) == 1800  # advertised values never shorten
    assert success_delay_s(1800, 10**9, {}, config, NOW) == 86400
    assert success_delay_s(600, None, {"cache-control": "max-age=900"}, config, NOW) == 900
    assert success_delay_s(60, 120, {}, config, NOW) == 300  # advertised, clamped up to min_interval


def test_reschedule_after_parse_resets_failures_and_uses_ttl() -> None:
    state = SourceState(failures=4, last_error="HTTP 500", body_hash="h")
    new = reschedule_after_parse(state, FeedMeta(ttl_s=3 * 3600), {}, CONFIG, None, NOW)
    assert (new.failures, new.last_error, new.last_success, new.feed_ttl_s) == (0, "", NOW, 3 * 3600)
    assert new.next_due == NOW + timedelta(hours=3)


def test_mark_parse_failed_forgets_validators_so_the_next_fetch_parses_again() -> None:
    state = SourceState(etag='"v"', last_modified="x", body_hash="h", failures=1)
    new = mark_parse_failed(state, "not a feed", CONFIG, NOW, rng=random.Random(0))
    assert (new.etag, new.last_modified, new.body_hash, new.failures, new.last_error) == (
        "",
        "",
        "",
        2,
        "not a feed",
    )
    assert new.next_due is not None and new.next_due > NOW


def test_permanent_redirect_needs_three_fetches_over_a_day() -> None:
    target = "https://example.org/new"
    state = SourceState()
    for hours in (0, 12, 20):
        state = track_redirect(state, target, NOW + timedelta(hours=hours))
    assert (state.redirect_count, state.moved_to) == (3, "")  # three fetches, but not a day yet
    state = track_redirect(state, target, NOW + timedelta(hours=25))
    assert state.moved_to == target
    interrupted = track_redirect(track_redirect(SourceState(), target, NOW), "", NOW)
    assert (interrupted.redirect_target, interrupted.redirect_count) == ("", 0)
    other = SourceState()
    for days in range(4):
        other = track_redirect(other, "ftp://example.org/x", NOW + timedelta(days=days))
    assert other.moved_to == ""


# --- private addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",
        "ff02::1",
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# --- bounded decoding ----------------------------------------------------------------------------


def decode(encoding: str, data: bytes, cap: int = 1000, chunk: int = 7) -> bytes:
    decoder = BoundedDecoder(encoding, cap)
    out = b"".join(decoder.feed(data[i : i + chunk]) for i in range(0, len(data), chunk))
    decoder.finish()
    return out


def test_decoder_handles_the_usual_encodings() -> None:
    text = b"<rss>" + b"x" * 500 + b"</rss>"
    assert decode("", text) == text
    assert decode("gzip", gzip.compress(text)) == text
    assert decode("x-gzip", gzip.compress(text[:100]) + gzip.compress(text[100:])) == text  # two members
    assert decode("deflate", zlib.compress(text)) == text
    raw = zlib.compressobj(wbits=-15)
    assert decode("deflate", raw.compress(text) + raw.flush()) == text  # raw deflate, as some servers send
    assert decode("gzip, gzip", gzip.compress(gzip.compress(text))) == text
    assert decode("identity", text) == text


def test_decoder_bounds_the_output() -> None:
    with pytest.raises(BodyTooLarge):
        decode("gzip", gzip.compress(bytes(2 * 10**6)), cap=1000, chunk=65536)
    with pytest.raises(BodyTooLarge):
        decode("", b"y" * 1001)
    assert len(decode("gzip", gzip.compress(bytes(1000)), cap=1000)) == 1000


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", b"not gzip at all"),
        ("br", b"anything"),
        ("zstd", b"x"),
        ("gzip", gzip.compress(b"abc" * 100)[:15]),
    ],
)
def test_decoder_refuses_lies_and_truncation(encoding: str, data: bytes) -> None:
    with pytest.raises(UndecodableBody):
        decode(encoding, data)


_MOMENTS = st.none() | st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                                    timezones=st.just(UTC))


@given(next_due=_MOMENTS, retry_after=_MOMENTS, gone=st.booleans(), now=_MOMENTS.filter(lambda m: m is not None))
def test_due_at_is_the_first_moment_is_due_says_due(next_due: datetime | None, retry_after: datetime | None,
                                                    gone: bool, now: datetime) -> None:
    """The store keeps due_at_us beside each state, and a worker's tick asks for due_at <= now: that must
    be exactly is_due's answer, at every moment."""
    from aggregator.fetch.schedule import NEVER_DUE_US, due_at_us, is_due

    state = SourceState(next_due=next_due, retry_after_until=retry_after, gone=gone)
    now_us = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert (due_at_us(state) <= now_us) == (is_due(state, now) == "due")
    for moment in (next_due, retry_after):  # at the moment itself and a microsecond before
        if moment is not None and not gone:
            at = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
            for probe in (at - 1, at):
                probe_dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=probe)
                assert (due_at_us(state) <= probe) == (is_due(state, probe_dt) == "due")
    assert (due_at_us(state) == NEVER_DUE_US) == gone
