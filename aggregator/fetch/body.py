"""Decodes Content-Encoding with a hard bound on the decoded size; owns no networking."""

from __future__ import annotations

import zlib
from typing import Protocol

# Only what we can inflate with a max_length bound (the zlib module). brotli's Python binding has no
# output bound in the versions we can rely on, so 'br' is neither advertised nor accepted.
ACCEPT_ENCODING = "gzip, deflate"


class BodyTooLarge(Exception):
    """The decoded body passed the cap."""


class UndecodableBody(Exception):
    """The Content-Encoding is unknown or the bytes do not match it."""


class _Layer(Protocol):
    def feed(self, data: bytes, limit: int) -> bytes: ...
    def finish(self) -> None: ...


class _Zlib:
    """gzip (possibly multi-member) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._wbits = 16 + zlib.MAX_WBITS if name == "gzip" else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes, limit: int) -> bytes:
        out = b""
        while data:
            if self._obj.eof:
                if self._name != "gzip":
                    return out  # trailing garbage after a deflate stream: ignored, as browsers do
                self._obj = zlib.decompressobj(self._wbits)  # next gzip member
            try:
                chunk = self._obj.decompress(data, max(limit - len(out), 1))
            except zlib.error as exc:
                if self._name == "deflate" and not self._started:
                    self._wbits = -zlib.MAX_WBITS
                    self._obj = zlib.decompressobj(self._wbits)
                    self._started = True
                    continue
                raise UndecodableBody(f"undecodable content-encoding ({self._name}): {exc}") from exc
            self._started = True
            out += chunk
            if len(out) >= limit:
                return out  # the caller sees the cap passed
            data = self._obj.unused_data if self._obj.eof else b""
        return out

    def finish(self) -> None:
        if self._started and not self._obj.eof:
            raise UndecodableBody(f"truncated {self._name} stream")


def _make_layer(token: str) -> _Layer | None:
    if token in ("gzip", "x-gzip"):
        return _Zlib("gzip")
    if token == "deflate":
        return _Zlib("deflate")
    if token in ("identity", ""):
        return None
    raise UndecodableBody(f"undecodable content-encoding {token!r}")


class BoundedDecoder:
    """Feed raw bytes, get decoded bytes; raises BodyTooLarge as soon as any layer passes `cap` bytes,
    so a gzip bomb costs at most about `cap` bytes of memory."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        tokens = [t.strip().lower() for t in content_encoding.split(",")]
        # Encodings are listed in the order applied, so they are undone in reverse.
        self._layers = [layer for layer in (_make_layer(t) for t in reversed(tokens)) if layer is not None]
        self._cap = cap
        self._sizes = [0] * (len(self._layers) + 1)

    def feed(self, data: bytes) -> bytes:
        for i, layer in enumerate(self._layers):
            data = layer.feed(data, self._cap - self._sizes[i] + 1)
            self._count(i, data)
        self._count(len(self._layers), data if not self._layers else b"")
        return data

    def finish(self) -> None:
        for layer in self._layers:
            layer.finish()

    def _count(self, i: int, data: bytes) -> None:
        self._sizes[i] += len(data)
        if self._sizes[i] > self._cap:
            raise BodyTooLarge(f"body larger than {_size(self._cap)} after decompression")


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"
