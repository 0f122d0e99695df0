"""RSS 2.0 rendering via feedgen (optional format); pure; must not write files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aggregator.model import Article, OutputConfig
from aggregator.publish import formatting
from aggregator.publish.formatting import FeedSpec


def render_rss(
    spec: FeedSpec,
    articles: Sequence[Article],
    output: OutputConfig,
    categories_of: Mapping[str, Sequence[str]],
) -> bytes:
    """The RSS 2.0 document for `spec`: same entries and order as the Atom feed."""
    from aggregator.publish._feedgen import build_feed  # feedgen: imported while fetching (see pipeline)

    ordered = formatting.order_articles(articles, output.max_entries)
    fg = build_feed(spec, ordered, output, categories_of, fmt="rss")
    return bytes(fg.rss_str(pretty=True, encoding="UTF-8"))
