"""The exception tree; every message names the file or source, the URL or key, and what is wrong.

AggregatorError
 ├── ConfigError          bad config: exit code 2, nothing fetched or written
 ├── LockError            another run holds the lock: exit code 3
 ├── StateError           the SQLite state file is corrupt or foreign
 └── SourceError          one source failed; the run carries on
      └── ParseError      the body is not a usable feed

A failed fetch is not an exception but a value (fetch.FetchOutcome, kind "failed", with its reason):
the fetch stage reports every source's result, and the run goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


class AggregatorError(Exception):
    """Base of every error this program raises on purpose."""


class ConfigError(AggregatorError):
    """One or more problems in the configuration, all listed in the message."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class LockError(AggregatorError):
    """Another run holds the state lock."""


class StateError(AggregatorError):
    """The state database cannot be used."""


class SourceError(AggregatorError):
    """A failure confined to one source."""


class ParseError(SourceError):
    """The fetched document is not a feed we can read."""


@contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """An OSError raised inside carries `path` as its filename: a write's ENOSPC or EIO names none of
    its own ("No space left on device" alone does not say which disk)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), os.fspath(path)) from exc
        raise
