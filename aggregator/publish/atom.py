"""Atom 1.0 rendering (RFC 4287) via feedgen; pure: same articles, same bytes; must not write files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aggregator.model import Article, OutputConfig
from aggregator.publish import common
from aggregator.publish._feedgen import build_feed
from aggregator.publish.common import FeedSpec


def render_atom(
    spec: FeedSpec,
    articles: Sequence[Article],
    output: OutputConfig,
    categories_of: Mapping[str, Sequence[str]],
) -> bytes:
    """The Atom document for `spec`: newest first, at most `output.max_entries` entries."""
    ordered = common.order_articles(articles, output.max_entries)
    fg = build_feed(spec, ordered, output, categories_of, fmt="atom")
    return bytes(fg.atom_str(pretty=True, encoding="UTF-8"))
