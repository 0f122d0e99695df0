"""Which of a feed's candidate articles it publishes, and which limit left out each other one; pure.

Publishing calls select_articles; the store's feed windows and `aggregator why` count the per-source
cap with the same function (limits.cap_per_key), so what a feed shows and what is said about an
article left out of it agree. The limits apply in this order:

    max_age         articles updated longer ago than output.max_age before `now` are left out
    (same story)    with `merge_similar`, one entry per story (publish.similar; not a limit: the
                    story is published, the merged copies are its related links)
    (one per id)    a repeated entry id keeps its newest version (not a limit: the id is published)
    max_per_source  each source keeps its newest N of what is left (a chatty source cannot fill a feed)
    max_entries     the feed keeps the newest N of what is left
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from aggregator.limits import cap_per_key
from aggregator.model import Article, OutputConfig
from aggregator.publish import similar
from aggregator.publish.formatting import order_articles, within_age

Limit = Literal["max_age", "max_per_source", "max_entries"]


@dataclass(frozen=True)
class Selection:
    published: tuple[Article, ...]  # newest first, as the feed shows them
    cut: tuple[tuple[Article, Limit], ...]  # each article a limit left out, and that limit


def select_articles(articles: Iterable[Article], output: OutputConfig, now: datetime | None, *,
                    merge_similar: bool = False) -> Selection:
    """A feed's articles as published (aged, the same story once with `merge_similar`, ordered, capped
    per source, limited) and the ones a limit left out. `now` None: no ageing (the caller selected by
    age already). A story's merged copies count for no source's cap: they are not entries."""
    candidates = list(articles)
    fresh = within_age(candidates, output.max_age, now)
    aged = _left_out(candidates, fresh)
    ordered = order_articles(similar.merge_similar(fresh) if merge_similar else fresh, 0)
    capped, over_cap = cap_per_key(ordered, lambda a: a.source_url, output.max_per_source)
    limit = output.max_entries
    published, beyond = (capped[:limit], capped[limit:]) if limit > 0 else (capped, [])
    cut: list[tuple[Article, Limit]] = [(a, "max_age") for a in aged]
    cut += [(a, "max_per_source") for a in over_cap]
    cut += [(a, "max_entries") for a in beyond]
    return Selection(tuple(published), tuple(cut))


def _left_out(candidates: Sequence[Article], kept: Sequence[Article]) -> list[Article]:
    kept_ids = {id(a) for a in kept}
    return [a for a in candidates if id(a) not in kept_ids]
