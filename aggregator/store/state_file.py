"""The open state file: connection, run lock, transactions and batching, errors as StateError; no articles.

Durability: WAL with ``synchronous=NORMAL``. A process crash (kill -9) cannot lose or tear a
committed transaction in WAL mode at NORMAL; only a power cut can drop the last few commits
(never corrupt the file). FULL would add an fsync per source (1,000 per run); instead the
pipeline calls :meth:`StateFile.sync` once before publishing, so every entry written to a feed
file is on disk first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from aggregator.errors import StateError
from aggregator.store import transfer
from aggregator.store.connection import SQLITE, Connection, Dialect
from aggregator.state_location import is_database_url, redacted
from aggregator.store.lock import RunLock
from aggregator.store.opening import connect, connect_read_only, refuse_fresh


class Lock(Protocol):
    """The run lock: a file lock (store.lock) or a PostgreSQL advisory lock (store.postgres)."""

    def release(self) -> None: ...


class StateFile:
    """The state file's connection and lock; store.db.Store adds what is kept in it. Open with :meth:`open`;
    one instance per process holds the run lock."""

    def __init__(self, path: Path | str, conn: Connection, lock: Lock | None, dialect: Dialect = SQLITE) -> None:
        self.path = path  # a Path, or a database URL (with its password: name it as self.where)
        self.where = redacted(str(path))
        self._conn = conn
        self._lock = lock
        self._dialect = dialect
        self._batch_s = 0.0  # > 0 inside batched(): units of work share transactions this long
        self._batch_started = 0.0

    # --- opening and closing ----------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, lock_timeout_s: float = 30.0, earlier_runs: str = "",
             shared: bool = False) -> Self:
        """Lock, open (creating folder and schema) and migrate the state file at `path`.

        earlier_runs: a file that shows runs happened before (see refuse_fresh); then a missing or empty
        state file, or one no run ever wrote a source to, is refused rather than started afresh.
        A postgresql:// URL opens that database instead (store.postgres); `shared` (workers, only there)
        shares the run lock with other workers, whose writes then take turns."""
        if isinstance(path, str) and is_database_url(path):
            from aggregator.store import postgres  # psycopg is an extra: imported only when used

            conn, advisory = postgres.open_locked(path, lock_timeout_s, earlier_runs, shared=shared)
            return cls(path, conn, advisory, postgres.DIALECT)
        if shared:
            raise StateError(f"state {path}: workers share a PostgreSQL state (state: postgresql://...); "
                             "a SQLite file has one writer: run `aggregator run` from a timer instead")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"state {path}: cannot create its folder: {exc}") from exc
        lock = RunLock.acquire(path.with_name(path.name + ".lock"), lock_timeout_s, what=f"state {path}")
        try:
            refuse_fresh(path, earlier_runs)
            return cls(path, connect(path), lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open_read_only(cls, path: str | Path) -> Self:
        """For reports (`sources`): no lock, no migration, nothing written; works in a read-only folder.

        Raises StateError when the file is missing or unreadable."""
        if isinstance(path, str) and is_database_url(path):
            from aggregator.store import postgres

            return cls(path, postgres.open_read_only(path), None, postgres.DIALECT)
        path = Path(path)
        if not path.is_file():
            raise StateError(f"state {path}: no such file (no run has stored anything yet)")
        return cls(path, connect_read_only(path), None)

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def copy_to(self, target: StateFile) -> Mapping[str, int]:
        """Copy this whole state into `target`, a new, empty store (migrate-state); rows copied per table."""
        with target._guard():
            transfer.check_empty(target._conn, target.where)
            with target._transaction(), self._guard():
                return transfer.copy_tables(self._conn, target._conn)

    def sync(self) -> None:
        """Make every committed write durable (checkpoint the WAL with fsync); call before publishing."""
        if self._dialect.sync:
            with self._guard():
                self._conn.execute(self._dialect.sync)

    # --- transactions -----------------------------------------------------------------

    @contextmanager
    def batched(self, seconds: float = 0.5) -> Iterator[None]:
        """Writes inside share one transaction per `seconds`: each unit (a source's articles, a batch of
        fetch states) is still all-or-nothing (a savepoint), but commits, which rewrite every index
        page a unit touched, happen a few times a second rather than per source. A run killed in
        between loses at most the last `seconds` of work, articles and fetch states together, so
        those sources are fetched again next time."""
        if self._batch_s:
            yield
            return
        with self._guard():
            self._conn.execute(self._dialect.begin)
        self._batch_s, self._batch_started = seconds, time.monotonic()
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:  # a failed COMMIT or BEGIN between units may have ended it
                with self._guard():
                    self._conn.execute("ROLLBACK")
            raise
        finally:
            self._batch_s = 0.0
        with self._guard():
            self._conn.execute("COMMIT")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._batch_s:
            yield from self._savepoint()
            return
        self._conn.execute(self._dialect.begin)
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _savepoint(self) -> Iterator[None]:
        self._conn.execute("SAVEPOINT unit")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO unit")
            self._conn.execute("RELEASE unit")
            raise
        self._conn.execute("RELEASE unit")
        if time.monotonic() - self._batch_started >= self._batch_s:
            self._conn.execute("COMMIT")
            self._conn.execute(self._dialect.begin)
            self._batch_started = time.monotonic()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Database failures (corruption, full disk, I/O, a lost server) become StateError naming the state."""
        try:
            yield
        except self._dialect.bug_errors:
            raise  # our bugs, not the database's
        except self._dialect.database_errors as exc:
            raise StateError(f"state {self.where}: {exc}") from exc
