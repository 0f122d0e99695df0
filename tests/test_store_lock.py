"""The run lock across real processes: a second run waits, then fails with LockError; death releases it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, integrity_problems

from aggregator.errors import LockError
from aggregator.store import Store

HOLDER = """
import sys
from aggregator.store import Store
store = Store.open(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
store.close()
print("released", flush=True)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the store open (and so the run lock) until told to stop."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "state.db")], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    with proc:  # closes its pipes (no ResourceWarning) after the test
        yield proc
        if proc.poll() is None:
            proc.kill()


def test_second_process_gets_lock_error_after_timeout(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LockError) as caught:
        Store.open(tmp_path / "state.db", lock_timeout_s=0.3)
    message = str(caught.value)
    assert str(tmp_path / "state.db.lock") in message
    assert f"pid {holder.pid}" in message and "0.3 s" in message


def test_lock_is_free_once_the_holder_closes(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "released"
    with Store.open(tmp_path / "state.db", lock_timeout_s=0) as store:
        assert integrity_problems(store.path) == []


def test_kill_9_releases_the_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with Store.open(tmp_path / "state.db", lock_timeout_s=5) as store:
        assert store.source_states() == {}


def test_one_process_cannot_open_twice(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db"), pytest.raises(LockError):
        Store.open(tmp_path / "state.db", lock_timeout_s=0)
    Store.open(tmp_path / "state.db", lock_timeout_s=0).close()
