"""The worker pool (aggregator.pool): real worker processes, calls and results over pipes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path

import pytest

from aggregator.pool import PipePool, WorkerCrashed


def _pid() -> int:
    return os.getpid()


def _crash(code: int) -> None:
    os._exit(code)


def _fail(message: str) -> None:
    raise ValueError(message)


def _open_files() -> list[str]:
    """What a worker holds open, besides its pipes, standard streams and the interpreter's own files."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if not target.startswith(("pipe:", "/dev/", "anon_inode:", "socket:")):
            found.append(target)
    return found


def _echo(data: bytes) -> bytes:
    return data


def _hold(started: str, release: str) -> str:
    """Signals that it runs (a file), then waits for the test to release it (another file): no guessed sleeps."""
    Path(started).touch()
    while not Path(release).exists():
        time.sleep(0.01)
    return "released"


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_calls_run_in_worker_processes_and_return_their_results() -> None:
    with PipePool(2) as pool:
        pids = {f.result(timeout=60) for f in [pool.submit(_pid) for _ in range(8)]}
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
        assert list(pool.map(pow, [2, 3], [10, 3])) == [1024, 27]


def test_an_exception_in_a_call_reaches_its_caller_and_the_worker_goes_on() -> None:
    with PipePool(1) as pool:
        worker = pool.submit(_pid).result(timeout=60)
        with pytest.raises(ValueError, match="bad item"):
            pool.submit(_fail, "bad item").result(timeout=60)
        assert pool.submit(_pid).result(timeout=60) == worker


def test_a_crashed_worker_costs_only_its_own_call() -> None:
    # ProcessPoolExecutor marks the whole pool broken here: every later source of the run would fail
    with PipePool(1) as pool:
        first = pool.submit(_pid).result(timeout=60)
        crashed = pool.submit(_crash, 7)
        after = pool.submit(_pid)
        with pytest.raises(WorkerCrashed, match="exited with code 7"):
            crashed.result(timeout=60)
        assert after.result(timeout=60) not in (first, os.getpid())  # a new worker took over


def test_workers_hold_none_of_the_runs_files(tmp_path: Path) -> None:
    # e.g. the run's lock: a worker outliving a killed run must not keep it
    with (tmp_path / "run.lock").open("w"), PipePool(1) as pool:
        held = pool.submit(_open_files).result(timeout=60)
    assert not [f for f in held if "run.lock" in f]


def test_shutdown_cancels_queued_calls_and_ends_the_workers(tmp_path: Path) -> None:
    pool = PipePool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    running = pool.submit(_hold, str(started), str(release))
    queued = [pool.submit(_pid) for _ in range(6)]
    _wait_for(started.exists, "the first call to start")
    stopping = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
    stopping.start()
    # a call already sent ahead to the worker (pool._WINDOW) still runs; the others never start
    _wait_for(lambda: sum(f.cancelled() for f in queued) >= len(queued) - 1, "the queued calls to be cancelled")
    release.touch()
    stopping.join(timeout=60)
    assert not stopping.is_alive()
    assert running.result(timeout=0) == "released"
    cancelled = [f for f in queued if f.cancelled()]
    assert len(cancelled) >= len(queued) - 1
    for future in cancelled:
        with pytest.raises(CancelledError):
            future.result(timeout=0)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(_pid)


def test_calls_sent_behind_a_crashed_one_run_on_a_new_worker() -> None:
    with PipePool(1) as pool:
        futures = [pool.submit(_crash, 5), pool.submit(_pid), pool.submit(pow, 2, 5)]
        with pytest.raises(WorkerCrashed):
            futures[0].result(timeout=60)
        assert futures[1].result(timeout=60) != os.getpid()
        assert futures[2].result(timeout=60) == 32


def test_an_unpicklable_call_fails_alone() -> None:
    with PipePool(1) as pool:
        with pytest.raises(Exception, match="pickle|lambda"):
            pool.submit(lambda: 1).result(timeout=60)
        assert pool.submit(pow, 2, 2).result(timeout=60) == 4


def test_calls_and_replies_bigger_than_a_pipe_holds_flow_both_ways() -> None:
    # calls are sent ahead while the worker writes a reply: neither side may wait on the other
    bodies = [bytes([i]) * 3_000_000 for i in range(6)]
    with PipePool(2) as pool:
        assert list(pool.map(_echo, bodies, timeout=120)) == bodies


def _pid_once_two_workers_run(folder: str) -> int:
    """Leaves its worker's pid in `folder`, then waits until two workers have: a call can only return
    if two workers run at once, however slowly the second one starts."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while len(list(Path(folder).iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def test_a_pool_can_start_with_fewer_workers_and_grow(tmp_path: Path) -> None:
    with PipePool(2, start=1) as pool:
        assert len({f.result(timeout=60) for f in [pool.submit(_pid) for _ in range(4)]}) == 1
        pool.grow()
        pids = {f.result(timeout=120) for f in [pool.submit(_pid_once_two_workers_run, str(tmp_path))
                                                for _ in range(6)]}
        assert len(pids) == 2 and len(list(tmp_path.iterdir())) == 2


def test_a_worker_that_cannot_start_fails_only_the_call_that_needed_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # a full process table cannot be arranged here, so the first two starts are made to fail
    from aggregator import pool as pool_module

    real_start = pool_module._Worker.start
    failures = iter([OSError(11, "Resource temporarily unavailable")] * 2)

    def flaky_start(boot: object) -> object:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_start(boot)  # type: ignore[arg-type]

    monkeypatch.setattr(pool_module._Worker, "start", staticmethod(flaky_start))
    with PipePool(1) as pool:  # its first start fails: no worker yet
        first = pool.submit(_pid)  # the second start fails: this call reports it
        with pytest.raises(WorkerCrashed, match="could be started"):
            first.result(timeout=60)
        assert pool.submit(pow, 2, 3).result(timeout=60) == 8  # the third start works
