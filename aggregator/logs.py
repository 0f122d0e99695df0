"""Logging setup: readable on a terminal, JSON for machines, no duplicate timestamps under systemd.

Levels: by default warnings and errors; -v adds one INFO line per source, -vv DEBUG lines per stage
(aggregator/pipeline/run_log.py). A line may carry structured values in `extra={"fields": {...}}`: the
JSON format writes them as keys of its object, beside time, level, logger and message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping

# keys every JSON line has; a line's own fields never replace them
_BASE_KEYS = ("time", "level", "logger", "message")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update((k, v) for k, v in fields_of(record).items() if k not in _BASE_KEYS)
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def fields_of(record: logging.LogRecord) -> Mapping[str, object]:
    """The structured values a log line carries ({} for lines without any)."""
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


def log_level(verbose: int, quiet: bool) -> int:
    if quiet or verbose <= 0:
        return logging.WARNING
    return logging.INFO if verbose == 1 else logging.DEBUG


def setup_logging(verbose: int = 0, quiet: bool = False, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        # journald stamps every line itself; a second timestamp is noise
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("aggregator")
    root.handlers[:] = [handler]
    root.setLevel(log_level(verbose, quiet))
    root.propagate = False
    # httpx logs every request at INFO: only -vv shows them
    logging.getLogger("httpx").setLevel(logging.WARNING if verbose < 2 else logging.NOTSET)
