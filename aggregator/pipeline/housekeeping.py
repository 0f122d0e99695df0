"""Around a run: the state opened (refusing a lost one), the output and state folders checked, and
retention applied (automatically once a day, or by `aggregator prune`), the state copied elsewhere
(`aggregator migrate-state`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aggregator.errors import AggregatorError, StateError
from aggregator.model import Config
from aggregator.pipeline.publishing import feed_rows, publish_marker
from aggregator.store import Store
from aggregator.state_location import is_database_url, local_base, redacted

log = logging.getLogger("aggregator")


PRUNE_EVERY_S = 86400


def prune_daily(config: Config, store: Store, now: datetime) -> None:
    """Automatic pruning, at most once a day (it scans the whole store); a marker file keeps the time."""
    marker = Path(local_base(config.state, config.path) + ".pruned")
    try:
        if marker.exists() and now.timestamp() - marker.stat().st_mtime < PRUNE_EVERY_S:
            return
    except OSError:
        return
    try:
        prune(config, store, now, config.retention)
        marker.touch()
    except (AggregatorError, OSError) as exc:  # housekeeping: never fail a run that already published
        log.warning("automatic pruning skipped: %s", exc)
        return
    os.utime(marker, (now.timestamp(), now.timestamp()))


def earlier_runs(config: Config) -> str:
    """A file that only earlier runs leave (the publish and prune markers beside the state, the combined
    feed), or "": with one, a missing or empty state file is refused, not silently started afresh."""
    for path in (publish_marker(config), Path(local_base(config.state, config.path) + ".pruned"),
                 Path(config.output.dir) / "all.atom"):
        if path.exists():
            return str(path)
    return ""


def open_store(config: Config, *, lock_timeout_s: float | None = None, new_state: bool = False,
               shared: bool = False) -> Store:
    """The state store of `config`, locked (`shared`: a worker's share of a database's run lock); a missing
    or empty state file (or one no run wrote to) is refused when earlier runs show (issue 20), unless
    `new_state`. A config without sources has no state to lose (and its runs write none)."""
    return Store.open(config.state, lock_timeout_s=config.lock_timeout if lock_timeout_s is None else lock_timeout_s,
                      earlier_runs="" if new_state or not config.sources else earlier_runs(config), shared=shared)


@dataclass(frozen=True)
class Migrated:
    """Where migrate_state copied the state, and how many rows of each table."""

    target: str
    rows: Mapping[str, int]


def migrate_state(config: Config, to: str) -> Migrated:
    """Copy the config's state (under its run lock: no run changes it meanwhile) into `to`: a new SQLite
    file (a path, from the current folder) or a PostgreSQL database without aggregator state."""
    target = to if is_database_url(to) else str(Path(to).absolute())
    if target == config.state:
        raise StateError(f"migrate-state --to {redacted(to)}: that is the config's state itself")
    with open_store(config) as source, Store.open(target, lock_timeout_s=config.lock_timeout) as copy:
        return Migrated(target, source.copy_to(copy))


def prune(config: Config, store: Store, now: datetime, keep_s: float) -> int:
    """Retention: drop state older than keep_s, except what a feed shows now."""
    showing = {r.id for _spec, rows in feed_rows(config, store, now) for r in rows}
    if config.output.hexo.get("dir") and config.output.max_per_source:  # Hexo posts are not capped
        showing |= {r.id for _spec, rows in feed_rows(config, store, now, per_source=0) for r in rows}
    return store.prune(keep_days=keep_s / 86400, now=now, active_source_urls=[s.url for s in config.sources],
                       keep_ids=showing)


def check_output_dir(path: str, what: str = "output folder") -> None:
    """Fail before fetching anything when the output (or state) folder cannot be written."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise AggregatorError(f"{what} {path}: not writable: {exc.strerror or exc}") from exc
