"""Shared fixtures: paths to the test corpus (tests/corpus, see its MANIFEST.tsv) and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pg
import pytest
from hypothesis import settings

from aggregator.state_location import is_database_url

# CI explores the same examples every time (a red CI run must be reproducible); set
# HYPOTHESIS_PROFILE=explore locally to search fresh random inputs.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"  # copies of real feeds and hostile inputs; origins and licences in MANIFEST.tsv
SEED = CORPUS / "seed" / "sina-finance-post.md"  # what the older system made of one Sina Finance item


@functools.cache
def corpus_urls() -> frozenset[str]:
    """Every http(s) URL written anywhere in the test corpus (any case of the scheme): real-world
    links for tests that check a URL fast path against the parsing it skips."""
    return frozenset(m.decode("utf-8", "replace") for path in CORPUS.rglob("*") if path.is_file()
                     for m in re.findall(rb"""(?i)https?://[^\s"'<>]+""", path.read_bytes()))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Route:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class RecordingServer(ThreadingHTTPServer):
    """Serves `routes[path]`; records every request as (path, headers) in `requests`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        super().__init__(address, _RecordingHandler)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path


class _RecordingHandler(BaseHTTPRequestHandler):
    server: RecordingServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        with self.server.lock:
            self.server.requests.append((self.path, dict(self.headers.items())))
        route = self.server.routes.get(self.path)
        if route is None:
            route = Route(404, {"Content-Type": "text/plain"}, b"not found")
        self.send_response(route.status)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if "Content-Length" not in route.headers:
            self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def yaml_config(folder: Path, lines: list[str]) -> Path:
    """`folder/feeds.yaml` holding these lines: a config whose relative paths resolve inside `folder`."""
    path = folder / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_INVARIANTS = {  # a state that breaks none of these is whole, whatever its engine
    "bodies without an entry": "SELECT count(*) FROM bodies WHERE entry NOT IN (SELECT key FROM entries)",
    "published entries without a body": "SELECT count(*) FROM entries WHERE status = 'published' "
                                        "AND key NOT IN (SELECT entry FROM bodies)",
    "keys of missing entries": "SELECT count(*) FROM keys WHERE entry IS NOT NULL "
                               "AND entry NOT IN (SELECT key FROM entries)",
    "entries of unknown sources": "SELECT count(*) FROM entries WHERE source_url NOT IN (SELECT url FROM sources)",
}


def integrity_problems(state: Path | str) -> list[str]:
    """PRAGMA integrity_check's complaints about the SQLite file `state`, read on a connection of its
    own (read-only); [] for a sound file. For a PostgreSQL URL: the rows that break the store's
    invariants (the server checks its own pages)."""
    if is_database_url(str(state)):
        import psycopg

        with psycopg.connect(state) as pg_conn:
            counts = {what: pg_conn.execute(sql).fetchone() for what, sql in _INVARIANTS.items()}
        return [f"{what}: {row[0]}" for what, row in counts.items() if row and row[0]]
    conn = sqlite3.connect(Path(state).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg.PostgresServer]:
    """A throwaway PostgreSQL cluster for the session (tests/pg.py); skipped without one, unless
    AGGREGATOR_REQUIRE_POSTGRES=1."""
    yield from pg.server()


@pytest.fixture
def postgres_url(postgres_server: pg.PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    url = postgres_server.new_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's state lives, once per backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "state" / "state.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
