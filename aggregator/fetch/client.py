"""Fetches sources over HTTP (one httpx.AsyncClient per run) and from local files; must not parse bodies.

Per source: is it due (schedule.py)? -> wait for a host slot, the host's minimum delay, then a global
slot -> send (manual redirects, each hop checked) -> read the raw body through a bounded decoder ->
classify the status -> retry within the run when that helps -> new SourceState. Deadlines start only
once a request holds its slots: time spent queued never counts (issue 8).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx

from .. import PROJECT_URL, __version__
from ..model import FetchConfig, Source
from . import schedule
from .aiohttp_backend import make_transport
from .body import ACCEPT_ENCODING
from .budget import Host, HostBackedOff, Run
from .exchange import REDIRECT_STATUSES, Failure, Response, send_following_redirects
from .state import SourceState
from .transport import Client

Kind = Literal["fetched", "not_modified", "unchanged", "not_due", "failed", "gone"]

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
RATE_LIMIT_STATUSES = {429, 503}
RETRY_STATUSES = {408, 425, 500, 502, 504} | RATE_LIMIT_STATUSES


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
    size: int = 0  # bytes of the body as received (kept when `body` is handed on and dropped here)


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
    admit: Callable[[Source], Awaitable[None]] | None = None,
    rng: random.Random | None = None,
    retry_base_s: float = 1.0,
) -> list[FetchOutcome]:
    """Fetches every due source concurrently; one outcome per source, in source order.

    `states` is keyed by Source.url. `admit`, when given, is awaited before each source's fetch (the
    caller's backpressure: it returns once there is room for another body). `rng` makes jitter
    reproducible in tests; `retry_base_s` is the first in-run retry delay (doubled per retry, jittered).
    """
    outcomes: list[FetchOutcome | None] = [None] * len(sources)
    run_rng = rng or random.Random()

    def finish(i: int, outcome: FetchOutcome) -> None:
        if on_outcome is None:
            outcomes[i] = outcome
            return
        # The caller consumes bodies as they come: keeping them here too would hold every body of
        # the run in memory until the last source is done (126 MB at 1,000 sources).
        outcomes[i] = replace(outcome, body=b"") if outcome.body else outcome
        on_outcome(outcome)

    client = make_client(config)
    async with client:
        run = Run(client, config, now, run_rng, retry_base_s)
        try:
            async with asyncio.timeout(config.run_deadline):
                async with asyncio.TaskGroup() as group:
                    for i, source in enumerate(sources):
                        state = states.get(source.url, SourceState())
                        group.create_task(_fetch_and_report(run, i, source, state, force, retry_gone, finish,
                                                            admit))
        except TimeoutError:
            pass  # sources still running are reported below
    for i, source in enumerate(sources):
        if outcomes[i] is None:
            state = states.get(source.url, SourceState())
            error = f"not finished: run deadline ({config.run_deadline:g} s) reached"
            finish(i, FetchOutcome(source, "failed", replace(state, last_error=error), error=error))
    return [o for o in outcomes if o is not None]


async def _fetch_and_report(
    run: Run,
    i: int,
    source: Source,
    state: SourceState,
    force: bool,
    retry_gone: bool,
    finish: Callable[[int, FetchOutcome], None],
    admit: Callable[[Source], Awaitable[None]] | None = None,
) -> None:
    if admit is not None:
        await admit(source)
    try:
        outcome = await fetch_source(run, source, state, force=force, retry_gone=retry_gone)
    except Exception as exc:  # noqa: BLE001 (a bug must not stop the other sources; the message says it is one)
        error = f"internal error: {type(exc).__name__}: {exc}"
        outcome = FetchOutcome(source, "failed", replace(state, last_error=error), error=error)
    finish(i, outcome)


def make_client(config: FetchConfig) -> Client:
    """One client per run. Our semaphores bound the requests in flight before httpx sees them, so
    no pool ever queues; aiohttp keys its connection pool by host itself."""
    transport = make_transport(config.per_host, allow_private_addresses=config.allow_private_addresses)
    timeout = httpx.Timeout(
        connect=config.connect_timeout, read=config.read_timeout, write=config.read_timeout, pool=None
    )
    # trust_env=False: a proxy from the environment would bypass the private-address check.
    return Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


async def fetch_source(
    run: Run, source: Source, state: SourceState, *, force: bool = False, retry_gone: bool = False
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


def _read_local(run: Run, source: Source, state: SourceState) -> FetchOutcome:
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


async def _fetch_http(run: Run, source: Source, state: SourceState) -> FetchOutcome:
    config, now = run.config, run.now
    interval = schedule.source_interval(source, config)
    url = state.moved_to or source.url
    headers = _request_headers(source, state, config)
    is_conditional = bool(state.etag or state.last_modified)
    failure: Failure | None = None
    for attempt in range(max(config.retries, 0) + 1):
        if attempt:
            await asyncio.sleep(_retry_delay(run, attempt, failure))
        try:
            response = await send_following_redirects(run, url, headers, source)
            return _classify(run, source, state, response, is_conditional, interval)
        except HostBackedOff:
            return _host_backed_off(source, state, run.host(url), url)
        except Failure as exc:
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


def _retry_delay(run: Run, attempt: int, failure: Failure | None) -> float:
    if failure is not None and failure.retry_after_s is not None:
        return failure.retry_after_s  # already known to be within retry_after_cap
    return run.retry_base_s * (2.0 ** (attempt - 1)) * (1.0 + run.rng.random())


def _host_backed_off(source: Source, state: SourceState, host: Host, url: str) -> FetchOutcome:
    until = host.backoff_until
    state = replace(state, retry_after_until=until, next_due=until)
    when = until.isoformat(timespec="seconds") if until else "later"
    error = f"not fetched: host {urlsplit(url).hostname} is rate-limiting ({len(host.limited_routes)} routes got 429/503); next try after {when}"
    return FetchOutcome(source, "not_due", state, error=error)


def _classify(
    run: Run, source: Source, state: SourceState, response: Response, is_conditional: bool, interval: int
) -> FetchOutcome:
    """Turns a final (non-redirect) response into an outcome; raises Failure for retryable statuses."""
    config, now = run.config, run.now
    status = response.status
    if status in RETRY_STATUSES:
        retry_after = schedule.parse_retry_after(response.headers.get("retry-after"), now)
        message = f"HTTP {status}" + (f", retry after {retry_after:g} s" if retry_after is not None else "")
        raise Failure(message, retryable=True, status=status, retry_after_s=retry_after)
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
        return FetchOutcome(source, "unchanged", state, headers=headers, final_url=final_url, size=len(body))
    # Success is recorded by reschedule_after_parse once the body parsed; until then the next
    # due time is the plain interval, so a pipeline that stops here still polls politely.
    delay = schedule.success_delay_s(interval, state.feed_ttl_s, headers, config, now)
    state = replace(state, body_hash=digest, next_due=now + timedelta(seconds=delay), retry_after_until=None)
    return FetchOutcome(source, "fetched", state, body=body, headers=headers, final_url=final_url, size=len(body))


def _remember_validators(state: SourceState, headers: Mapping[str, str]) -> SourceState:
    etag = headers.get("etag", state.etag)
    last_modified = headers.get("last-modified", state.last_modified)
    if etag == state.etag and last_modified == state.last_modified:
        return state  # a 304's usual case
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
