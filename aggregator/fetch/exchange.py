"""One request with redirects followed by hand, its body read through the bounded decoder, and every
library error turned into a one-line Failure; decides nothing about schedules."""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from ..model import FetchConfig, Source
from .aiohttp_backend import describe_aiohttp_error
from .body import BodyTooLarge, BoundedDecoder, UndecodableBody
from .budget import Run
from .safety import BlockedAddressError, DnsLookupError
from .transport import Client

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
PERMANENT_STATUSES = {301, 308}
DRAIN_LIMIT = 64 * 1024  # a non-2xx body up to this size is read (and dropped) to keep the connection


class Failure(Exception):
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
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    final_url: str
    permanent_target: str  # where the leading 301/308 hops led, "" when the first hop was not permanent


@dataclass
class Progress:
    """What one exchange got so far, for error messages."""

    has_headers: bool = False
    received: int = 0
    expected: int | None = None


# --- one request, redirects followed by hand --------------------------------------------------------


async def send_following_redirects(run: Run, url: str, headers: dict[str, str], source: Source) -> Response:
    config = run.config
    budget = float(config.total_timeout)
    seen = {url}
    permanent_target = ""
    is_permanent_so_far = True
    _check_url(url, 0)
    origin = _origin(url)
    for hop in range(config.max_redirects + 1):
        hop_headers = headers if _origin(url) == origin else _cross_origin(headers, source)
        async with run.slot(url) as mark_answered:
            started = time.monotonic()
            try:
                response = await _exchange(run, url, hop_headers, budget, hop, mark_answered)
            finally:
                budget -= time.monotonic() - started
        location = response.headers.get("location")
        if response.status not in REDIRECT_STATUSES or not location:
            response.permanent_target = permanent_target
            return response
        target = _check_url(location.strip(), hop + 1, base=url)
        if response.status in PERMANENT_STATUSES and is_permanent_so_far:
            permanent_target = target
        else:
            is_permanent_so_far = False
        if target in seen:
            raise Failure(f"redirect loop: {target} seen twice")
        if hop + 1 > config.max_redirects:
            raise Failure(f"too many redirects ({hop + 1}), last: {target}")
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


