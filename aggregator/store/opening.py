"""Opening the state file: refusing a lost state, checks, WAL, migration, read-only; no article logic."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import quote

from aggregator.errors import StateError
from aggregator.store import schema


def refuse_fresh(path: Path, earlier_runs: str) -> None:
    """Refuse a missing or zero-byte state file, or one no run ever wrote to, when `earlier_runs` names
    a file earlier runs left (issue 20): SQLite reads an empty file as a new database, and every article
    would be published again as new while the feeds drop all they showed. Truncated or foreign files
    are refused by _prepare; a new state on purpose is the caller's choice (`run --new-state`)."""
    if not earlier_runs:
        return
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        what = "missing"
    except OSError as exc:
        raise StateError(f"state {path}: cannot read: {exc.strerror or exc}") from exc
    else:
        what = "empty (0 bytes)" if not size else "never written by a run" if _never_written(path) else ""
    if what:
        raise StateError(_refusal(path, what, earlier_runs))


def _never_written(path: Path) -> bool:
    """Whether the file is a state database no run ever wrote a source to (created by another command
    after the state was lost, say); anything unreadable is left for connect to judge."""
    try:
        with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
            if conn.execute("PRAGMA application_id").fetchone()[0] != schema.APPLICATION_ID:
                return False
            return conn.execute("SELECT 1 FROM sources LIMIT 1").fetchone() is None
    except sqlite3.Error:
        return False


def _refusal(path: Path, what: str, earlier_runs: str) -> str:
    return (f"state {path}: {what}, but {earlier_runs} shows earlier runs; refusing to start afresh (every "
            "article would be new again): restore the file from a backup, or run `aggregator run --new-state` "
            "to start over")


def connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StateError(f"state {path}: cannot open: {exc}") from exc
    try:
        _prepare(conn, path)
    except sqlite3.OperationalError as exc:
        conn.close()
        if exc.sqlite_errorcode != sqlite3.SQLITE_FULL:
            raise _unusable(path, exc) from exc
        raise StateError(f"state {path}: disk full ({exc}); the file is intact: free some space") from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _unusable(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> StateError:
    return StateError(f"state {path}: not a usable SQLite database ({exc}); move it aside to start afresh "
                      "(its articles will be seen as new) or restore a backup")


def connect_read_only(path: Path) -> sqlite3.Connection:
    """mode=ro reads the WAL too but needs a writable folder for its -shm file; immutable=1 (the file
    is read as it is, WAL ignored: what a read-only folder can hold) is the fallback."""
    uri = "file:" + quote(str(path.resolve()))
    last: sqlite3.Error | None = None
    for query in ("?mode=ro", "?mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(uri + query, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            last = exc
            continue
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            conn.close()
            last = exc
            continue
        if app_id != schema.APPLICATION_ID or version != schema.VERSION:
            conn.close()
            raise StateError(f"state {path}: not readable without changing it (application_id {app_id:#x}, "
                             f"schema version {version}, this aggregator writes {schema.VERSION}); "
                             "run `aggregator run` once with write access")
        return conn
    raise StateError(f"state {path}: cannot open read-only: {last}")


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Check the file is ours (or empty), switch on WAL and foreign keys, migrate."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id != schema.APPLICATION_ID and (app_id or version or objects):
        raise StateError(
            f"state {path}: not an aggregator state file (a SQLite database of something else: "
            f"application_id {app_id:#x}, user_version {version}, {objects} schema objects); refusing to touch it"
        )
    if version > schema.VERSION:
        raise StateError(
            f"state {path}: schema version {version} is newer than this aggregator understands "
            f"({schema.VERSION}); upgrade aggregator"
        )
    conn.execute("PRAGMA busy_timeout = 10000")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StateError(f"state {path}: cannot switch to WAL journal mode (got {mode!r})")
    conn.execute("PRAGMA synchronous = NORMAL")
    # 8 MB of page cache (SQLite's default is 2 MB): a cold start inserts ~58,000 articles at random
    # places in the id, key and fingerprint indexes, and with 2 MB most inserts re-read their pages.
    # Measured on the N=1,000 farm: a larger cache made a cold start faster, 8 MB as fast as
    # larger ones, and the run's process peaks lower than with them.
    conn.execute("PRAGMA cache_size = -8192")
    conn.execute("PRAGMA foreign_keys = ON")
    if version < schema.VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
            schema.migrate(conn, version)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
