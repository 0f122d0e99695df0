"""Fetches sources over HTTP (one httpx.AsyncClient per run) and from local files; must not parse bodies.

Per source: is it due (schedule.py)? -> wait for a host slot, the host's minimum delay, then a global
slot -> send (manual redirects, each hop checked) -> read the raw body through a bounded decoder ->
classify the status -> retry within the run when that helps -> new SourceState. Deadlines start only
once a request holds its slots: time spent queued never counts (issue 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import importlib.util
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

from .. import PROJECT_URL, __version__
from ..model import FetchConfig, Source
from . import schedule
from .body import ACCEPT_ENCODING, BodyTooLarge, BoundedDecoder, UndecodableBody
from .safety import BlockedAddressError, DnsLookupError
from .state import SourceState
from .transport import PerHostTransport, on_headers_sent, origin_of

Kind = Literal["fetched", "not_modified", "unchanged", "not_due", "failed", "gone"]

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
PERMANENT_STATUSES = {301, 308}
RATE_LIMIT_STATUSES = {429, 503}
RETRY_STATUSES = {408, 425, 500, 502, 504} | RATE_LIMIT_STATUSES
# Whole-host backoff starts when this many distinct routes of one host got 429/503 in a run (issue 3).
HOST_BACKOFF_ROUTES = 2
# Without a Retry-After, a rate-limited host is left alone for the configured min_interval.
HOST_JITTER = 0.5  # the per-host delay is stretched by up to this fraction
DRAIN_LIMIT = 64 * 1024  # a non-2xx body up to this size is read (and dropped) to keep the connection


def default_user_agent() -> str:
    return f"aggregator/{__version__} (+{PROJECT_URL})"


@dataclass(frozen=True)
class FetchOutcome:
    source: Source
    kind: Kind
    state: SourceState  # the new state to save
    body: bytes = b""  # only for kind == "fetched"
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    final_url: str = ""  # after redirects
    error: str = ""  # one line; the caller prefixes source name and URL


class _HostBackedOff(Exception):
    """Several routes of this host were rate-limited in this run: leave the whole host alone."""


class _Failure(Exception):
    """One failed attempt, with what the retry loop and the schedule need to know."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes
    final_url: str
    permanent_target: str  # where the leading 301/308 hops led, "" when the first hop was not permanent


@dataclass
class _Progress:
    """What one exchange got so far, for error messages."""

    has_headers: bool = False
    received: int = 0
    expected: int | None = None


@dataclass
class _Host:
    slots: asyncio.Semaphore
    next_start: float = 0.0  # monotonic time before which no request to this host may start
    limited_routes: set[str] = field(default_factory=set)
    backoff_until: datetime | None = None
    sending: bool = False  # a request holds the host's turn until it has been sent
    sent: asyncio.Event = field(default_factory=asyncio.Event)

    async def until_sent(self) -> None:
        while self.sending:
            self.sent.clear()
            await self.sent.wait()

    @property
    def is_backed_off(self) -> bool:
        return len(self.limited_routes) >= HOST_BACKOFF_ROUTES


