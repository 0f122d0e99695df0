"""Atomic file writes for every output; must not decide what to write."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from aggregator.errors import naming

_MODE = 0o644  # outputs are served by a static web server: world-readable


def write_atomically(path: Path, data: bytes, *, sync_dir: bool = True) -> bool:
    """Write `data` to `path` via a temp file in the same folder, fsync and os.replace.

    Returns False, leaving the file (and its mtime) untouched, when it already holds these bytes,
    so a static server's ETag/Last-Modified stay put and readers get 304s. `sync_dir=False` leaves
    flushing the folder to the caller (one `sync_folder` after many writes instead of one each).
    """
    if _holds(path, data):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with naming(path), os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, _MODE)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if sync_dir:
        sync_folder(path.parent)
    return True


def _holds(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except FileNotFoundError:
        return False


def sync_folder(folder: Path) -> None:
    # The rename itself is durable only once the directory entry is flushed (POSIX).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
