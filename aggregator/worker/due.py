"""Which sources are due, grouped by the host their next fetch goes to: what the tick enqueues. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from aggregator.fetch import SourceState
from aggregator.fetch.budget import host_key
from aggregator.fetch.schedule import is_due
from aggregator.model import Source


def fetch_host(source: Source, state: SourceState | None) -> str:
    """The host a source's next request goes to (its confirmed new address after a permanent move), as
    the fetch budgets key it (host and port): one job per host keeps the per-host limits whole."""
    return host_key((state.moved_to if state else "") or source.url)


def due_by_host(sources: Iterable[Source], states: Mapping[str, SourceState], now: datetime
                ) -> dict[str, list[str]]:
    """Host -> the URLs of its sources due at `now` (in config order); hosts in first-seen order."""
    hosts: dict[str, list[str]] = {}
    for source in sources:
        state = states.get(source.url)
        if is_due(state or SourceState(), now) == "due":
            hosts.setdefault(fetch_host(source, state), []).append(source.url)
    return hosts
