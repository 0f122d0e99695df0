"""The fetch stage against a misbehaving loopback server (FAULTS.md): what goes on the wire, and what comes back."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import itertools
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CORPUS
from faultserver import Conn, FaultServer, Request, gzip_bomb, reply, sequence, serve

from aggregator import PROJECT_URL, __version__
from aggregator.fetch import FetchOutcome, SourceState, fetch_sources
from aggregator.model import FetchConfig, Source

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEED = (CORPUS / "feeds" / "miniflux" / "small_atom.xml").read_bytes()
ATOM = {"Content-Type": "application/atom+xml"}
# Budgets roomy enough that no answer on loopback runs out of time on a loaded machine; a test of a
# timeout sets its own short one against a server that never answers in time (it waits for the test's end).
FAST = {
    "connect_timeout": 30.0,
    "read_timeout": 30.0,
    "total_timeout": 30.0,
    "retries": 0,
    "run_deadline": 10.0,
    "max_body": 1024 * 1024,
    "retry_after_cap": 1.0,
}


def config(**overrides: Any) -> FetchConfig:
    return FetchConfig(**{**FAST, **overrides})


def source(url: str, **kw: Any) -> Source:
    return Source(url=url, categories=("news",), **kw)


def run(
    sources: Sequence[Source],
    cfg: FetchConfig | None = None,
    states: dict[str, SourceState] | None = None,
    now: datetime = NOW,
    **kw: Any,
) -> list[FetchOutcome]:
    return asyncio.run(fetch_sources(sources, cfg or config(), states or {}, now, retry_base_s=0.01, **kw))


def one(
    url: str, cfg: FetchConfig | None = None, state: SourceState | None = None, **kw: Any
) -> FetchOutcome:
    states = {url: state} if state else {}
    return run([source(url)], cfg, states, **kw)[0]


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    yield from serve()


@pytest.fixture
def fault_server2() -> Iterator[FaultServer]:
    yield from serve()


# --- conditional GET and identity --------------------------------------------------------------


def test_first_fetch_sends_identity_and_stores_validators(fault_server: FaultServer) -> None:
    headers = {**ATOM, "ETag": '"v1"', "Last-Modified": "Sat, 28 Feb 2026 10:00:00 GMT"}
    fault_server.routes["/feed"] = reply(200, headers, FEED)
    outcome = one(fault_server.url("/feed"))
    assert outcome.kind == "fetched"
    assert outcome.body == FEED
    assert outcome.headers["content-type"] == "application/atom+xml"
    assert outcome.state.etag == '"v1"'
    assert outcome.state.last_modified == "Sat, 28 Feb 2026 10:00:00 GMT"
    (request,) = fault_server.requests
    assert request.headers["user-agent"] == f"aggregator/{__version__} (+{PROJECT_URL})"
    assert "gzip" in request.headers["accept-encoding"]
    assert "br" not in request.headers["accept-encoding"]  # we could not bound its output
    assert "if-none-match" not in request.headers


def test_second_fetch_is_conditional_and_304_is_not_modified(fault_server: FaultServer) -> None:
    url = fault_server.url("/feed")
    lm = "Sat, 28 Feb 2026 10:00:00 GMT"
    fault_server.routes["/feed"] = sequence(
        reply(200, {**ATOM, "ETag": '"v1"', "Last-Modified": lm}, FEED), reply(304, {"ETag": '"v1"'})
    )
    first = one(url)
    failing = SourceState.from_dict({**first.state.to_dict(), "failures": 3})
    second = one(url, state=failing, force=True)
    assert second.kind == "not_modified"
    assert second.body == b""
    assert second.state.failures == 0
    assert second.state.last_success == NOW
    conditional = fault_server.requests[1].headers
    assert conditional["if-none-match"] == '"v1"'
    assert conditional["if-modified-since"] == lm


def test_304_without_validators_is_an_error(fault_server: FaultServer) -> None:
    fault_server.routes["/feed"] = reply(304)
    outcome = one(fault_server.url("/feed"))
    assert outcome.kind == "failed"
    assert outcome.error == "unexpected 304 without validators"
    assert outcome.state.failures == 1


def test_same_body_without_validators_is_unchanged(fault_server: FaultServer) -> None:
    url = fault_server.url("/feed")
    counter = iter(range(100))

    def changing_etag(conn: Conn, request: Request) -> bool:
        return reply(200, {**ATOM, "ETag": f'"w{next(counter)}"'}, FEED)(conn, request)

    fault_server.routes["/feed"] = changing_etag
    first = one(url)
    parsed = SourceState.from_dict({**first.state.to_dict(), "last_success": NOW.isoformat()})
    second = one(url, state=parsed, force=True)
    assert second.kind == "unchanged"
    assert second.body == b""
    assert second.state.etag == '"w1"'


def test_user_agent_and_headers_per_source(fault_server: FaultServer) -> None:
    fault_server.routes["/a"] = reply(200, ATOM, FEED)
    fault_server.routes["/b"] = reply(200, ATOM, FEED)
    sources = [
        source(fault_server.url("/a"), user_agent="mine/1", headers=(("X-Token", "s3cret"),)),
        source(fault_server.url("/b")),
    ]
    run(sources, config(user_agent="global/2"))
    by_path = {r.path: r.headers for r in fault_server.requests}
    assert by_path["/a"]["user-agent"] == "mine/1"
    assert by_path["/a"]["x-token"] == "s3cret"
    assert by_path["/b"]["user-agent"] == "global/2"
    assert "x-token" not in by_path["/b"]


def test_charset_only_in_header_is_passed_through(fault_server: FaultServer) -> None:
    body = '<?xml version="1.0"?><rss version="2.0"><channel><title>Caf\xe9</title></channel></rss>'
    content_type = "application/rss+xml; charset=windows-1252"
    fault_server.routes["/latin"] = reply(200, {"Content-Type": content_type}, body.encode("cp1252"))
    outcome = one(fault_server.url("/latin"))
    assert outcome.kind == "fetched"
    assert outcome.headers["content-type"] == content_type
    assert outcome.body == body.encode("cp1252")


def test_html_instead_of_feed_is_fetched_for_parse_to_reject(fault_server: FaultServer) -> None:
    html = (CORPUS / "hostile" / "xml" / "html_page_with_autodiscovery.html").read_bytes()
    fault_server.routes["/page"] = reply(200, {"Content-Type": "text/html"}, html)
    outcome = one(fault_server.url("/page"))
    assert (outcome.kind, outcome.body) == ("fetched", html)


def test_gzip_and_deflate_bodies_are_decoded(fault_server: FaultServer) -> None:
    fault_server.routes["/gz"] = reply(200, {"Content-Encoding": "gzip"}, gzip.compress(FEED))
    fault_server.routes["/zz"] = reply(200, {"Content-Encoding": "deflate"}, zlib.compress(FEED))
    outcomes = run([source(fault_server.url("/gz")), source(fault_server.url("/zz"))])
    assert [o.body for o in outcomes] == [FEED, FEED]


# --- budgets -------------------------------------------------------------------------------------


def slow(seconds: float, body: bytes = FEED) -> Any:
    def handle(conn: Conn, request: Request) -> bool:
        conn.wait(seconds)
        return reply(200, ATOM, body)(conn, request)

    return handle


def never_answers(conn: Conn, request: Request) -> bool:
    """Reads the request, then says nothing until the test is over."""
    conn.wait(3600)
    return False


def test_per_host_limit_and_min_delay_hold_on_the_server(
    fault_server: FaultServer, fault_server2: FaultServer
) -> None:
    for i in range(6):
        fault_server.routes[f"/f{i}"] = slow(0.05)
    fault_server2.routes["/other"] = reply(200, ATOM, FEED)
    sources = [source(fault_server.url(f"/f{i}")) for i in range(6)] + [source(fault_server2.url("/other"))]
    outcomes = run(sources, config(per_host=2, per_host_delay=0.05, concurrency=8))
    assert [o.kind for o in outcomes] == ["fetched"] * 7
    assert fault_server.max_in_flight <= 2
    starts = sorted(r.at for r in fault_server.requests)
    assert len(starts) == 6
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.05
    assert len(fault_server2.requests) == 1


def etag_aware(body: bytes) -> Any:
    def handle(conn: Conn, request: Request) -> bool:
        if request.headers.get("if-none-match") == '"same"':
            return reply(304, {"ETag": '"same"'})(conn, request)
        return reply(200, {**ATOM, "ETag": '"same"'}, body)(conn, request)

    return handle


def test_many_unchanged_sources_cost_one_conditional_request_each(
    fault_server: FaultServer, fault_server2: FaultServer
) -> None:
    servers = (fault_server, fault_server2)
    for server in servers:
        for i in range(30):
            server.routes[f"/s{i}"] = etag_aware(FEED)
    sources = [source(server.url(f"/s{i}")) for i in range(30) for server in servers]
    cfg = config(concurrency=16, per_host=2, total_timeout=5.0, read_timeout=5.0)
    first = run(sources, cfg)
    assert {o.kind for o in first} == {"fetched"}
    states = {o.source.url: o.state for o in first}
    second = run(sources, cfg, states, force=True)
    assert {o.kind for o in second} == {"not_modified"}
    for server in servers:
        assert len(server.requests) == 60
        assert all(r.headers.get("if-none-match") == '"same"' for r in server.requests[30:])
        assert server.max_in_flight <= 2


def test_time_queued_for_a_slot_does_not_count_against_the_deadline(fault_server: FaultServer) -> None:
    fault_server.routes["/hangs"] = never_answers
    fault_server.routes["/answers"] = reply(200, ATOM, FEED)
    sources = [source(fault_server.url("/hangs")), source(fault_server.url("/answers"))]
    # One slot: the second source waits for it until the first has used up its whole deadline, so it
    # has queued at least that long (a loaded machine only makes it longer), then gets its own.
    first, second = run(sources, config(per_host=1, concurrency=1, total_timeout=2.0))
    assert first.kind == "failed" and first.error.startswith("deadline 2 s exceeded")
    assert second.kind == "fetched"
    assert [r.path for r in fault_server.requests] == ["/hangs", "/answers"]


def test_on_outcome_sees_every_source_and_results_keep_source_order(fault_server: FaultServer) -> None:
    fast_seen = threading.Event()

    def after_fast(conn: Conn, request: Request) -> bool:  # answers once on_outcome has seen /fast
        fast_seen.wait(60)
        return reply(200, ATOM, FEED)(conn, request)

    def on_outcome(outcome: FetchOutcome) -> None:
        seen.append(outcome.source.url)
        fast_seen.set()

    fault_server.routes["/slow"] = after_fast
    fault_server.routes["/fast"] = reply(200, ATOM, FEED)
    seen: list[str] = []
    sources = [source(fault_server.url("/slow")), source(fault_server.url("/fast"))]
    outcomes = run(sources, config(per_host=2), on_outcome=on_outcome)
    assert [o.source.url for o in outcomes] == [s.url for s in sources]
    assert seen == [sources[1].url, sources[0].url]


# --- Retry-After, retries, host backoff -----------------------------------------------------------


def test_429_retry_after_seconds_over_the_cap_reschedules(fault_server: FaultServer) -> None:
    fault_server.routes["/rl"] = reply(429, {"Retry-After": "120"})
    url = fault_server.url("/rl")
    outcome = one(url, config(retries=3))
    assert outcome.kind == "failed"
    assert outcome.error == "HTTP 429, retry after 120 s"
    assert len(fault_server.requests) == 1  # not retried in this run
    assert outcome.state.retry_after_until == NOW + timedelta(seconds=120)
    again = one(url, state=outcome.state, now=NOW + timedelta(seconds=60), force=True)
    assert again.kind == "not_due"
    assert len(fault_server.requests) == 1  # even --force waits for Retry-After


def test_503_retry_after_http_date(fault_server: FaultServer) -> None:
    date = email.utils.format_datetime(NOW + timedelta(hours=1), usegmt=True)
    fault_server.routes["/busy"] = reply(503, {"Retry-After": date})
    outcome = one(fault_server.url("/busy"))
    assert outcome.error == "HTTP 503, retry after 3600 s"
    assert outcome.state.retry_after_until == NOW + timedelta(hours=1)
    assert outcome.state.next_due is not None and outcome.state.next_due >= NOW + timedelta(hours=1)


@pytest.mark.parametrize("value", ["soon", "-5", "99999999999"])
def test_bad_or_huge_retry_after(fault_server: FaultServer, value: str) -> None:
    fault_server.routes["/x"] = reply(503, {"Retry-After": value})
    outcome = one(fault_server.url("/x"))
    assert outcome.kind == "failed"
    until = outcome.state.retry_after_until
    if value == "99999999999":
        assert until == NOW + timedelta(days=7)
    else:
        assert until is None
        assert outcome.error == "HTTP 503"


def test_short_retry_after_is_waited_for_and_retried(fault_server: FaultServer) -> None:
    fault_server.routes["/r"] = sequence(reply(503, {"Retry-After": "0"}), reply(200, ATOM, FEED))
    outcome = one(fault_server.url("/r"), config(retries=2))
    assert outcome.kind == "fetched"
    assert len(fault_server.requests) == 2


def test_500_is_retried_then_fails_with_backoff(fault_server: FaultServer) -> None:
    fault_server.routes["/err"] = reply(500, {"Content-Type": "text/html"}, b"<html>oops</html>")
    outcome = one(fault_server.url("/err"), config(retries=2))
    assert (outcome.kind, outcome.error, outcome.body) == ("failed", "HTTP 500", b"")
    assert len(fault_server.requests) == 3
    assert outcome.state.failures == 1
    assert outcome.state.next_due is not None and outcome.state.next_due > NOW


def test_whole_host_backs_off_only_after_several_routes_are_limited(
    fault_server: FaultServer, fault_server2: FaultServer
) -> None:
    for path in ("/r1", "/r2", "/r3"):
        fault_server.routes[path] = reply(429, {"Retry-After": "600"})
    fault_server2.routes["/ok"] = reply(200, ATOM, FEED)
    sources = [source(fault_server.url(p)) for p in ("/r1", "/r2", "/r3")] + [
        source(fault_server2.url("/ok"))
    ]
    outcomes = run(sources, config(per_host=1, concurrency=1))
    assert [o.kind for o in outcomes] == ["failed", "failed", "not_due", "fetched"]
    assert [r.path for r in fault_server.requests] == ["/r1", "/r2"]
    assert "rate-limiting" in outcomes[2].error
    assert outcomes[2].state.retry_after_until == NOW + timedelta(seconds=600)


# --- status codes --------------------------------------------------------------------------------


def test_404_fails_with_backoff_and_is_not_gone(fault_server: FaultServer) -> None:
    outcome = one(fault_server.url("/missing"))
    assert (outcome.kind, outcome.error, outcome.state.gone) == ("failed", "HTTP 404", False)
    assert outcome.state.last_status == 404


def test_403_challenge_gets_a_hint(fault_server: FaultServer) -> None:
    fault_server.routes["/cf"] = reply(403, {"cf-mitigated": "challenge"}, b"<html>just a moment</html>")
    assert one(fault_server.url("/cf")).error == "HTTP 403 (blocked by bot protection)"


def test_410_marks_gone_until_retry_gone(fault_server: FaultServer) -> None:
    fault_server.routes["/old"] = sequence(reply(410), reply(410), reply(200, ATOM, FEED))
    url = fault_server.url("/old")
    gone = one(url)
    assert gone.kind == "gone" and gone.state.gone
    later = one(url, state=gone.state, now=NOW + timedelta(days=30), force=True)
    assert later.kind == "gone"
    assert len(fault_server.requests) == 1
    still = one(url, state=gone.state, retry_gone=True)
    assert still.kind == "gone"
    back = one(url, state=still.state, retry_gone=True)
    assert back.kind == "fetched"
    assert len(fault_server.requests) == 3


def test_not_due_sources_are_not_requested(fault_server: FaultServer) -> None:
    fault_server.routes["/f"] = reply(200, ATOM, FEED)
    state = SourceState(next_due=NOW + timedelta(minutes=5))
    assert one(fault_server.url("/f"), state=state).kind == "not_due"
    assert fault_server.requests == []
    assert one(fault_server.url("/f"), state=state, force=True).kind == "fetched"


# --- hostile servers -----------------------------------------------------------------------------


def test_slow_headers_time_out(fault_server: FaultServer) -> None:
    fault_server.routes["/slow"] = never_answers
    outcome = one(fault_server.url("/slow"), config(read_timeout=0.3))
    assert outcome.error == "read timeout waiting for response headers (0.3 s)"


def test_trickling_body_ends_at_the_total_deadline(fault_server: FaultServer) -> None:
    def trickle(conn: Conn, request: Request) -> bool:
        conn.head(200, {**ATOM, "Content-Length": "100000"})
        while not conn.stop.is_set():
            conn.send(b"<")
            conn.wait(0.1)
        return False

    fault_server.routes["/drip"] = trickle
    outcome = one(fault_server.url("/drip"), config(total_timeout=0.8))
    assert outcome.kind == "failed"
    assert outcome.error.startswith("deadline 0.8 s exceeded, ")
    assert outcome.error.endswith(" bytes received")
    assert outcome.body == b""


def test_connection_reset(fault_server: FaultServer) -> None:
    def reset(conn: Conn, request: Request) -> bool:
        conn.reset()
        return False

    def reset_mid_body(conn: Conn, request: Request) -> bool:
        conn.head(200, {**ATOM, "Content-Length": "5000"})
        conn.send(b"x" * 10)
        conn.reset()
        return False

    fault_server.routes["/rst"] = reset
    fault_server.routes["/rst2"] = reset_mid_body
    first, second = run([source(fault_server.url("/rst")), source(fault_server.url("/rst2"))])
    assert first.error.startswith(("connection reset", "HTTP protocol error"))
    assert second.kind == "failed" and second.body == b""


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = one(f"http://127.0.0.1:{port}/feed")
    assert outcome.error == "connection refused"


def test_connect_timeout() -> None:
    # A listener whose accept backlog is full: the kernel drops further SYNs, so connect hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            outcome = one(f"http://127.0.0.1:{port}/feed", config(connect_timeout=0.3))
        finally:
            for filler in fillers:
                filler.close()
    assert outcome.error == "connect timeout after 0.3 s"


def test_untrusted_certificate_is_a_tls_error() -> None:
    import trustme  # the test extra has it: a real CA, not a skip
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    for server in serve(tls=context):
        server.routes["/feed"] = reply(200, ATOM, FEED)
        outcome = one(server.url("/feed"), config(retries=2))
        assert outcome.kind == "failed"
        assert outcome.error.startswith("TLS: "), outcome.error
        assert "CERTIFICATE_VERIFY_FAILED" in outcome.error
        assert server.requests == []  # never retried insecurely


def test_length_mismatch_is_a_truncated_body(fault_server: FaultServer) -> None:
    def short(conn: Conn, request: Request) -> bool:
        conn.head(200, {**ATOM, "Content-Length": "1000"})
        conn.send(b"0123456789")
        return False

    fault_server.routes["/short"] = short
    outcome = one(fault_server.url("/short"))
    assert outcome.error == "truncated body: 10 of 1000 bytes"
    assert outcome.body == b""


def test_truncated_chunked_body(fault_server: FaultServer) -> None:
    def chunked(conn: Conn, request: Request) -> bool:
        conn.head(200, {**ATOM, "Transfer-Encoding": "chunked"})
        conn.send(b"d\r\n<rss version=\r\n100\r\n<chan")
        return False

    fault_server.routes["/chunks"] = chunked
    outcome = one(fault_server.url("/chunks"))
    assert outcome.kind == "failed"
    assert outcome.error.startswith("truncated body")


def test_http10_body_ending_at_close_is_accepted(fault_server: FaultServer) -> None:
    def http10(conn: Conn, request: Request) -> bool:
        conn.send(b"HTTP/1.0 200 OK\r\nContent-Type: application/atom+xml\r\n\r\n" + FEED)
        return False

    fault_server.routes["/old"] = http10
    assert one(fault_server.url("/old")).body == FEED


def test_gzip_bomb_is_refused(fault_server: FaultServer) -> None:
    bomb = gzip_bomb(32 * 1024 * 1024)
    assert len(bomb) < 50_000
    fault_server.routes["/bomb"] = reply(200, {**ATOM, "Content-Encoding": "gzip"}, bomb)
    outcome = one(fault_server.url("/bomb"))
    assert outcome.error == "body larger than 1 MiB after decompression"


def test_too_large_content_length_is_refused_before_download(fault_server: FaultServer) -> None:
    fault_server.routes["/huge"] = reply(200, {**ATOM, "Content-Length": "50000000"}, b"x" * 100)
    outcome = one(fault_server.url("/huge"))
    assert outcome.error == "body too large: Content-Length 50000000 > 1048576 bytes"


def test_endless_chunked_body_stops_at_the_cap(fault_server: FaultServer) -> None:
    def endless(conn: Conn, request: Request) -> bool:
        conn.head(200, {**ATOM, "Transfer-Encoding": "chunked"})
        chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
        while not conn.stop.is_set():
            conn.send(chunk)
        return False

    fault_server.routes["/endless"] = endless
    outcome = one(fault_server.url("/endless"), config(total_timeout=5.0))
    assert outcome.error == "body larger than 1 MiB after decompression"


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"plain text, not gzip"),
        ("br", b"\x0b\x02\x80hello\x03"),
        ("gzip, gzip", gzip.compress(b"once")),
    ],
)
def test_content_encoding_lies(fault_server: FaultServer, encoding: str, body: bytes) -> None:
    fault_server.routes["/lie"] = reply(200, {**ATOM, "Content-Encoding": encoding}, body)
    outcome = one(fault_server.url("/lie"))
    assert outcome.kind == "failed"
    assert outcome.error.startswith("undecodable content-encoding")


def test_huge_header_is_reported_not_raised(fault_server: FaultServer) -> None:
    fault_server.routes["/hdr"] = reply(200, {**ATOM, "X-Big": "a" * 1_000_000}, FEED)
    outcome = one(fault_server.url("/hdr"))
    assert outcome.kind == "failed"


# --- redirects -----------------------------------------------------------------------------------


def test_permanent_redirect_chain_moves_the_source_after_three_fetches_over_a_day(
    fault_server: FaultServer,
) -> None:
    fault_server.routes["/a"] = reply(301, {"Location": "/b"})
    fault_server.routes["/b"] = reply(301, {"Location": fault_server.url("/c")})
    fault_server.routes["/c"] = reply(200, ATOM, FEED)
    url = fault_server.url("/a")
    state = SourceState()
    for day in range(3):
        outcome = one(url, state=state, now=NOW + timedelta(days=day), force=True)
        assert outcome.kind in ("fetched", "unchanged")
        assert outcome.final_url == fault_server.url("/c")
        state = outcome.state
        if day < 2:
            assert (state.redirect_target, state.redirect_count, state.moved_to) == (
                fault_server.url("/c"),
                day + 1,
                "",
            )
    assert state.moved_to == fault_server.url("/c")
    fault_server.requests.clear()
    one(url, state=state, now=NOW + timedelta(days=4), force=True)
    assert [r.path for r in fault_server.requests] == ["/c"]


def test_308_is_permanent_and_302_307_are_not(fault_server: FaultServer) -> None:
    fault_server.routes["/p"] = reply(308, {"Location": "/feed"})
    fault_server.routes["/t"] = reply(302, {"Location": "/t2"})
    fault_server.routes["/t2"] = reply(307, {"Location": "/feed"})
    fault_server.routes["/feed"] = reply(200, ATOM, FEED)
    permanent, temporary = run([source(fault_server.url("/p")), source(fault_server.url("/t"))])
    assert permanent.state.redirect_target == fault_server.url("/feed")
    assert temporary.kind == "fetched"
    assert temporary.state.redirect_target == ""


def test_cookie_set_on_a_redirect_is_sent_to_its_target(fault_server: FaultServer) -> None:
    """A cookie gate (set a cookie, redirect, check it) works; responses without Set-Cookie add none."""
    fault_server.routes["/gate"] = reply(302, {"Location": "/feed", "Set-Cookie": "passed=yes; Path=/"})

    def feed(conn: Conn, request: Request) -> bool:
        if "passed=yes" not in request.headers.get("cookie", ""):
            return reply(403, {"Content-Type": "text/plain"}, b"no cookie")(conn, request)
        return reply(200, ATOM, FEED)(conn, request)

    fault_server.routes["/feed"] = feed
    fault_server.routes["/plain"] = reply(200, ATOM, FEED)
    gated, plain = run([source(fault_server.url("/gate")), source(fault_server.url("/plain"))],
                       config(per_host=1))
    assert gated.kind == "fetched", gated.error
    assert plain.kind == "fetched"


def test_the_jar_keeps_what_set_cookie_says_whatever_the_status() -> None:
    """Responses without Set-Cookie skip the standard library's jar (it builds a urllib request for each):
    what a response sets is kept, on a 304 too, and a response that sets nothing leaves the jar as it was."""
    from aggregator.fetch.client import make_client

    client = make_client(config())
    request = httpx.Request("GET", "http://127.0.0.1/feed")
    client.cookies.extract_cookies(httpx.Response(304, headers={"ETag": '"x"'}, request=request))
    assert not client.cookies
    client.cookies.extract_cookies(httpx.Response(200, headers={"Set-Cookie": "s=1; Path=/"}, request=request))
    assert client.cookies.get("s") == "1"
    client.cookies.extract_cookies(httpx.Response(304, headers={"ETag": '"y"'}, request=request))
    assert dict(client.cookies) == {"s": "1"}
    client.cookies.extract_cookies(httpx.Response(304, headers={"set-cookie": "s=2; Path=/"}, request=request))
    assert dict(client.cookies) == {"s": "2"}


def test_too_many_redirects(fault_server: FaultServer) -> None:
    for i in range(6):
        fault_server.routes[f"/h{i}"] = reply(302, {"Location": f"/h{i + 1}"})
    outcome = one(fault_server.url("/h0"), config(max_redirects=5))
    assert outcome.error == f"too many redirects (6), last: {fault_server.url('/h6')}"
    assert len(fault_server.requests) == 6


def test_redirect_loop(fault_server: FaultServer) -> None:
    fault_server.routes["/loop"] = reply(301, {"Location": "/loop"})
    outcome = one(fault_server.url("/loop"))
    assert outcome.error == f"redirect loop: {fault_server.url('/loop')} seen twice"
    assert len(fault_server.requests) <= 6


def test_redirect_to_file_scheme(fault_server: FaultServer) -> None:
    fault_server.routes["/f"] = reply(302, {"Location": "file:///etc/passwd"})
    outcome = one(fault_server.url("/f"))
    assert outcome.error == "redirect to disallowed scheme 'file'"


def test_failing_source_does_not_affect_the_others(fault_server: FaultServer) -> None:
    good_answered = threading.Event()

    def good(conn: Conn, request: Request) -> bool:
        reply(200, ATOM, FEED)(conn, request)
        good_answered.set()
        return True

    def hangs_then_hangs_up(conn: Conn, request: Request) -> bool:
        """Holds its request while the good source is fetched (no clock involved), then drops the connection."""
        good_answered.wait(60)
        return False

    fault_server.routes["/good"] = good
    fault_server.routes["/bomb"] = reply(200, {"Content-Encoding": "gzip"}, gzip_bomb(8 * 1024 * 1024))
    fault_server.routes["/slow"] = hangs_then_hangs_up
    paths = ["/slow", "/bomb", "/missing", "/good"]
    outcomes = run([source(fault_server.url(p)) for p in paths])
    assert [o.kind for o in outcomes] == ["failed", "failed", "failed", "fetched"]


def test_run_deadline_reports_unfinished_sources(fault_server: FaultServer) -> None:
    # the slow source never answers within the run; the good one answers at once, with a wide margin
    # under the deadline (a loaded CI machine must not turn it into a second unfinished source)
    fault_server.routes["/slow"] = slow(30.0)
    fault_server.routes["/good"] = reply(200, ATOM, FEED)
    cfg = config(read_timeout=30.0, total_timeout=30.0, run_deadline=2.0)
    slow_outcome, good = run([source(fault_server.url("/slow")), source(fault_server.url("/good"))], cfg)
    assert slow_outcome.error == "not finished: run deadline (2 s) reached"
    assert slow_outcome.state.failures == 0  # the run ran out of time, not the source
    assert good.kind == "fetched"


# --- private addresses ---------------------------------------------------------------------------


@pytest.fixture
def public_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    """A server on 127.0.0.2 that the address check is told to treat as public."""
    from aggregator.fetch import safety

    real = safety.is_public_address
    monkeypatch.setattr(safety, "is_public_address", lambda ip: str(ip) == "127.0.0.2" or real(ip))
    yield from serve("127.0.0.2")


def test_private_source_is_refused_before_connecting(fault_server: FaultServer) -> None:
    port = fault_server.port
    urls = [
        f"http://127.0.0.1:{port}/feed",
        f"http://[::ffff:127.0.0.1]:{port}/feed",
        f"http://2130706433:{port}/feed",
        f"http://0.0.0.0:{port}/feed",
        f"http://user@127.0.0.1:{port}/feed",
        f"http://localhost:{port}/feed",
    ]
    outcomes = run([source(u) for u in urls], config(allow_private_addresses=False))
    for outcome in outcomes:
        assert outcome.kind == "failed"
        # yarl (aiohttp) refuses the decimal form outright: just as safe.
        assert "non-public address" in outcome.error or outcome.error.startswith("invalid URL"), outcome.error
    assert fault_server.requests == []


def test_private_redirect_target_is_refused(public_server: FaultServer, fault_server: FaultServer) -> None:
    fault_server.routes["/secret"] = reply(200, ATOM, FEED)
    public_server.routes["/feed"] = reply(302, {"Location": fault_server.url("/secret")})
    public_server.routes["/ok"] = reply(200, ATOM, FEED)
    redirected, ok = run(
        [source(public_server.url("/feed")), source(public_server.url("/ok"))],
        config(allow_private_addresses=False),
    )
    assert redirected.error == "redirect target 127.0.0.1 resolves to non-public address 127.0.0.1"
    assert ok.kind == "fetched"
    assert fault_server.requests == []


def test_dns_rebinding_answer_is_refused(public_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    public_server.routes["/feed"] = reply(200, ATOM, FEED)
    real_getaddrinfo = asyncio.BaseEventLoop.getaddrinfo

    async def rebinding(self: asyncio.AbstractEventLoop, host: str, port: int, **kw: Any) -> Any:
        if host == "rebind.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ("127.0.0.2", "127.0.0.1")
            ]
        return await real_getaddrinfo(self, host, port, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", rebinding)
    outcome = one(f"http://rebind.test:{public_server.port}/feed", config(allow_private_addresses=False))
    assert outcome.error == "rebind.test resolves to non-public address 127.0.0.1"
    assert public_server.requests == []


def test_dns_failure() -> None:
    outcome = one("http://nothing.invalid/feed", config(allow_private_addresses=False))
    assert outcome.error == "DNS lookup failed for nothing.invalid"
    unguarded = one("http://nothing.invalid/feed")
    assert unguarded.error == "DNS lookup failed for nothing.invalid"


# --- local files ---------------------------------------------------------------------------------


def test_local_file_source(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    first = one(str(path))
    assert (first.kind, first.body) == ("fetched", FEED)
    settled = SourceState.from_dict({**first.state.to_dict(), "last_success": NOW.isoformat()})
    assert one(str(path), state=settled, force=True).kind == "unchanged"
    missing = one(str(tmp_path / "nope.xml"))
    assert missing.kind == "failed"
    assert missing.error.startswith("cannot read file")
    path.write_bytes(b"x" * (1024 * 1024 + 1))
    assert one(str(path), force=True).error == "file larger than 1048576 bytes"


@pytest.mark.parametrize("allow_private", [True, False])
def test_malformed_source_urls_fail_alone(fault_server: FaultServer, allow_private: bool) -> None:
    """Host spellings the URL parser or the resolver refuse are per-source errors: the good feed is fetched."""
    fault_server.routes["/good"] = reply(200, ATOM, FEED)
    bad = ["http://0177.0.0.1/x.xml", "http://127.1/x.xml", "http://[::1/x.xml", "http://exa mple.org/x",
           "http://a..b/x", "http://" + "a" * 300 + ".example/x", "http://127.0.0.1:99999/x"]
    outcomes = run([source(u) for u in bad] + [source(fault_server.url("/good"))],
                   config(allow_private_addresses=allow_private))
    *failed, good = outcomes
    assert good.kind == ("fetched" if allow_private else "failed"), good.error
    for url, outcome in zip(bad, failed, strict=True):
        assert outcome.kind == "failed", (url, outcome)
        assert outcome.error and "internal error" not in outcome.error, (url, outcome.error)
