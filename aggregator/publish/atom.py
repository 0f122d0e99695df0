"""Atom 1.0 rendering (RFC 4287) via feedgen; pure: same articles, same bytes; must not write files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from aggregator.model import Article, OutputConfig
from aggregator.publish import formatting
from aggregator.publish.formatting import FeedSpec


def render_atom(
    spec: FeedSpec,
    articles: Sequence[Article],
    output: OutputConfig,
    categories_of: Mapping[str, Sequence[str]],
    *,
    updated: datetime | None = None,
) -> bytes:
    """The Atom document for `spec`: newest first, at most `output.max_entries` entries.
    `updated`: the feed's date when the articles are only some of it (default: their newest)."""
    from aggregator.publish._feedgen import build_feed  # feedgen: imported while fetching (see pipeline)

    ordered = formatting.order_articles(articles, output.max_entries)
    fg = build_feed(spec, ordered, output, categories_of, fmt="atom", updated=updated)
    return bytes(fg.atom_str(pretty=True, encoding="UTF-8"))
