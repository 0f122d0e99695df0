"""An httpx transport with one small connection pool per host; owns connection reuse, nothing else.

httpcore's pool scans all its connections and queued requests on every request and every
response close (httpx issue #3215), so one pool holding an idle connection for each of 100 hosts
cost ~11 ms CPU per request here; a pool per host keeps every scan O(per_host).
"""

from __future__ import annotations

import functools
import importlib.util
import ssl
from typing import Any

import httpx

from ..model import FetchConfig
from .safety import GuardedBackend


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle costs ~40-140 ms; once per process is enough."""
    return httpx.create_ssl_context()


def origin_key(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.host.lower()}:{url.port or ''}"


@functools.lru_cache(maxsize=8192)
def origin_of(url: str) -> str:
    """origin_key of a URL string; cached, since httpx's URL parser costs ~0.3 ms."""
    return origin_key(httpx.URL(url))


class PerHostTransport(httpx.AsyncBaseTransport):
    def __init__(
        self, per_host: int, *, allow_private_addresses: bool, keepalive_expiry: float = 30.0
    ) -> None:
        self._limits = httpx.Limits(
            max_connections=max(per_host, 1),
            max_keepalive_connections=max(per_host, 1),
            keepalive_expiry=keepalive_expiry,
        )
        self._is_guarded = not allow_private_addresses
        self._pools: dict[str, httpx.AsyncHTTPTransport] = {}

    def _pool(self, key: str) -> httpx.AsyncHTTPTransport:
        pool = self._pools.get(key)
        if pool is None:
            pool = httpx.AsyncHTTPTransport(verify=shared_ssl_context(), limits=self._limits, retries=0)
            if self._is_guarded:
                inner = pool._pool  # httpx exposes no network_backend argument; httpcore's pool has one
                inner._network_backend = GuardedBackend(inner._network_backend)
            self._pools[key] = pool
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool(origin_key(request.url)).handle_async_request(request)

    async def release(self, keys: set[str]) -> None:
        """Closes the pools of origins this run will not request again (bounded file descriptors)."""
        for key in keys:
            pool = self._pools.pop(key, None)
            if pool is not None:
                await pool.aclose()

    @property
    def origins(self) -> set[str]:
        return set(self._pools)

    async def aclose(self) -> None:
        await self.release(set(self._pools))


def uses_aiohttp(config: FetchConfig) -> bool:
    """Which transport a run uses: fetch.http_backend, "auto" meaning aiohttp when installed."""
    if config.http_backend == "httpx":
        return False
    if config.http_backend == "aiohttp":
        return True
    return importlib.util.find_spec("httpx_aiohttp") is not None


class _CookiesFromSetCookie(httpx.Cookies):
    """httpx hands every response to the standard library's cookie jar, which builds a urllib request
    for it (~50 µs): a run of 1,000 sources answering 304 paid that 1,000 times for nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class Client(httpx.AsyncClient):
    """An AsyncClient whose cookie jar skips responses that set no cookie, with a lean GET (stream)."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._sender = transport  # our own handle: httpx keeps its copy in a private attribute
        self._jar = _CookiesFromSetCookie(super().cookies)
        self._extensions = {"timeout": self.timeout.as_dict()}

    async def stream_get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        """What `send(build_request("GET", url, headers=headers), stream=True)` does for a run's
        requests, without the layers they never use (default-header merging, auth flow, redirect
        handling, event hooks): 0.44 vs 0.70 s of CPU for 1,000 requests (bench/RESULTS.md).
        The response returns once its headers are in; the caller reads and closes it."""
        request = httpx.Request("GET", url, headers=headers, extensions=self._extensions)
        if self._jar:
            self._jar.set_cookie_header(request)
        response = await self._sender.handle_async_request(request)
        response.request = request
        self._jar.extract_cookies(response)
        return response

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:
        self._jar = _CookiesFromSetCookie(cookies)
