"""Which sources are due, grouped by the host their next fetch goes to: what the tick enqueues. Pure."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from aggregator.fetch import SourceState
from aggregator.fetch.budget import host_key
from aggregator.fetch.schedule import is_due
from aggregator.model import Source


# What the tick needs of a saved state: is_due's fields and the address of the next request (the store's
# due_at already picked the due ones; a due state is read only for these).
DUE_FIELDS = ("gone", "retry_after_until", "next_due", "moved_to")


def due_view(saved: Mapping[str, object]) -> SourceState:
    """A saved state read for scheduling only: its DUE_FIELDS as SourceState.from_dict reads them."""
    return SourceState.from_dict({name: saved[name] for name in DUE_FIELDS if name in saved})


def fetch_host(source: Source, state: SourceState | None) -> str:
    """The host a source's next request goes to (its confirmed new address after a permanent move), as
    the fetch budgets key it (host and port): one job per host keeps the per-host limits whole."""
    return host_key((state.moved_to if state else "") or source.url)


def due_by_host(sources: Iterable[Source], due_states: Mapping[str, SourceState], known: Collection[str],
                now: datetime) -> dict[str, list[str]]:
    """Host -> the URLs of its sources due at `now` (in config order); hosts in first-seen order.
    due_states: the saved states the store found due (Store.due_source_states), each checked again with
    is_due; known: every URL with a saved state: a source without one has never been fetched, so is due."""
    hosts: dict[str, list[str]] = {}
    for source in sources:
        state = due_states.get(source.url)
        if state is not None:
            if is_due(state, now) != "due":
                continue
        elif source.url in known:
            continue
        hosts.setdefault(fetch_host(source, state), []).append(source.url)
    return hosts
