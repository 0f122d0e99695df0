"""URL helpers for cleaning: resolve against a base, upgrade protocol-relative, strip tracking parameters; no I/O."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

_SAFE_SCHEMES = ("http", "https", "mailto")
_UNSAFE = re.compile(r"[\x00-\x20\\]")


@lru_cache(maxsize=2048)  # pure; the same URLs recur across a feed's items and passes (more only held memory)
def resolve_url(url: str, base: str) -> str:
    """An absolute URL for `url` seen on a page at `base`; '' when it cannot be made absolute and safe."""
    if url.startswith(("https://", "http://")) and not _UNSAFE.search(url):
        return url  # the common case, already absolute
    url = re.sub(r"[\t\n\r]", "", url).strip()
    if not url:
        return ""
    if url.startswith("//"):
        return "https:" + url
    if url[0] == "/" and "/." not in url and "#" not in url and ";" not in url and url[-1] != "?":
        origin = _origin(base)
        if origin:  # a root-relative path on a plain base: what urljoin gives, without its parsing
            return origin + url
    try:
        scheme = urlsplit(url).scheme.lower()
        if scheme:
            return url if scheme in _SAFE_SCHEMES else ""
        if not base or urlsplit(base).scheme.lower() not in ("http", "https"):
            return ""
        absolute = urljoin(base, url)
    except ValueError:
        return ""
    return absolute if urlsplit(absolute).scheme.lower() in ("http", "https") else ""


@lru_cache(maxsize=256)
def _origin(base: str) -> str:
    """scheme://netloc of an http(s) base with a plain ASCII netloc, as urljoin would keep them; ''
    for any other base (urljoin decides)."""
    span = _authority(base)
    if span is None:
        return ""
    netloc = base[span[0]:span[1]]
    if not netloc or not netloc.isascii() or not netloc.isprintable() or any(c in netloc for c in " []\\"):
        return ""
    return base[:span[1]]


def first_base(*candidates: str) -> str:
    """The first absolute http(s) URL among candidates (xml:base, item link, feed link)."""
    for candidate in candidates:
        if candidate and resolve_url(candidate, "") and not candidate.startswith("mailto:"):
            return resolve_url(candidate, "")
    return ""


_SIMPLE_NETLOC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~%!$&'()*+,;=:-]*")


def fast_host_path(url: str) -> tuple[str, str] | None:
    """(hostname, path) as urlsplit gives them, for the common simple URL: lower-case http(s) scheme,
    printable ASCII, a netloc without userinfo or brackets that starts with a letter or digit.
    None for anything else: callers then ask urlsplit."""
    span = _authority(url)
    if span is None or not url.isascii() or not url.isprintable() or " " in url or "\\" in url:
        return None
    netloc = url[span[0]:span[1]]
    if not _SIMPLE_NETLOC.fullmatch(netloc):
        return None
    path = url[span[1]:].partition("#")[0].partition("?")[0]
    return netloc.partition(":")[0].lower(), path


def _authority(url: str) -> tuple[int, int] | None:
    """Where the netloc of a lower-case http(s) URL starts and ends (urlsplit's split: at the first
    '/', '?' or '#' after the scheme); None for any other URL."""
    if url.startswith("https://"):
        start = 8
    elif url.startswith("http://"):
        start = 7
    else:
        return None
    end = len(url)
    for stop in "/?#":
        i = url.find(stop, start)
        if i != -1 and i < end:
            end = i
    return start, end


@lru_cache(maxsize=2048)
def host_of(url: str) -> str:
    fast = fast_host_path(url)
    if fast is not None:
        return fast[0]
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
