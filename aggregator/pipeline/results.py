"""What a run was asked to do (RunOptions) and what it did (SourceReport, RunSummary): plain values, no logic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.fetch import (
    SourceState,
)
from aggregator.model import Source
from aggregator.publish import PublishReport


@dataclass(frozen=True)
class RunOptions:
    force: bool = False
    retry_gone: bool = False
    only: tuple[str, ...] = ()  # source names/URLs or category slugs
    dry_run: bool = False
    accept_burst: tuple[str, ...] = ()  # source names/URLs whose held-back burst is let through
    explain: bool = False
    workers: int = 0  # 0 = one per core
    lock_timeout_s: float | None = None  # None = the config's lock_timeout
    clock: Callable[[], float] = time.monotonic  # seconds; what fetch.run_deadline is measured on
    new_state: bool = False  # start a missing or empty state afresh even though earlier runs left outputs


@dataclass
class SourceReport:
    source: Source
    kind: str  # fetched, not_modified, unchanged, not_due, failed, gone
    error: str = ""
    articles: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0  # items known already: skipped unparsed, or parsed and found the same (duplicates too)
    held_back: int = 0
    capped: int = 0  # new items left out by fetch.max_new_per_fetch / max_items_per_source
    size: int = 0  # bytes of the fetched body (0: none fetched)
    elapsed_s: float = 0.0  # the fetch's wall time: waits for its host's slot, redirects, retries, body
    parser: str = ""  # which parser read the body (json, fast, feedparser); "" = none ran
    dropped: dict[str, int] = field(default_factory=dict)  # filter rule label -> count
    warnings: tuple[str, ...] = ()
    explain: tuple[str, ...] = ()
    moved_to: str = ""
    full_text_failures: list[str] = field(default_factory=list)
    date_state: dict[str, object] = field(default_factory=dict)  # tz_samples, tz_offset_s
    state: SourceState | None = None  # the source's fetch state after this run (health.json reads it)

    @property
    def name(self) -> str:
        """How reports and logs name the source: its `name:`, else its feed's own title, else its URL."""
        return self.source.name or (self.state.title if self.state else "") or self.source.url


@dataclass
class RunSummary:
    started: datetime
    seconds: float = 0.0
    sources: list[SourceReport] = field(default_factory=list)
    publish: PublishReport | None = None
    dry_run: bool = False
    changes: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # dry run: feed -> new/removed titles

    def count(self, kind: str) -> int:
        return sum(1 for report in self.sources if report.kind == kind)

    @property
    def new(self) -> int:
        return sum(r.new for r in self.sources)

    @property
    def updated(self) -> int:
        return sum(r.updated for r in self.sources)

    @property
    def held_back(self) -> int:
        return sum(r.held_back for r in self.sources)

    @property
    def failures(self) -> list[SourceReport]:
        return [r for r in self.sources if r.kind in ("failed", "gone")]

    @property
    def dropped(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for report in self.sources:
            for label, count in report.dropped.items():
                totals[label] = totals.get(label, 0) + count
        return totals
