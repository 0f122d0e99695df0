"""index.html: a dependency-free page (no JavaScript) listing every feed with autodiscovery; pure."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib import resources
from string import Template

import aggregator
from aggregator.model import Article, OutputConfig
from aggregator.publish import formatting
from aggregator.publish.formatting import FeedSpec

LATEST = 5  # titles shown per feed
_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}
_LABELS = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}


def render_index(output: OutputConfig, feeds: Sequence[tuple[FeedSpec, Sequence[Article]]]) -> bytes:
    """The page; `feeds` hold each spec with the articles its feed publishes (ordered, limited)."""
    package = resources.files("aggregator.publish")
    template = Template(package.joinpath("index.html").read_text(encoding="utf-8"))
    formats = feed_formats(output)
    ids = {spec.slug: [a.id for a in articles] for spec, articles in feeds}
    entries = len({i for feed_ids in ids.values() for i in feed_ids})
    page = template.substitute(
        lang=_attr(formatting.language(output.language) or "en"),
        generator=_attr(f"aggregator {aggregator.__version__}"),
        title=_text(formatting.site_title(output)),
        discovery="\n".join(_discovery(spec, formats) for spec, _ in feeds)
        + '\n<link rel="outline" type="text/x-opml" title="All feeds (OPML)" href="feeds.opml">',
        css=package.joinpath("index.css").read_text(encoding="utf-8"),
        summary=_text(f"{len(feeds)} feeds, {entries} entries."),
        sections="\n".join(_section(spec, articles, formats, len(ids[spec.slug])) for spec, articles in feeds),
    )
    return page.encode("utf-8")


def feed_formats(output: OutputConfig) -> list[str]:
    return ["atom"] + [fmt for fmt in ("rss", "json") if fmt in output.formats]


def _discovery(spec: FeedSpec, formats: Sequence[str]) -> str:
    return "\n".join(
        f'<link rel="alternate" type="{_TYPES[fmt]}" title="{_attr(formatting.feed_title(spec))}"'
        f' href="{_attr(formatting.check_slug(spec.slug))}.{fmt}">'
        for fmt in formats
    )


def _section(spec: FeedSpec, articles: Sequence[Article], formats: Sequence[str], count: int) -> str:
    slug = formatting.check_slug(spec.slug)
    lines = [f'<section class="feed" id="feed-{slug}">', f"<h2>{_text(formatting.feed_title(spec))}</h2>"]
    subtitle = formatting.text(spec.subtitle, formatting.MAX_TITLE)
    if subtitle:
        lines.append(f'<p class="subtitle">{_text(subtitle)}</p>')
    links = "".join(
        f'<li><a href="{slug}.{fmt}" type="{_TYPES[fmt]}">{_LABELS[fmt]}</a></li>' for fmt in formats
    )
    lines.append(f'<ul class="subscribe">{links}</ul>')
    updated = formatting.feed_updated(articles)
    last = (
        f'last updated <time datetime="{updated.isoformat()}">{updated:%Y-%m-%d %H:%M} UTC</time>'
        if articles
        else "no entries yet"
    )
    lines.append(f'<p class="meta">{count} entr{"y" if count == 1 else "ies"} · {last}</p>')
    if articles:
        lines.append('<ol class="latest">')
        lines.extend(_latest(article) for article in articles[:LATEST])
        lines.append("</ol>")
    lines.append("</section>")
    return "\n".join(lines)


def _latest(article: Article) -> str:
    title = _text(formatting.text(formatting.entry_title(article), 200))
    link = formatting.web_iri(article.link)
    when = formatting.updated_of(article)
    label = f'<a href="{_attr(link)}">{title}</a>' if link else title
    return f'<li>{label} <time datetime="{when.isoformat()}">{when:%Y-%m-%d}</time></li>'


def _text(value: str) -> str:
    return escape(value, quote=False)


def _attr(value: str) -> str:
    return escape(value, quote=True)
