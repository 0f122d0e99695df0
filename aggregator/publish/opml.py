"""OPML 2.0 subscription list of every output feed (http://opml.org/spec2.opml); pure."""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from aggregator.model import OutputConfig
from aggregator.publish import formatting
from aggregator.publish.formatting import FeedSpec

_TYPES = {"atom": "rss", "rss": "rss"}  # OPML's type="rss" means "a feed", whatever its format


def render_opml(output: OutputConfig, specs: Sequence[FeedSpec]) -> bytes:
    """One outline per feed (Atom; RSS too when configured), so a reader subscribes to all at once."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = formatting.site_title(output)
    etree.SubElement(head, "ownerName").text = formatting.text(output.author, formatting.MAX_NAME) or "aggregator"
    body = etree.SubElement(root, "body")
    for spec in specs:
        for fmt in ("atom", "rss"):
            if fmt == "atom" or fmt in output.formats:
                title = formatting.feed_title(spec) + ("" if fmt == "atom" else " (RSS)")
                outline = etree.SubElement(
                    body,
                    "outline",
                    type=_TYPES[fmt],
                    text=title,
                    title=title,
                    xmlUrl=formatting.feed_url(output, spec.slug, fmt),
                    htmlUrl=formatting.base_url(output),
                )
                if fmt == "rss":  # OPML 2.0 knows RSS versions only; Atom outlines carry none
                    outline.set("version", "RSS2")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
