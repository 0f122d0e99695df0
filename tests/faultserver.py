"""A loopback HTTP/1.1 server on raw sockets that can misbehave on purpose (FAULTS.md), recording every request."""

from __future__ import annotations

import gzip
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    at: float  # time.monotonic() when the request line arrived
    port: int


Handler = Callable[["Conn", Request], bool]  # returns True to keep the connection open


@dataclass
class Conn:
    sock: socket.socket
    stop: threading.Event

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def head(self, status: int, headers: dict[str, str] | None = None, reason: str = "X") -> None:
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def wait(self, seconds: float) -> None:
        """Sleeps, but wakes at once when the server shuts down."""
        self.stop.wait(seconds)

    def reset(self) -> None:
        """Close with RST (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def reply(status: int = 200, headers: dict[str, str] | None = None, body: bytes = b"") -> Handler:
    def handle(conn: Conn, request: Request) -> bool:
        all_headers = {"Content-Length": str(len(body)), **(headers or {})}
        conn.head(status, all_headers)
        conn.send(body)
        return True

    return handle


def sequence(*handlers: Handler) -> Handler:
    """Each request gets the next handler; the last one repeats."""
    calls = iter(range(10**9))

    def handle(conn: Conn, request: Request) -> bool:
        return handlers[min(next(calls), len(handlers) - 1)](conn, request)

    return handle


def gzip_bomb(decoded_size: int) -> bytes:
    out = bytearray()
    zeros = bytes(1024 * 1024)
    compressor = gzip.GzipFile(fileobj=_Sink(out), mode="wb", compresslevel=9)
    for _ in range(decoded_size // len(zeros)):
        compressor.write(zeros)
    compressor.close()
    return bytes(out)


class _Sink:
    def __init__(self, out: bytearray) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        self.out += data
        return len(data)

    def flush(self) -> None:
        pass


class FaultServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        super().__init__((host, 0), _Handler)
        self.host = host
        self.tls = tls
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    def hits(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


class _Handler(socketserver.BaseRequestHandler):
    server: FaultServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        if self.server.tls is not None:
            try:
                sock = self.server.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                return
        buffer = b""
        while not self.server.stop.is_set():
            while b"\r\n\r\n" not in buffer:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            request = Request(method, path, headers, time.monotonic(), self.server.port)
            with self.server.lock:
                self.server.requests.append(request)
                self.server.in_flight += 1
                self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
            handler = self.server.routes.get(path, reply(404, {"Content-Type": "text/plain"}, b"not found"))
            try:
                keep_open = handler(Conn(sock, self.server.stop), request)
            except OSError:
                return
            finally:
                with self.server.lock:
                    self.server.in_flight -= 1
            if not keep_open:
                try:
                    sock.close()
                except OSError:
                    pass
                return


def serve(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[FaultServer]:
    """A running FaultServer; shut down (and every sleeping handler woken) when the generator closes."""
    server = FaultServer(host, tls)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.stop.set()
    server.shutdown()
    server.server_close()
