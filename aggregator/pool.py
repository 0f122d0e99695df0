"""The worker pool: a concurrent.futures Executor over worker processes of our own, fed over pipes.

Each worker is a fresh interpreter (`python -c ...`, the run's own sys.path) that imports the parse and
clean stack once, then answers pickled calls on its stdin with pickled results on its stdout, one at
a time. One thread in the run feeds each worker from a shared queue.

Why not ProcessPoolExecutor (measured on a cold start of 1,000 sources, bench/RESULTS.md): its
forkserver (38 MB) and multiprocessing's resource tracker (12 MB) were a fifth of the run's memory,
counted by every process-tree measure; one crashed worker breaks the whole pool, so every later
source fails too; and a run killed with SIGKILL left workers waiting for work forever unless each
watched its run. Here a worker sees end-of-file on its stdin when its run is gone, and exits; a
crashed worker costs the one call it was running, and the next call starts a new worker.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import IO, Any, TypeVar

_T = TypeVar("_T")
_HEADER = struct.Struct("!Q")  # every message: its length, then a pickle
# The worker's program: everything else comes over the pipe (sys.path, what to import, the run's pid).
_BOOT = "from aggregator.pool import serve; serve()"
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerCrashed(RuntimeError):
    """A worker process ended while it ran a call (a crash in C code, the OOM killer, a kill)."""


class PipePool(Executor):
    """`workers` worker processes, started at once; each first imports `preload`, at lower priority
    than the run when `nicer_than` (the run's pid) is given (work.yield_cpu_to)."""

    def __init__(self, workers: int, preload: Sequence[str] = (), nicer_than: int | None = None) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None]
        self._tasks = queue.SimpleQueue()
        self._boot = (list(sys.path), list(preload), nicer_than)
        self._closed = False
        self._lock = threading.Lock()
        self._feeders = [threading.Thread(target=self._feed, name=f"pool-worker-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for feeder in self._feeders:
            feeder.start()

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: Future[_T] = Future()
            self._tasks.put((future, fn, args, kwargs))
            return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if cancel_futures:
                self._drain()
            for _ in self._feeders:
                self._tasks.put(None)  # one stop per feeder, behind the calls already queued
        if wait:
            for feeder in self._feeders:
                feeder.join()

    def _drain(self) -> None:
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                return
            if task is not None:
                task[0].cancel()

    def _feed(self) -> None:
        """One feeder thread: owns one worker process, starts a new one after a crash."""
        worker: _Worker | None = _Worker.start(self._boot)
        while (task := self._tasks.get()) is not None:
            future, fn, args, kwargs = task
            if not future.set_running_or_notify_cancel():
                continue
            if worker is None:
                worker = _Worker.start(self._boot)
            try:
                ok, value = worker.call(fn, args, kwargs)
            except WorkerCrashed as exc:
                worker.stop()
                worker = None
                future.set_exception(exc)
                continue
            except BaseException as exc:  # noqa: BLE001 - an unpicklable call or result: this call fails
                future.set_exception(exc)
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        if worker is not None:
            worker.stop()


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.to_worker: IO[bytes] = process.stdin
        self.from_worker: IO[bytes] = process.stdout

    @classmethod
    def start(cls, boot: tuple[list[str], list[str], int | None]) -> _Worker:
        # close_fds (the default): a worker holds none of the run's files, such as its lock. The package's
        # own folder goes first on its path, so the boot import works from a source tree too.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
        process = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   env=env)
        worker = cls(process)
        worker._send(boot)
        return worker

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bool, Any]:
        payload = pickle.dumps((fn, args, kwargs), pickle.HIGHEST_PROTOCOL)  # may raise: the call fails
        try:
            self.to_worker.write(_HEADER.pack(len(payload)) + payload)
            self.to_worker.flush()
            reply = _read_message(self.from_worker)
        except OSError as exc:  # BrokenPipeError: the worker is gone
            reply = None
            cause: BaseException | None = exc
        else:
            cause = None
        if reply is None:
            code = self.process.wait()
            raise WorkerCrashed(f"worker process {self.process.pid} exited with code {code} "
                                f"while running {getattr(fn, '__qualname__', fn)!r}") from cause
        ok, value = pickle.loads(reply)
        return bool(ok), value

    def _send(self, message: object) -> None:
        payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        try:
            self.to_worker.write(_HEADER.pack(len(payload)) + payload)
            self.to_worker.flush()
        except OSError:
            pass  # it died at start: the first call reports it

    def stop(self) -> None:
        """Close its stdin and end it: workers hold nothing that needs saving, and a worker still
        importing would otherwise keep a run that never needed it waiting."""
        try:
            self.to_worker.close()
        except OSError:
            pass
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait()
        self.from_worker.close()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_message(stream: IO[bytes]) -> bytes | None:
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    return _read_exactly(stream, _HEADER.unpack(header)[0])


# --- the worker side ---------------------------------------------------------------------------


def serve() -> None:
    """A worker's main loop (run by _BOOT): calls in on stdin, results out on stdout, until end-of-file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the run decides
    # The protocol's own descriptors; fd 1 becomes stderr, so a stray print can never corrupt a reply.
    calls = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    boot = _read_message(calls)
    if boot is None:
        return
    path, preload, nicer_than = pickle.loads(boot)
    sys.path[:] = path
    if nicer_than is not None:
        from aggregator.work import yield_cpu_to

        yield_cpu_to(nicer_than, 0)
    for module in preload:
        __import__(module)
    while (message := _read_message(calls)) is not None:
        replies.write(_answer(message))
        replies.flush()


def _answer(message: bytes) -> bytes:
    try:
        fn, args, kwargs = pickle.loads(message)
        reply: tuple[bool, Any] = (True, fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller's future
        reply = (False, exc)
    try:
        payload = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception
        payload = pickle.dumps((False, RuntimeError(f"worker result could not be sent back: {exc!r}")),
                               pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload
