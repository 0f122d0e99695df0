"""index.html: a dependency-free page (no JavaScript) listing every feed with autodiscovery; pure."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from string import Template

from aggregator.model import Article, OutputConfig
from aggregator.publish import formatting, markup
from aggregator.publish.formatting import FeedSpec

LATEST = 5  # titles shown per feed


def render_index(output: OutputConfig, feeds: Sequence[tuple[FeedSpec, Sequence[Article]]]) -> bytes:
    """The page; `feeds` hold each spec with the articles its feed publishes (ordered, limited)."""
    package = resources.files("aggregator.publish")
    template = Template(package.joinpath("index.html").read_text(encoding="utf-8"))
    ids = {spec.slug: [a.id for a in articles] for spec, articles in feeds}
    entries = len({i for feed_ids in ids.values() for i in feed_ids})
    title = formatting.site_title(output)
    links = "\n".join(markup.discovery(spec, output) for spec, _ in feeds) + (
        '\n<link rel="outline" type="text/x-opml" title="All feeds (OPML)" href="feeds.opml">')
    page = template.substitute(
        head=markup.head(lang=output.language, title=title, css=markup.stylesheet("index.css"), links=links),
        generator=markup.generator(),
        title=markup.text(title),
        summary=markup.text(f"{len(feeds)} feeds, {entries} entries."),
        sections="\n".join(_section(spec, articles, output, len(ids[spec.slug])) for spec, articles in feeds),
    )
    return page.encode("utf-8")


def _section(spec: FeedSpec, articles: Sequence[Article], output: OutputConfig, count: int) -> str:
    slug = formatting.check_slug(spec.slug)
    title = markup.text(formatting.feed_title(spec))
    heading = f'<a href="{slug}.html">{title}</a>' if output.html else title
    lines = [f'<section class="feed" id="feed-{slug}">', f"<h2>{heading}</h2>"]
    subtitle = formatting.text(spec.subtitle, formatting.MAX_TITLE)
    if subtitle:
        lines.append(f'<p class="subtitle">{markup.text(subtitle)}</p>')
    page = [(f"{slug}.html", "text/html", "Read")] if output.html else []
    lines.append(markup.subscribe_links(spec, output, page))
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
    title = markup.text(formatting.text(formatting.entry_title(article), 200))
    link = formatting.web_iri(article.link)
    when = formatting.updated_of(article)
    label = f'<a href="{markup.attr(link)}">{title}</a>' if link else title
    return f'<li>{label} <time datetime="{when.isoformat()}">{when:%Y-%m-%d}</time></li>'
