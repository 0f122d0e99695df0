"""Source URL rules: which strings are fetchable http(s) URLs, which are local paths; fetches and reads nothing.

A host must have one meaning to every library that sees it (issue 19): `127.1`, `0177.0.0.1` and
`0x7f.0.0.1` are 127.0.0.1 to inet_aton, a DNS name to some parsers and an error to httpx, so only
four decimal numbers count as an IPv4 address; a trailing dot (`example.org.`) is another spelling
of the same host with its own cookies and certificates, so it is refused too. Schemes are
case-insensitive (RFC 3986 3.1): `HTTP://` is written back as `http://` so no stage reads it as a path.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import unquote, urlsplit

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$")
_NUMBER = re.compile(r"^(?:0[xX][0-9A-Fa-f]*|[0-9]+)$")  # a label that makes the host an IPv4 address
_DECIMAL_OCTET = re.compile(r"^(?:0|[1-9][0-9]{0,2})$")
# a scheme-less value that starts with a host name and a path, query or port: "example.org/feed"
_HOSTLIKE = re.compile(r"^(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}(?::[0-9]+)?[/?]")


def scheme_of(value: str) -> str:
    """The URL scheme, lower-cased; "" when the value has none (a path, or a 'c:' drive letter)."""
    match = _SCHEME.match(value)
    return match.group(1).lower() if match and len(match.group(1)) > 1 else ""


def checked_http_url(url: str) -> str:
    """The URL with its scheme lower-cased, or ValueError saying why it can never be fetched."""
    scheme = scheme_of(url)
    url = scheme + url[len(scheme):]
    if re.search(r"[\x00-\x20\x7f]", url):
        raise ValueError(f"URL contains a space or control character: {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"malformed URL {url!r}: {exc}") from None
    if "\\" in parts.netloc:
        raise ValueError(f"backslash in the URL's host part (libraries split it differently): {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    if port == 0:
        raise ValueError(f"port 0 cannot be connected to: {url!r}")
    problem = _host_problem(host, is_bracketed="[" in parts.netloc)
    if problem:
        raise ValueError(f"{problem}: {url!r}")
    import httpx  # the fetcher's own parser has the last word (IDNA rules for non-ASCII names)

    try:
        httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ValueError(f"malformed URL {url!r}: {exc}") from None
    return url


def _host_problem(host: str, *, is_bracketed: bool) -> str:
    if is_bracketed:
        try:
            ipaddress.IPv6Address(unquote(host))
        except ValueError:
            return f"host [{host}] is not an IPv6 address"
        return ""
    if host.endswith("."):
        return f"host {host!r} ends with a dot: write {host.rstrip('.')!r}"
    labels = host.split(".")
    if _NUMBER.match(labels[-1]):  # WHATWG URL: a numeric last label makes the host an IPv4 address
        if len(labels) == 4 and all(_DECIMAL_OCTET.match(p) and int(p) <= 255 for p in labels):
            return ""
        try:
            meant = f" (inet_aton reads {socket.inet_ntoa(socket.inet_aton(host))})"
        except OSError:
            meant = ""
        return (f"host {host!r} is not four decimal numbers{meant}: write the address that way (short, "
                "octal and hex forms mean different hosts to different libraries)")
    if len(host) > 253 or not all(len(label) <= 63 for label in labels):
        return f"host {host!r} is longer than DNS allows"
    if not all(label and (_LABEL.match(label) or not label.isascii()) for label in labels):
        return f"host {host!r} is not a valid host name"
    return ""


def looks_like_a_host(path: str) -> bool:
    """A scheme-less value that reads as a host and a path ("example.org/feed.xml", not "feed.xml")."""
    return bool(_HOSTLIKE.match(path))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_identity(url: str) -> str:
    """What two spellings of one feed's address share: scheme (http and https alike), host case, a default
    port, an empty path and a fragment left out. `add` refuses a URL whose identity is already configured."""
    try:
        parsed = urlsplit(checked_http_url(url))
        port = parsed.port
    except ValueError:
        return url
    host = parsed.hostname or ""  # lower case
    if not host.isascii():
        try:  # one spelling of a non-ASCII name: its IDNA form, as the fetcher sends it
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS.get(parsed.scheme)) else f"{host}:{port}"
    query = f"?{parsed.query}" if parsed.query else ""
    return f"{netloc}{parsed.path or '/'}{query}"
