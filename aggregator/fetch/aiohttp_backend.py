"""The aiohttp transport under httpx (httpx-aiohttp): less CPU per request than httpx's own pool.

Owns only the transport, its private-address resolver and the mapping of aiohttp errors to
one-line reasons; the client logic above it speaks httpx (transport.py says why this stack).
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

from . import safety
from .safety import BlockedAddressError, resolve_public
from .transport import shared_ssl_context


class GuardedResolver(AbstractResolver):
    """aiohttp connects to what the resolver returns, so checking here checks the connected address."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_public(host, port)  # raises for any non-public address
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


class GuardedAiohttpTransport(AiohttpTransport):
    """aiohttp skips the resolver for IP literals, so those are checked here."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and not safety.is_public_address(ip):
            raise BlockedAddressError(f"{host} resolves to non-public address {ip}")
        return await super().handle_async_request(request)


def make_transport(per_host: int, *, allow_private_addresses: bool) -> AiohttpTransport:
    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0,  # our semaphores bound what is in flight
            limit_per_host=max(per_host, 1),
            ssl=shared_ssl_context(),
            keepalive_timeout=5.0,  # idle connections are file descriptors; a run over 1,000 hosts adds up
            resolver=None if allow_private_addresses else GuardedResolver(),
            enable_cleanup_closed=False,
        )
        return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)

    # verify: the transport builds an SSL context of its own (loading the CAs again) unless given ours
    if allow_private_addresses:
        return AiohttpTransport(client=session, verify=shared_ssl_context())
    return GuardedAiohttpTransport(client=session, verify=shared_ssl_context())


def describe_aiohttp_error(
    exc: BaseException,
    *,
    has_headers: bool,
    received: int,
    expected: int | None,
    connect_s: float,
    read_s: float,
) -> tuple[str, bool] | None:
    """(one-line reason, retryable) for an aiohttp error under an httpx one; None when there is none."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, aiohttp.ClientError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    if isinstance(cause, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return f"TLS: {cause}", False
    return _describe(cause, has_headers, received, expected, connect_s, read_s), True


def _describe(
    cause: aiohttp.ClientError,
    has_headers: bool,
    received: int,
    expected: int | None,
    connect_s: float,
    read_s: float,
) -> str:
    if isinstance(cause, aiohttp.InvalidURL):
        return f"invalid URL: {cause}"
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return f"connect timeout after {connect_s:g} s"
    if isinstance(cause, aiohttp.SocketTimeoutError):
        if not has_headers:
            return f"read timeout waiting for response headers ({read_s:g} s)"
        return f"read timeout ({read_s:g} s) after {received} bytes of body"
    if isinstance(cause, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed for {cause.host}"
    if isinstance(cause, aiohttp.ClientConnectorError):
        if isinstance(cause.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"connect error: {cause.os_error}"
    if isinstance(cause, aiohttp.ClientPayloadError) or (
        has_headers and isinstance(cause, aiohttp.ServerDisconnectedError)
    ):
        if expected is not None and received < expected:
            return f"truncated body: {received} of {expected} bytes"
        return f"truncated body: connection closed after {received} bytes"
    if isinstance(cause, (aiohttp.ClientConnectionResetError, aiohttp.ServerDisconnectedError)):
        return "connection reset" + (f" after {received} bytes of body" if has_headers else "")
    if isinstance(cause, aiohttp.ClientOSError) and isinstance(
        cause.__cause__ or cause, ConnectionResetError
    ):
        return "connection reset"
    if isinstance(cause, aiohttp.ClientResponseError):
        return f"HTTP protocol error: {cause.message}"
    return f"{type(cause).__name__}: {cause}"
