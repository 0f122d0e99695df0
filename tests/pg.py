"""A throwaway PostgreSQL server for the tests (issue 23): initdb into a temporary folder, a Unix socket
there and no TCP, run as an unprivileged user (root's own initdb refuses: as root, `nobody`).

Without PostgreSQL's binaries the tests that need it are skipped, unless AGGREGATOR_REQUIRE_POSTGRES=1
(CI sets it once apt installed them): then they fail.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

_BIN_GLOBS = ("/usr/lib/postgresql/*/bin",)  # Debian's packages keep them off PATH


def postgres_bin() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: on PATH, or Debian's newest."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    candidates = sorted((Path(p) for pattern in _BIN_GLOBS for p in glob.glob(pattern)),
                        key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()] or [0])
    for folder in reversed(candidates):
        if (folder / "pg_ctl").exists() and (folder / "initdb").exists():
            return folder
    return None


def unavailable(reason: str) -> None:
    if os.environ.get("AGGREGATOR_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL required (AGGREGATOR_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(f"no PostgreSQL: {reason}")


class PostgresServer:
    """One running cluster; `new_database()` gives a fresh database's URL."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self._names = itertools.count(1)
        self._as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=120, cwd=self.folder)
        if result.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr or result.stdout}")

    def start(self) -> None:
        if self._as_user:
            os.chown(self.folder, *_nobody())
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        self._pg_ctl("start")

    def restart(self) -> None:
        """Stop (fast: every connection is dropped) and start again, the data kept: a database that went away."""
        self._pg_ctl("restart", "-m", "fast")

    def _pg_ctl(self, *action: str) -> None:
        options = (f"-k {self.folder} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=60")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
                  "-o", options, "-w", "-t", "60", *action)

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.folder}"

    def new_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _nobody() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def server() -> Iterator[PostgresServer]:
    """The session's server (tests/conftest.py's postgres_server fixture)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        unavailable("no initdb/pg_ctl on PATH nor in /usr/lib/postgresql/*/bin")
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'aggregator[postgres]')")
        return
    folder = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
    instance = PostgresServer(bin_dir, folder)
    try:
        instance.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL binaries found in {bin_dir} but the server did not start: {exc}")
    try:
        yield instance
    finally:
        try:
            instance.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
