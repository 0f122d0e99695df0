"""The state store: SQLite with identity/dedup rules, retention and the run lock (see store.db)."""

from __future__ import annotations

from aggregator.store.db import Store
from aggregator.store.upsert import DEFAULT_BURST_THRESHOLD, UpsertResult

__all__ = ["DEFAULT_BURST_THRESHOLD", "Store", "UpsertResult"]
