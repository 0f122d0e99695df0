"""The run's HTTP client: httpx's API over aiohttp's connection pool (httpx-aiohttp); owns connections, nothing else.

Why aiohttp under httpx: measured with bench/fetch_cost.py, aiohttp's pool spends far less CPU per
request than httpx's own, for 200s and 304s alike (bench/RESULTS.md). httpx stays the API the fetch
stage is written against.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle is slow; once per process is enough."""
    return httpx.create_ssl_context()


class _CookiesFromSetCookie(httpx.Cookies):
    """httpx hands every response to the standard library's cookie jar, which builds a urllib request
    for it: a run of sources answering 304 paid that once a source for nothing."""

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
        handling, event hooks), which cost CPU on every request (bench/RESULTS.md).
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