class _Run:
    """Shared per-run machinery: the client, the global and per-host budgets, the random source."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: FetchConfig,
        now: datetime,
        rng: random.Random,
        retry_base_s: float,
    ) -> None:
        self.client = client
        self.config = config
        self.now = now
        self.rng = rng
        self.retry_base_s = retry_base_s
        self.global_slots = asyncio.Semaphore(max(config.concurrency, 1))
        self.hosts: dict[str, _Host] = {}
        self.transport: PerHostTransport | None = None
        self.pending: dict[str, int] = {}  # origin -> sources not finished + requests in flight

    async def source_done(self, source: Source) -> None:
        """Closes connections to origins no remaining source needs (redirect targets included)."""
        if source.is_local or self.transport is None:
            return
        key = origin_of(source.url)
        self.pending[key] = self.pending.get(key, 1) - 1
        idle = {k for k in self.transport.origins if self.pending.get(k, 0) <= 0}
        await self.transport.release(idle)

    def host(self, url: str) -> _Host:
        key = host_key(url)
        if key not in self.hosts:
            self.hosts[key] = _Host(asyncio.Semaphore(max(self.config.per_host, 1)))
        return self.hosts[key]

    @contextlib.asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[Callable[[], None]]:
        """Host slot first (so a global slot is never held while waiting on a busy host), then the
        host's minimum delay, then a global slot. Yields `mark_sent`, to call when the request has
        gone out: the host's delay counts from then, so the server sees the gap (a new connection
        takes longer to send than a kept-alive one)."""
        host = self.host(url)
        origin = origin_of(url)
        self.pending[origin] = self.pending.get(origin, 0) + 1  # its pool stays open while in use
        try:
            async with self._host_turn(host) as mark_sent:
                yield mark_sent
        finally:
            self.pending[origin] -= 1

    @contextlib.asynccontextmanager
    async def _host_turn(self, host: _Host) -> AsyncIterator[Callable[[], None]]:
        async with host.slots:
            if host.is_backed_off:
                raise _HostBackedOff
            while True:
                await host.until_sent()
                wait = host.next_start - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self.global_slots.acquire()
                if time.monotonic() >= host.next_start and not host.sending:
                    break
                self.global_slots.release()  # another request to this host started meanwhile
            delay = self.config.per_host_delay
            sent = delay <= 0
            host.sending = not sent

            def mark_sent() -> None:
                nonlocal sent
                if not sent:
                    sent = True
                    host.next_start = time.monotonic() + delay * (1.0 + HOST_JITTER * self.rng.random())
                    host.sending = False
                    host.sent.set()

            try:
                yield mark_sent
            finally:
                mark_sent()
                self.global_slots.release()

    def note_rate_limited(self, url: str, retry_after_s: float | None) -> None:
        host = self.host(url)
        host.limited_routes.add(url)
        wait = retry_after_s if retry_after_s is not None else float(self.config.min_interval)
        until = self.now + timedelta(seconds=min(wait, schedule.MAX_RETRY_AFTER_S))
        if host.backoff_until is None or until > host.backoff_until:
            host.backoff_until = until


def host_key(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{(parts.hostname or '').lower()}:{port or ''}"


# --- the public entry point ---------------------------------------------------------------------


async def fetch_sources(
    sources: Sequence[Source],
    config: FetchConfig,
    states: Mapping[str, SourceState],
    now: datetime,
    *,
    force: bool = False,
    retry_gone: bool = False,
    on_outcome: Callable[[FetchOutcome], None] | None = None,
    rng: random.Random | None = None,
    retry_base_s: float = 1.0,
) -> list[FetchOutcome]:
    """Fetches every due source concurrently; one outcome per source, in source order.

    `states` is keyed by Source.url. `rng` makes jitter reproducible in tests; `retry_base_s` is the
    first in-run retry delay (doubled per retry, jittered).
    """
    outcomes: list[FetchOutcome | None] = [None] * len(sources)
    run_rng = rng or random.Random()

    def finish(i: int, outcome: FetchOutcome) -> None:
        outcomes[i] = outcome
        if on_outcome is not None:
            on_outcome(outcome)

    client, transport = make_client(config)
    async with client:
        run = _Run(client, config, now, run_rng, retry_base_s)
        run.transport = transport
        for source in sources:
            if not source.is_local:
                key = origin_of(source.url)
                run.pending[key] = run.pending.get(key, 0) + 1
        try:
            async with asyncio.timeout(config.run_deadline):
                async with asyncio.TaskGroup() as group:
                    for i, source in enumerate(sources):
                        state = states.get(source.url, SourceState())
                        group.create_task(_fetch_and_report(run, i, source, state, force, retry_gone, finish))
        except TimeoutError:
            pass  # sources still running are reported below
    for i, source in enumerate(sources):
        if outcomes[i] is None:
            state = states.get(source.url, SourceState())
            error = f"not finished: run deadline ({config.run_deadline:g} s) reached"
            finish(i, FetchOutcome(source, "failed", replace(state, last_error=error), error=error))
    return [o for o in outcomes if o is not None]


async def _fetch_and_report(
    run: _Run,
    i: int,
    source: Source,
    state: SourceState,
    force: bool,
    retry_gone: bool,
    finish: Callable[[int, FetchOutcome], None],
) -> None:
    try:
        outcome = await fetch_source(run, source, state, force=force, retry_gone=retry_gone)
        await run.source_done(source)
    except Exception as exc:  # noqa: BLE001 (a bug must not stop the other sources; the message says it is one)
        error = f"internal error: {type(exc).__name__}: {exc}"
        outcome = FetchOutcome(source, "failed", replace(state, last_error=error), error=error)
    finish(i, outcome)


def uses_aiohttp(config: FetchConfig) -> bool:
    if config.http_backend == "httpx":
        return False
    if config.http_backend == "aiohttp":
        return True
    return importlib.util.find_spec("httpx_aiohttp") is not None


def make_client(config: FetchConfig) -> tuple[httpx.AsyncClient, PerHostTransport | None]:
    """One client per run. Our semaphores bound the requests in flight before httpx sees them, so
    no pool ever queues. httpcore gets a pool per host (PerHostTransport); aiohttp keys its pool
    by host itself."""
    transport: httpx.AsyncBaseTransport
    per_host: PerHostTransport | None = None
    if uses_aiohttp(config):
        from .aiohttp_backend import make_aiohttp_transport

        transport = make_aiohttp_transport(
            config.per_host, allow_private_addresses=config.allow_private_addresses
        )
    else:
        transport = per_host = PerHostTransport(
            config.per_host, allow_private_addresses=config.allow_private_addresses
        )
    timeout = httpx.Timeout(
        connect=config.connect_timeout, read=config.read_timeout, write=config.read_timeout, pool=None
    )
    # trust_env=False: a proxy from the environment would bypass the private-address check.
    client = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)
    return client, per_host


async def fetch_source(
    run: _Run, source: Source, state: SourceState, *, force: bool = False, retry_gone: bool = False
) -> FetchOutcome:
    decision = schedule.is_due(state, run.now, force=force, retry_gone=retry_gone)
    if decision == "gone":
        return FetchOutcome(source, "gone", state, error="gone (HTTP 410); not fetched until --retry-gone")
    if decision == "not_due":
        return FetchOutcome(source, "not_due", state)
    if source.is_local:
        return _read_local(run, source, state)
    return await _fetch_http(run, source, state)


# --- local files ---------------------------------------------------------------------------------


def _read_local(run: _Run, source: Source, state: SourceState) -> FetchOutcome:
    config, now = run.config, run.now
    interval = schedule.source_interval(source, config)
    state = schedule.after_response(state, now, None)
    try:
        with open(source.url, "rb") as handle:
            body = handle.read(config.max_body + 1)
    except OSError as exc:
        error = f"cannot read file: {exc.strerror or exc}"
        return _failed(source, state, error, interval, config, now, run.rng)
    if len(body) > config.max_body:
        error = f"file larger than {config.max_body} bytes"
        return _failed(source, state, error, interval, config, now, run.rng)
    return _got_body(source, state, body, {}, Path(source.url).as_uri(), interval, config, now)


# --- HTTP ----------------------------------------------------------------------------------------


def _request_headers(source: Source, state: SourceState, config: FetchConfig) -> dict[str, str]:
    headers = {
        "User-Agent": source.user_agent or config.user_agent or default_user_agent(),
        "Accept": ACCEPT,
        "Accept-Encoding": ACCEPT_ENCODING,
    }
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    headers.update(dict(source.headers))
    return headers


async def _fetch_http(run: _Run, source: Source, state: SourceState) -> FetchOutcome:
    config, now = run.config, run.now
    interval = schedule.source_interval(source, config)
    url = state.moved_to or source.url
    headers = _request_headers(source, state, config)
    is_conditional = bool(state.etag or state.last_modified)
    failure: _Failure | None = None
    for attempt in range(max(config.retries, 0) + 1):
        if attempt:
            await asyncio.sleep(_retry_delay(run, attempt, failure))
        try:
            response = await _request(run, url, headers, source)
            return _classify(run, source, state, response, is_conditional, interval)
        except _HostBackedOff:
            return _host_backed_off(source, state, run.host(url), url)
        except _Failure as exc:
            failure = exc
        if failure.status in RATE_LIMIT_STATUSES:
            run.note_rate_limited(url, failure.retry_after_s)
        if not failure.retryable:
            break
        if failure.retry_after_s is not None and failure.retry_after_s > config.retry_after_cap:
            break  # too long to wait in this run: reschedule instead
    assert failure is not None
    state = schedule.after_response(state, now, failure.status)
    return _failed(source, state, failure.message, interval, config, now, run.rng, failure.retry_after_s)


def _retry_delay(run: _Run, attempt: int, failure: _Failure | None) -> float:
    if failure is not None and failure.retry_after_s is not None:
        return failure.retry_after_s  # already known to be within retry_after_cap
    return run.retry_base_s * (2.0 ** (attempt - 1)) * (1.0 + run.rng.random())


def _host_backed_off(source: Source, state: SourceState, host: _Host, url: str) -> FetchOutcome:
    until = host.backoff_until
    state = replace(state, retry_after_until=until, next_due=until)
    when = until.isoformat(timespec="seconds") if until else "later"
    error = f"not fetched: host {urlsplit(url).hostname} is rate-limiting ({len(host.limited_routes)} routes got 429/503); next try after {when}"
    return FetchOutcome(source, "not_due", state, error=error)


def _classify(
    run: _Run, source: Source, state: SourceState, response: _Response, is_conditional: bool, interval: int
) -> FetchOutcome:
    """Turns a final (non-redirect) response into an outcome; raises _Failure for retryable statuses."""
    config, now = run.config, run.now
    status = response.status
    if status in RETRY_STATUSES:
        retry_after = schedule.parse_retry_after(response.headers.get("retry-after"), now)
        message = f"HTTP {status}" + (f", retry after {retry_after:g} s" if retry_after is not None else "")
        raise _Failure(message, retryable=True, status=status, retry_after_s=retry_after)
    state = schedule.after_response(state, now, status)
    if status == 410:
        error = "HTTP 410 Gone: source marked gone (run with --retry-gone to try again)"
        return FetchOutcome(
            source, "gone", schedule.after_gone(state, error), final_url=response.final_url, error=error
        )
    if status == 304:
        if not is_conditional:
            return _failed(source, state, "unexpected 304 without validators", interval, config, now, run.rng)
        state = _remember_validators(state, response.headers)
        state = schedule.track_redirect(state, response.permanent_target, now)
        state = schedule.after_success(state, interval, response.headers, config, now)
        return FetchOutcome(
            source, "not_modified", state, headers=response.headers, final_url=response.final_url
        )
    if 200 <= status < 300:
        state = schedule.track_redirect(state, response.permanent_target, now)
        return _got_body(
            source,
            state,
            response.body,
            response.headers,
            response.final_url,
            interval,
            config,
            now,
            http=True,
        )
    return _failed(source, state, _status_error(status, response.headers), interval, config, now, run.rng)


def _status_error(status: int, headers: Mapping[str, str]) -> str:
    if status in REDIRECT_STATUSES:
        return f"HTTP {status} without a Location header"
    message = f"HTTP {status}"
    if status in (401, 403) and (
        headers.get("cf-mitigated") == "challenge" or "cloudflare" in headers.get("server", "").lower()
    ):
        message += " (blocked by bot protection)"
    return message


def _got_body(
    source: Source,
    state: SourceState,
    body: bytes,
    headers: dict[str, str],
    final_url: str,
    interval: int,
    config: FetchConfig,
    now: datetime,
    *,
    http: bool = False,
) -> FetchOutcome:
    digest = hashlib.sha256(body).hexdigest()
    if http:
        state = _remember_validators(replace(state, etag="", last_modified=""), headers)
    if digest == state.body_hash and state.last_success is not None:
        state = schedule.after_success(state, interval, headers, config, now)
        return FetchOutcome(source, "unchanged", state, headers=headers, final_url=final_url)
    # Success is recorded by reschedule_after_parse once the body parsed; until then the next
    # due time is the plain interval, so a pipeline that stops here still polls politely.
    delay = schedule.success_delay_s(interval, state.feed_ttl_s, headers, config, now)
    state = replace(state, body_hash=digest, next_due=now + timedelta(seconds=delay), retry_after_until=None)
    return FetchOutcome(source, "fetched", state, body=body, headers=headers, final_url=final_url)


def _remember_validators(state: SourceState, headers: Mapping[str, str]) -> SourceState:
    etag = headers.get("etag", state.etag)
    last_modified = headers.get("last-modified", state.last_modified)
    return replace(state, etag=etag, last_modified=last_modified)


def _failed(
    source: Source,
    state: SourceState,
    error: str,
    interval: int,
    config: FetchConfig,
    now: datetime,
    rng: random.Random,
    retry_after_s: float | None = None,
) -> FetchOutcome:
    state = schedule.after_failure(state, error, interval, config, now, retry_after_s=retry_after_s, rng=rng)
    return FetchOutcome(source, "failed", state, error=error)


# --- one request, redirects followed by hand --------------------------------------------------------


async def _request(run: _Run, url: str, headers: dict[str, str], source: Source) -> _Response:
    config = run.config
    budget = float(config.total_timeout)
    seen = {url}
    permanent_target = ""
    is_permanent_so_far = True
    origin = _origin(url)
    for hop in range(config.max_redirects + 1):
        _check_scheme(url, hop)
        hop_headers = headers if _origin(url) == origin else _cross_origin(headers, source)
        async with run.slot(url) as mark_sent:
            started = time.monotonic()
            try:
                response = await _exchange(run, url, hop_headers, budget, hop, mark_sent)
            finally:
                budget -= time.monotonic() - started
        location = response.headers.get("location")
        if response.status not in REDIRECT_STATUSES or not location:
            response.permanent_target = permanent_target
            return response
        target = urljoin(url, location.strip())
        if response.status in PERMANENT_STATUSES and is_permanent_so_far:
            permanent_target = target
        else:
            is_permanent_so_far = False
        _check_scheme(target, hop + 1)
        if target in seen:
            raise _Failure(f"redirect loop: {target} seen twice")
        if hop + 1 > config.max_redirects:
            raise _Failure(f"too many redirects ({hop + 1}), last: {target}")
        seen.add(target)
        url = target
    raise AssertionError("unreachable")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _cross_origin(headers: dict[str, str], source: Source) -> dict[str, str]:
    """Per-source headers (tokens, cookies) stay with the source's own origin."""
    names = {name.lower() for name, _ in source.headers} | {"authorization", "cookie"}
    return {k: v for k, v in headers.items() if k.lower() not in names}


