"""The worker pool: a concurrent.futures Executor over worker processes of our own, fed over pipes.

Each worker is a fresh interpreter (`python -c ...`, the run's own sys.path) that imports the parse and
clean stack once, then answers pickled calls on its stdin with pickled results on its stdout, one at
a time. One thread in the run feeds each worker from a shared queue.

Why not ProcessPoolExecutor (measured on a cold start of 1,000 sources, bench/RESULTS.md): its
forkserver and multiprocessing's resource tracker were a large part of the run's memory,
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
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import IO, Any, TypeVar

_T = TypeVar("_T")
_HEADER = struct.Struct("!Q")  # every message: its length, then a pickle
# The worker's program: everything else comes over the pipe (sys.path, what to import, the run's pid).
# The folder holding this package goes last on its path, so the import works from a source tree too
# without shadowing anything installed.
_BOOT = (f"import sys; sys.path.append({os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r}); "
         "from aggregator.pool import serve; serve()")


class WorkerCrashed(RuntimeError):
    """A worker process ended while it ran a call (a crash in C code, the OOM killer, a kill)."""


_Task = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
# Calls sent to a worker ahead of its replies, so it starts the next as soon as it answers one: the
# run's process is busy, and each of our hops between a reply and the next call waits for the GIL.
_WINDOW = 2


class PipePool(Executor):
    """Up to `workers` worker processes, `start` of them (default: all) started now and the rest by
    grow(); each first imports `preload`, at lower priority than the run when `nicer_than` (the run's
    pid) is given (worker_jobs.yield_cpu_to)."""

    def __init__(self, workers: int, preload: Sequence[str] = (), nicer_than: int | None = None,
                 start: int | None = None) -> None:
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._boot = (list(sys.path), list(preload), nicer_than)
        self._closed = False
        self._lock = threading.Lock()
        self._feeders = [threading.Thread(target=self._feed, name=f"pool-worker-{i}", daemon=True)
                         for i in range(max(1, workers))]
        self._started = 0
        self.grow(len(self._feeders) if start is None else max(1, start))

    def grow(self, count: int | None = None) -> None:
        """Start `count` more workers (default: every one the pool may have)."""
        with self._lock:
            if self._closed:
                return
            end = len(self._feeders) if count is None else min(len(self._feeders), self._started + count)
            for feeder in self._feeders[self._started:end]:
                feeder.start()
            self._started = max(self._started, end)

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
            self._tasks.put(None)  # behind the calls already queued; each feeder puts it back for the next
        if wait:
            for feeder in self._feeders[:self._started]:
                feeder.join()

    def _drain(self) -> None:
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                return
            if task is not None:
                task[0].cancel()

    def _next(self, block: bool) -> _Task | None:
        """The next call to send that was not cancelled meanwhile; None: stop (or, not blocking, none yet)."""
        while True:
            try:
                task = self._tasks.get(block)
            except queue.Empty:
                return None
            if task is None:
                self._tasks.put(None)  # seen again by the next look, so this feeder stops for good
                return None
            if task[0].set_running_or_notify_cancel():
                return task

    def _feed(self) -> None:
        """One feeder thread: owns one worker process, keeps up to _WINDOW calls sent to it, and starts a
        new worker after a crash (the calls sent behind the crashed one never started: they go again)."""
        worker = self._start_worker()  # at once: it imports while the run has no call for it yet
        sent: deque[_Task] = deque()  # calls sent, oldest first; the worker answers in this order
        again: deque[_Task] = deque()  # calls sent behind a crashed one: they never started
        while True:
            while len(sent) < _WINDOW and (task := again.popleft() if again else self._next(block=not sent)):
                worker = worker or self._start_worker(task)
                if worker is not None and worker.send(task):
                    sent.append(task)
            if not sent:
                break  # told to stop, and every call answered
            assert worker is not None  # calls are only sent to a worker
            try:
                reply = worker.receive()
            except WorkerCrashed as exc:
                sent.popleft()[0].set_exception(exc)
                worker.stop()
                worker, again, sent = None, sent, deque()
                continue
            _settle(sent.popleft()[0], reply)
        if worker is not None:
            worker.stop()

    def _start_worker(self, task: _Task | None = None) -> _Worker | None:
        """A new worker; None when none can be started (the process table is full, say): then `task`
        fails with the reason, and the next call tries again."""
        try:
            return _Worker.start(self._boot)
        except OSError as exc:
            if task is not None:
                task[0].set_exception(WorkerCrashed(f"no worker process could be started: {exc}"))
            return None


def _settle(future: Future[Any], reply: bytes) -> None:
    try:
        ok, value = pickle.loads(reply)
    except BaseException as exc:  # noqa: BLE001 - e.g. an exception type that cannot be rebuilt here
        future.set_exception(exc)
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.to_worker: IO[bytes] = process.stdin
        self.from_worker: IO[bytes] = process.stdout
        self.broken = False

    @classmethod
    def start(cls, boot: tuple[list[str], list[str], int | None]) -> _Worker:
        # close_fds (the default): a worker holds none of the run's files, such as its lock
        process = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        worker = cls(process)
        worker._write(_message(boot))
        return worker

    def send(self, task: _Task) -> bool:
        """Send one call; False (its future settled) when it cannot be pickled. A worker that died is
        noticed by receive(), which its calls then wait for."""
        future, fn, args, kwargs = task
        try:
            payload = _message((fn, args, kwargs))
        except BaseException as exc:  # noqa: BLE001 - an unpicklable call fails alone
            future.set_exception(exc)
            return False
        self._write(payload)
        return True

    def _write(self, payload: bytes) -> None:
        if self.broken:
            return
        try:
            self.to_worker.write(payload)
            self.to_worker.flush()
        except OSError:  # BrokenPipeError: it died; receive() reports how
            self.broken = True

    def receive(self) -> bytes:
        """The next reply; raises WorkerCrashed when the worker ended instead."""
        reply = _read_message(self.from_worker)
        if reply is None:
            code = self.process.wait()
            raise WorkerCrashed(f"worker process {self.process.pid} exited with code {code} during a call")
        return reply

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


def _message(value: object) -> bytes:
    payload = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


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
        from aggregator.worker_jobs import yield_cpu_to

        yield_cpu_to(nicer_than, 0)
    # Calls are read as they come, so the run never blocks writing the next call while this worker
    # blocks writing a reply (both bigger than a pipe holds); the import overlaps the first ones.
    inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    threading.Thread(target=_read_calls, args=(calls, inbox), name="calls", daemon=True).start()
    for module in preload:
        __import__(module)
    while (message := inbox.get()) is not None:
        replies.write(_answer(message))
        replies.flush()


def _read_calls(calls: IO[bytes], inbox: queue.SimpleQueue[bytes | None]) -> None:
    while (message := _read_message(calls)) is not None:
        inbox.put(message)
    inbox.put(None)


def _answer(message: bytes) -> bytes:
    try:
        fn, args, kwargs = pickle.loads(message)
        reply: tuple[bool, Any] = (True, fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller's future
        reply = (False, exc)
    try:
        return _message(reply)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception
        return _message((False, RuntimeError(f"worker result could not be sent back: {exc!r}")))
