"""The state in PostgreSQL (issue 23): connecting, the schema, the run lock; the store's logic is shared.

The store's SQL (store.connection) runs here through PgConnection, which turns its `?` placeholders
into psycopg's and its SQLite table definitions into PostgreSQL's (INTEGER -> BIGINT, TEXT compared
byte by byte as SQLite does, no WITHOUT ROWID). A new database gets the schema the SQLite migrations
build (schema.blueprint); a later migration step runs here as it runs there.

Locks are advisory locks of the database (per database, so per state): the run lock is a session lock
on the store's connection, released when it closes or the process dies (`aggregator run` takes it alone,
each `aggregator worker` shares it, so a one-shot run never writes beside workers); every write
transaction takes the write lock first, so writers from many processes (workers) commit one at a time and
the store's read-then-write logic (identity matching, the next entry key) sees every earlier commit;
schema creation and upgrades take a transaction lock, so processes starting at once create the schema once.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq

from aggregator.errors import LockError, StateError
from aggregator.store import schema
from aggregator.store.connection import Connection, Cursor, Dialect
from aggregator.state_location import redacted

_LOCK_CLASS = schema.APPLICATION_ID  # advisory locks (classid, objid): ours are (AGRT, n)
_RUN_LOCK, _SCHEMA_LOCK, _WRITE_LOCK = 1, 2, 3

# A write transaction waits for the write lock (held to its commit), as SQLite's BEGIN IMMEDIATE waits
# for the file's: unshared when one run holds the state, it costs nothing but the statement.
DIALECT = Dialect("postgresql", begin=f"BEGIN; SELECT pg_advisory_xact_lock({_LOCK_CLASS}, {_WRITE_LOCK})",
                  sync="",  # every commit is durable (synchronous_commit)
                  bug_errors=(psycopg.IntegrityError, psycopg.ProgrammingError),
                  database_errors=(psycopg.Error,))
_VERSION_TABLE = "aggregator_schema"
_POLL_S = 0.1


class PgConnection:
    """A psycopg connection (autocommit: the store begins and ends its transactions) that runs the store's
    SQL as written for SQLite."""

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self.raw.execute(_translated(sql), parameters or None)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self.raw.cursor()
        cursor.executemany(_translated(sql), parameters)
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


@lru_cache(maxsize=1024)
def _translated(sql: str) -> str:
    sql = sql.replace("?", "%s")
    if sql.lstrip().upper().startswith(("CREATE", "ALTER")):
        sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)  # microsecond times and keys outgrow 32 bits
        sql = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', sql)  # byte order, as SQLite sorts and compares
        sql = re.sub(r"\)\s*WITHOUT ROWID\s*$", ")", sql)
    return sql


class AdvisoryLock:
    """The run lock on PostgreSQL: a session advisory lock, gone with the connection (kill -9 included).
    Exclusive for a one-shot run; shared by workers, which write beside each other (under the write lock)."""

    def __init__(self, conn: PgConnection, shared: bool) -> None:
        self._conn, self._shared = conn, shared

    @classmethod
    def acquire(cls, conn: PgConnection, timeout_s: float, *, what: str, shared: bool = False) -> AdvisoryLock:
        deadline = time.monotonic() + max(timeout_s, 0.0)
        take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        while not conn.execute(f"SELECT {take}(?, ?)", (_LOCK_CLASS, _RUN_LOCK)).fetchone()[0]:
            if time.monotonic() >= deadline:
                raise LockError(f"{what}: {_holders(conn)} the database's run lock; "
                                f"gave up after waiting {timeout_s:g} s")
            time.sleep(_POLL_S)
        return cls(conn, shared)

    def release(self) -> None:
        if not self._conn.raw.closed:
            unlock = "pg_advisory_unlock_shared" if self._shared else "pg_advisory_unlock"
            self._conn.execute(f"SELECT {unlock}(?, ?)", (_LOCK_CLASS, _RUN_LOCK))


def _holders(conn: PgConnection) -> str:
    """Who holds the run lock, as their connections name themselves ("aggregator worker pid 12 on web1")."""
    rows = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.classid = ? AND l.objid = ? AND l.granted ORDER BY 1",
        (_LOCK_CLASS, _RUN_LOCK)).fetchall()
    names = [str(row[0]) for row in rows if row[0]]
    if not names:
        return "another aggregator process holds"
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"another aggregator process ({shown}) holds"


def connect(url: str, role: str = "aggregator") -> PgConnection:
    """A connection to the database at `url`; StateError naming it (without its password) when refused.
    `role` starts the name the connection shows to other processes (lock messages, pg_stat_activity)."""
    try:
        raw = psycopg.connect(url, autocommit=True,
                              application_name=f"{role} pid {os.getpid()} on {socket.gethostname()}"[:63])
    except psycopg.Error as exc:
        raise StateError(f"state {redacted(url)}: cannot connect: {_without_secrets(str(exc), url)}") from exc
    return PgConnection(raw)


def _without_secrets(message: str, url: str) -> str:
    try:
        password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    except psycopg.Error:
        return message
    return message.replace(str(password), "***") if password else message


def open_locked(url: str, lock_timeout_s: float, earlier_runs: str,
                shared: bool = False) -> tuple[Connection, AdvisoryLock]:
    """Connect, take the run lock (`shared`: a worker's), refuse a lost state (as store.opening.refuse_fresh),
    create or upgrade the schema."""
    where = redacted(url)
    conn = connect(url, "aggregator worker" if shared else "aggregator run")
    try:
        lock = AdvisoryLock.acquire(conn, lock_timeout_s, what=f"state {where}", shared=shared)
        _refuse_fresh(conn, where, earlier_runs)
        prepare(conn, where)
    except psycopg.Error as exc:
        conn.close()
        raise StateError(f"state {where}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn, lock


def open_read_only(url: str) -> Connection:
    """For reports: no lock, no migration; the session cannot write."""
    where = redacted(url)
    conn = connect(url)
    try:
        conn.execute("SET default_transaction_read_only = on")
        version = _version(conn)
    except psycopg.Error as exc:
        conn.close()
        raise StateError(f"state {where}: {exc}") from exc
    if version != schema.VERSION:
        conn.close()
        raise StateError(f"state {where}: not readable without changing it (schema version {version}, this "
                         f"aggregator writes {schema.VERSION}); run `aggregator run` once")
    return conn


def _version(conn: PgConnection) -> int | None:
    """The schema version, or None when the database holds no aggregator state."""
    if not _has_table(conn, _VERSION_TABLE):
        return None
    row = conn.execute(f"SELECT version FROM {_VERSION_TABLE}").fetchone()
    return int(row[0]) if row else None


def _has_table(conn: PgConnection, name: str) -> bool:
    """Whether the search path shows a table `name`, as committed now: read from pg_tables (to_regclass
    can answer from a cache that has not yet seen another process's schema)."""
    return conn.execute("SELECT 1 FROM pg_tables WHERE tablename = ? AND schemaname = ANY(current_schemas(false))",
                        (name,)).fetchone() is not None


def _refuse_fresh(conn: PgConnection, where: str, earlier_runs: str) -> None:
    if not earlier_runs:
        return
    empty = _version(conn) is None or conn.execute("SELECT 1 FROM sources LIMIT 1").fetchone() is None
    if empty:
        raise StateError(f"state {where}: holds no state, but {earlier_runs} shows earlier runs; refusing to "
                         "start afresh (every article would be new again): restore the database from a backup, "
                         "or run `aggregator run --new-state` to start over")


def prepare(conn: PgConnection, where: str) -> None:
    """Create or upgrade the schema, once however many processes start at once."""
    if _version(conn) == schema.VERSION:
        return
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(?, ?)", (_LOCK_CLASS, _SCHEMA_LOCK))
        version = _version(conn)  # another process may have done it while this one waited
        if version is None:
            _create(conn, where)
        elif version > schema.VERSION:
            raise StateError(f"state {where}: schema version {version} is newer than this aggregator "
                             f"understands ({schema.VERSION}); upgrade aggregator")
        elif version < schema.VERSION:
            schema.migrate(conn, version, _record_version)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def create_once(url: str, table: str, sql: str) -> None:
    """Run `sql` (statements creating `table` and others: the job queue's schema) unless `table` exists,
    under the schema lock, so workers starting at once create it once. `sql` runs as given (no `?`
    translation: it is not the store's)."""
    conn = connect(url, "aggregator worker")
    try:
        if _has_table(conn, table):
            return
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(?, ?)", (_LOCK_CLASS, _SCHEMA_LOCK))
            if not _has_table(conn, table):
                conn.raw.execute(sql.encode())  # several statements: no parameters, so psycopg sends it as one
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except psycopg.Error as exc:
        raise StateError(f"state {redacted(url)}: creating the job queue's tables: {exc}") from exc
    finally:
        conn.close()


def _create(conn: PgConnection, where: str) -> None:
    blueprint = schema.blueprint()
    taken = [t for t in blueprint.columns if _has_table(conn, t)]
    if taken:
        raise StateError(f"state {where}: the database has tables named as the aggregator's "
                         f"({', '.join(taken)}) but no aggregator state; refusing to touch them")
    for statement in blueprint.statements:
        conn.execute(statement)
    for table, rows in blueprint.seeded.items():
        marks = ", ".join("?" * len(blueprint.columns[table]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    conn.execute(f"CREATE TABLE {_VERSION_TABLE} (version INTEGER NOT NULL)")
    conn.execute(f"INSERT INTO {_VERSION_TABLE} VALUES (?)", (schema.VERSION,))


def _record_version(conn: Connection, version: int) -> None:
    conn.execute(f"UPDATE {_VERSION_TABLE} SET version = ?", (version,))
