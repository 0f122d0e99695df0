"""`run --dry-run`: the run works on a copy of the state; what every feed would gain and lose is
the difference of two snapshots.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from aggregator.errors import StateError
from aggregator.model import Article, Config
from aggregator.pipeline.publishing import feed_contents
from aggregator.publish.similar import merge_similar
from aggregator.store import Store
from aggregator.state_location import is_database_url


def copy_state(path: str, folder: Path) -> str:
    copy = folder / "state.db"
    if is_database_url(path):  # a database's state is copied into a SQLite file: nothing touches the database
        with Store.open_read_only(path) as source, Store.open(copy) as target:
            source.copy_to(target)
        return str(copy)
    if Path(path).exists():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as src, \
                    contextlib.closing(sqlite3.connect(copy)) as dst:
                src.backup(dst)
        except sqlite3.Error as exc:
            raise StateError(f"state {path}: cannot copy it to {copy} for a dry run: {exc}") from exc
    return str(copy)


def snapshot(config: Config, store: Store, now: datetime) -> dict[str, dict[str, str]]:
    """Each feed's entries by id (title and a digest), the same story once as publishing shows it."""
    return {spec.slug: {a.id: f"{a.title}\x00{_digest(a)}"
                        for a in (merge_similar(articles) if config.dedup.similar else articles)}
            for spec, articles in feed_contents(config, store, now)}


def _digest(article: Article) -> str:
    return hashlib.sha1(f"{article.title}\x00{article.content_html}".encode("utf-8", "replace")).hexdigest()


def _title_of(snapshot_value: str) -> str:
    return snapshot_value.split("\x00", 1)[0]


def changes_between(before: Mapping[str, Mapping[str, str]], after: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, list[str]]]:
    changes: dict[str, dict[str, list[str]]] = {}
    title = _title_of
    for slug in after:
        old, new = before.get(slug, {}), after[slug]
        entry = {
            "new": [title(new[i]) for i in new if i not in old],
            "updated": [title(new[i]) for i in new if i in old and old[i] != new[i]],
            "removed": [title(old[i]) for i in old if i not in new],
        }
        if any(entry.values()):
            changes[slug] = entry
    return changes