def _check_scheme(url: str, hop: int) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        what = "redirect to" if hop else "URL with"
        raise _Failure(f"{what} disallowed scheme {scheme!r}")


async def _exchange(
    run: _Run, url: str, headers: dict[str, str], budget: float, hop: int, mark_sent: Callable[[], None]
) -> _Response:
    """One request and its body, inside the total deadline; every library error becomes a _Failure."""
    progress = _Progress()
    config = run.config
    try:
        async with asyncio.timeout(max(budget, 0.0)):
            return await _send_and_read(run.client, url, headers, config.max_body, progress, mark_sent)
    except TimeoutError as exc:
        if not progress.has_headers:
            message = f"deadline {config.total_timeout:g} s exceeded waiting for response headers"
        else:
            message = f"deadline {config.total_timeout:g} s exceeded, {progress.received} bytes received"
        raise _Failure(message, retryable=True) from exc
    except (BodyTooLarge, UndecodableBody) as exc:
        raise _Failure(str(exc)) from exc
    except BlockedAddressError as exc:
        prefix = "redirect target " if hop else ""
        raise _Failure(f"{prefix}{exc}") from exc
    except DnsLookupError as exc:
        raise _Failure(str(exc), retryable=True) from exc
    except httpx.HTTPError as exc:
        raise _map_httpx_error(exc, url, progress, config) from exc


