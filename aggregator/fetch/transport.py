"""The run's HTTP client: httpx's API over aiohttp's connection pool (httpx-aiohttp); owns connections, nothing else.

Why aiohttp under httpx: bench/fetch_cost.py, 1,000 loopback GETs at concurrency 100, 3 alternated
reps: httpx's own pool (one per host) 0.58-0.70 s of CPU, aiohttp 0.28-0.38 s, for 200s and 304s
alike (bench/RESULTS.md). httpx stays the API the fetch stage is written against.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle costs ~40-140 ms; once per process is enough."""
    return httpx.create_ssl_context()


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
