"""OPML 2.0 subscription list of every output feed (http://opml.org/spec2.opml); pure."""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from aggregator.model import OutputConfig
from aggregator.publish import common
from aggregator.publish.common import FeedSpec

_TYPES = {"atom": "rss", "rss": "rss"}  # OPML's type="rss" means "a feed", whatever its format


def render_opml(output: OutputConfig, specs: Sequence[FeedSpec]) -> bytes:
    """One outline per feed (Atom; RSS too when configured), so a reader subscribes to all at once."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = common.site_title(output)
    etree.SubElement(head, "ownerName").text = common.text(output.author, common.MAX_NAME) or "aggregator"
    body = etree.SubElement(root, "body")
    for spec in specs:
        for fmt in ("atom", "rss"):
            if fmt == "atom" or fmt in output.formats:
                title = common.feed_title(spec) + ("" if fmt == "atom" else " (RSS)")
                outline = etree.SubElement(
                    body,
                    "outline",
                    type=_TYPES[fmt],
                    text=title,
                    title=title,
                    xmlUrl=common.feed_url(output, spec.slug, fmt),
                    htmlUrl=common.base_url(output),
                )
                if fmt == "rss":  # OPML 2.0 knows RSS versions only; Atom outlines carry none
                    outline.set("version", "RSS2")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