async def _send_and_read(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    max_body: int,
    progress: _Progress,
    mark_sent: Callable[[], None],
) -> _Response:
    async def trace(event: str, info: Mapping[str, object]) -> None:
        if event.endswith("send_request_headers.complete"):
            mark_sent()

    request = client.build_request("GET", url, headers=headers, extensions={"trace": trace})
    on_headers_sent.set(mark_sent)  # for the aiohttp transport, which ignores httpx's trace extension
    response = await client.send(request, stream=True)
    try:
        progress.has_headers = True
        status = response.status_code
        response_headers = {k.lower(): v for k, v in response.headers.items()}
        body = b""
        if 200 <= status < 300:
            body = await _read_body(response, response_headers, max_body, progress)
        else:
            await _drain(response)
        return _Response(status, response_headers, body, str(response.url), "")
    finally:
        await response.aclose()


async def _read_body(
    response: httpx.Response, headers: Mapping[str, str], max_body: int, progress: _Progress
) -> bytes:
    length = headers.get("content-length", "").strip()
    if length.isdigit():
        progress.expected = int(length[:20])
        if progress.expected > max_body:
            raise BodyTooLarge(f"body too large: Content-Length {progress.expected} > {max_body} bytes")
    decoder = BoundedDecoder(headers.get("content-encoding", ""), max_body)
    parts: list[bytes] = []
    async for chunk in response.aiter_raw():
        progress.received += len(chunk)
        parts.append(decoder.feed(chunk))
    decoder.finish()
    return b"".join(parts)


