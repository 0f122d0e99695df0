"""The run lock: one writer per state file, via fcntl.flock on a file beside it; nothing else.

flock locks belong to the open file description, so the kernel releases them when the
process dies (kill -9 included): a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from aggregator.errors import LockError, StateError

_POLL_S = 0.05


class RunLock:
    """An exclusive lock held until `release()` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, timeout_s: float, *, what: str) -> RunLock:
        """Wait up to `timeout_s` for the lock on `path`; LockError naming `what` after that."""
        try:  # O_NOFOLLOW: a symlink planted at the lock's path must not get its target truncated
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateError(f"{what}: the lock file {path} is a symbolic link; refusing to follow it "
                                 "(remove the link)") from exc
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise StateError(f"{what}: cannot create the lock file {path}: the folder "
                                 f"{path.parent} is read-only or not writable ({exc.strerror})") from exc
            raise StateError(f"{what}: cannot open the lock file {path}: {exc.strerror or exc}") from exc
        deadline = time.monotonic() + max(timeout_s, 0.0)
        try:
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"{what}: another aggregator run holds the lock {path}{_holder(fd)}; "
                        f"gave up after waiting {timeout_s:g} s"
                    )
                time.sleep(_POLL_S)  # flock has no timeout of its own
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # only a hint for the message above
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
