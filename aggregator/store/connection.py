"""The seam between the store's logic and its database: what a connection must do, and what differs.

The store's SQL is written once, in the dialect both engines speak (`?` placeholders, ON CONFLICT,
savepoints); a backend (store.opening for SQLite, store.postgres for PostgreSQL) opens a connection
that runs it, and a Dialect names the few statements and errors that are not shared."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Cursor(Protocol):
    """What the store reads back from a statement."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...  # None for a statement that returns no rows

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection in autocommit mode: the store opens and ends its transactions itself."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines beyond opening.

    begin: starts a write transaction (SQLite takes the write lock up front: no SQLITE_BUSY halfway).
    sync: makes committed writes durable before publishing ("" when every commit already is).
    bug_errors: driver errors that are our bugs, raised as they are; database_errors: the rest,
    which become StateError naming the state."""

    name: str
    begin: str
    sync: str
    bug_errors: tuple[type[Exception], ...]
    database_errors: tuple[type[Exception], ...]


SQLITE = Dialect("sqlite", begin="BEGIN IMMEDIATE", sync="PRAGMA wal_checkpoint(FULL)",
                 bug_errors=(sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError),
                 database_errors=(sqlite3.DatabaseError,))