def _check_url(url: str, hop: int, base: str = "") -> str:
    """The URL (joined to `base`) when it is a well-formed http(s) URL; a Failure naming it otherwise."""
    try:
        url = urljoin(base, url) if base else url
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        (parts.hostname or "").encode("idna")  # UnicodeError (a ValueError) for an empty or too long label
    except ValueError as exc:  # a malformed IPv6 literal, a bad port or host name: this source's error, not a bug
        raise Failure(f"{'redirect to ' if hop else ''}invalid URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        what = "redirect to" if hop else "URL with"
        raise Failure(f"{what} disallowed scheme {scheme!r}")
    return url


async def _exchange(
    run: Run, url: str, headers: dict[str, str], budget: float, hop: int, mark_answered: Callable[[], None]
) -> Response:
    """One request and its body, inside the total deadline; every library error becomes a Failure."""
    progress = Progress()
    config = run.config
    try:
        async with asyncio.timeout(max(budget, 0.0)):
            return await _send_and_read(run.client, url, headers, config.max_body, progress, mark_answered)
    except TimeoutError as exc:
        if not progress.has_headers:
            message = f"deadline {config.total_timeout:g} s exceeded waiting for response headers"
        else:
            message = f"deadline {config.total_timeout:g} s exceeded, {progress.received} bytes received"
        raise Failure(message, retryable=True) from exc
    except (BodyTooLarge, UndecodableBody) as exc:
        raise Failure(str(exc)) from exc
    except BlockedAddressError as exc:
        prefix = "redirect target " if hop else ""
        raise Failure(f"{prefix}{exc}") from exc
    except DnsLookupError as exc:
        raise Failure(str(exc), retryable=True) from exc
    except httpx.InvalidURL as exc:  # a host spelling httpx refuses (0177.0.0.1): this source's error, not a bug
        prefix = "redirect target: " if hop else ""
        raise Failure(f"{prefix}invalid URL: {exc}") from exc
    except httpx.HTTPError as exc:
        raise map_httpx_error(exc, url, progress, config) from exc


async def _send_and_read(
    client: Client,
    url: str,
    headers: dict[str, str],
    max_body: int,
    progress: Progress,
    mark_answered: Callable[[], None],
) -> Response:
    response = await client.stream_get(url, headers)  # returns once the response headers are in
    mark_answered()
    try:
        progress.has_headers = True
        status = response.status_code
        response_headers = {k.lower(): v for k, v in response.headers.items()}
        body = b""
        if 200 <= status < 300:
            body = await _read_body(response, response_headers, max_body, progress)
        else:
            await _drain(response)
        return Response(status, response_headers, body, str(response.url), "")
    finally:
        await response.aclose()


async def _read_body(
    response: httpx.Response, headers: Mapping[str, str], max_body: int, progress: Progress
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


def map_httpx_error(exc: httpx.HTTPError, url: str, progress: Progress, config: FetchConfig) -> Failure:
    """Each library error as one line with the step and the numbers (FAULTS.md)."""
    text = str(exc) or type(exc).__name__
    described = describe_aiohttp_error(
        exc,
        has_headers=progress.has_headers,
        received=progress.received,
        expected=progress.expected,
        connect_s=config.connect_timeout,
        read_s=config.read_timeout,
    )
    if described is not None:
        return Failure(described[0], retryable=described[1])
    if isinstance(exc, httpx.ConnectTimeout):
        return Failure(f"connect timeout after {config.connect_timeout:g} s", retryable=True)
    if isinstance(exc, httpx.ReadTimeout):
        if not progress.has_headers:
            return Failure(
                f"read timeout waiting for response headers ({config.read_timeout:g} s)", retryable=True
            )
        return Failure(
            f"read timeout ({config.read_timeout:g} s) after {progress.received} bytes of body",
            retryable=True,
        )
    if isinstance(exc, httpx.TimeoutException):
        return Failure(f"timeout: {text}", retryable=True)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Failure(f"unsupported URL: {text}")
    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc, url, text)
    if isinstance(exc, httpx.RemoteProtocolError):
        if progress.has_headers and progress.expected is not None and progress.received < progress.expected:
            return Failure(
                f"truncated body: {progress.received} of {progress.expected} bytes", retryable=True
            )
        if progress.has_headers:
            return Failure(
                f"truncated body: connection closed after {progress.received} bytes ({text})", retryable=True
            )
        return Failure(f"HTTP protocol error: {text}", retryable=True)
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        causes = _causes(exc)
        is_reset = any(isinstance(c, (ConnectionResetError, BrokenPipeError)) for c in causes)
        if is_reset or "reset" in text.lower() or not str(exc).strip():
            where = f" after {progress.received} bytes of body" if progress.has_headers else ""
            return Failure(f"connection reset{where}", retryable=True)
        return Failure(f"network error: {text}", retryable=True)
    if isinstance(exc, httpx.InvalidURL):
        return Failure(f"invalid URL: {text}")
    return Failure(f"{type(exc).__name__}: {text}", retryable=True)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it was raised from (httpx -> httpcore -> anyio -> OSError)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _connect_failure(exc: httpx.ConnectError, url: str, text: str) -> Failure:
    causes = _causes(exc)
    lowered = text.lower()
    if any(isinstance(c, ssl.SSLError) for c in causes) or "certificate" in lowered or "ssl" in lowered:
        tls = next((c for c in causes if isinstance(c, ssl.SSLError)), exc)
        return Failure(f"TLS: {getattr(tls, 'reason', None) or tls}")  # never retried insecurely
    if any(isinstance(c, ConnectionRefusedError) or _errno(c) == errno.ECONNREFUSED for c in causes):
        return Failure("connection refused", retryable=True)
    if (
        "name or service not known" in lowered
        or "nodename nor servname" in lowered
        or "getaddrinfo" in lowered
    ):
        return Failure(f"DNS lookup failed for {urlsplit(url).hostname}", retryable=True)
    return Failure(f"connect error: {text}", retryable=True)


def _errno(exc: BaseException | None) -> int | None:
    return exc.errno if isinstance(exc, OSError) else None
