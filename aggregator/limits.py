"""The per-source cap (output.max_per_source) counted one way everywhere: the store's feed windows,
publishing's selection and `aggregator why` must agree on which entries it leaves out; pure."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

_T = TypeVar("_T")


def cap_per_key(items: Sequence[_T], key: Callable[[_T], Hashable], cap: int) -> tuple[list[_T], list[_T]]:
    """(the first `cap` items of each key, in their order; the rest). `cap` 0: no cap."""
    if cap <= 0:
        return list(items), []
    counts: dict[Hashable, int] = {}
    kept: list[_T] = []
    over: list[_T] = []
    for item in items:
        k = key(item)
        counts[k] = counts.get(k, 0) + 1
        (kept if counts[k] <= cap else over).append(item)
    return kept, over
