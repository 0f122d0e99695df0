"""What every HTML page we write shares: escaping, the strict Content-Security-Policy, the <head>,
the base stylesheet and the feed links; pure, no I/O.

Nothing from a feed may run in our pages: every value is escaped as text or attribute, links pass
formatting.web_iri (http(s) only), and the policy forbids scripts, frames, forms, fonts and fetches;
the one inline stylesheet is allowed by its hash, not by 'unsafe-inline', so markup that slipped
through could not even style the page.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from functools import cache
from html import escape
from importlib import resources

import aggregator
from aggregator.model import OutputConfig
from aggregator.publish import formatting
from aggregator.publish.formatting import FeedSpec

FEED_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}
FEED_LABELS = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}


def text(value: str) -> str:
    """`value` escaped as element text."""
    return escape(value, quote=False)


def attr(value: str) -> str:
    """`value` escaped for a double-quoted attribute."""
    return escape(value, quote=True)


@cache
def stylesheet(*names: str) -> str:
    """The package's CSS files `names`, joined: base.css first, then each page's own."""
    package = resources.files("aggregator.publish")
    return "".join(package.joinpath(name).read_text(encoding="utf-8") for name in ("base.css", *names))


def security_policy(css: str, *, images: bool) -> str:
    """No scripts, objects, frames, forms or fetches; the page's one <style> by its hash; remote images
    only where the page shows feeds' lead images (data: for inline ones)."""
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    img = "img-src https: http: data:; " if images else ""
    return f"default-src 'none'; {img}style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"


def head(*, lang: str, title: str, css: str, images: bool = False, links: str = "") -> str:
    """Everything from <!DOCTYPE> to <body>. `title` is plain text; `links`: <link> lines, already safe."""
    lines = [
        "<!DOCTYPE html>",
        f'<html lang="{attr(formatting.language(lang) or "en")}">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{attr(security_policy(css, images=images))}">',
        # no Referer to the sites whose images and articles a page links: privacy, and hotlink guards
        # let images without a Referer through
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="{generator()}">',
        f"<title>{text(title)}</title>",
    ]
    if links:
        lines.append(links)
    lines += [f"<style>{css}</style>", "</head>", "<body>"]
    return "\n".join(lines)


def generator() -> str:
    return attr(f"aggregator {aggregator.__version__}")


def discovery(spec: FeedSpec, output: OutputConfig) -> str:
    """The feed's autodiscovery links (<link rel="alternate">), one per published format."""
    return "\n".join(
        f'<link rel="alternate" type="{FEED_TYPES[fmt]}" title="{attr(formatting.feed_title(spec))}"'
        f' href="{formatting.check_slug(spec.slug)}.{fmt}">'
        for fmt in formatting.feed_formats(output)
    )


def subscribe_links(spec: FeedSpec, output: OutputConfig, first: Sequence[tuple[str, str, str]] = ()) -> str:
    """The pill list: `first` ((href, type, label), already safe) then one link per feed format."""
    slug = formatting.check_slug(spec.slug)
    links = [*first, *((f"{slug}.{fmt}", FEED_TYPES[fmt], FEED_LABELS[fmt]) for fmt in formatting.feed_formats(output))]
    items = "".join(f'<li><a href="{href}" type="{kind}">{label}</a></li>' for href, kind, label in links)
    return f'<ul class="subscribe">{items}</ul>'