async def _drain(response: httpx.Response) -> None:
    """Reads a small error or 304 body so the connection can be reused; a big one is cut off."""
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received > DRAIN_LIMIT:
            break


def _map_httpx_error(exc: httpx.HTTPError, url: str, progress: _Progress, config: FetchConfig) -> _Failure:
    """Each library error as one line with the step and the numbers (FAULTS.md)."""
    text = str(exc) or type(exc).__name__
    if uses_aiohttp(config):
        from .aiohttp_backend import describe_aiohttp_error

        described = describe_aiohttp_error(
            exc,
            has_headers=progress.has_headers,
            received=progress.received,
            expected=progress.expected,
            connect_s=config.connect_timeout,
            read_s=config.read_timeout,
        )
        if described is not None:
            return _Failure(described[0], retryable=described[1])
    if isinstance(exc, httpx.ConnectTimeout):
        return _Failure(f"connect timeout after {config.connect_timeout:g} s", retryable=True)
    if isinstance(exc, httpx.ReadTimeout):
        if not progress.has_headers:
            return _Failure(
                f"read timeout waiting for response headers ({config.read_timeout:g} s)", retryable=True
            )
        return _Failure(
            f"read timeout ({config.read_timeout:g} s) after {progress.received} bytes of body",
            retryable=True,
        )
    if isinstance(exc, httpx.TimeoutException):
        return _Failure(f"timeout: {text}", retryable=True)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return _Failure(f"unsupported URL: {text}")
    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc, url, text)
    if isinstance(exc, httpx.RemoteProtocolError):
        if progress.has_headers and progress.expected is not None and progress.received < progress.expected:
            return _Failure(
                f"truncated body: {progress.received} of {progress.expected} bytes", retryable=True
            )
        if progress.has_headers:
            return _Failure(
                f"truncated body: connection closed after {progress.received} bytes ({text})", retryable=True
            )
        return _Failure(f"HTTP protocol error: {text}", retryable=True)
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        causes = _causes(exc)
        is_reset = any(isinstance(c, (ConnectionResetError, BrokenPipeError)) for c in causes)
        if is_reset or "reset" in text.lower() or not str(exc).strip():
            where = f" after {progress.received} bytes of body" if progress.has_headers else ""
            return _Failure(f"connection reset{where}", retryable=True)
        return _Failure(f"network error: {text}", retryable=True)
    if isinstance(exc, httpx.InvalidURL):
        return _Failure(f"invalid URL: {text}")
    return _Failure(f"{type(exc).__name__}: {text}", retryable=True)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it was raised from (httpx -> httpcore -> anyio -> OSError)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _connect_failure(exc: httpx.ConnectError, url: str, text: str) -> _Failure:
    causes = _causes(exc)
    lowered = text.lower()
    if any(isinstance(c, ssl.SSLError) for c in causes) or "certificate" in lowered or "ssl" in lowered:
        tls = next((c for c in causes if isinstance(c, ssl.SSLError)), exc)
        return _Failure(f"TLS: {getattr(tls, 'reason', None) or tls}")  # never retried insecurely
    if any(isinstance(c, ConnectionRefusedError) or _errno(c) == errno.ECONNREFUSED for c in causes):
        return _Failure("connection refused", retryable=True)
    if (
        "name or service not known" in lowered
        or "nodename nor servname" in lowered
        or "getaddrinfo" in lowered
    ):
        return _Failure(f"DNS lookup failed for {urlsplit(url).hostname}", retryable=True)
    return _Failure(f"connect error: {text}", retryable=True)


def _errno(exc: BaseException | None) -> int | None:
    return exc.errno if isinstance(exc, OSError) else None
