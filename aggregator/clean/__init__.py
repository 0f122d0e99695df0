"""The clean stage: Article in, Article out with safe, tidy HTML, plain text title/summary and a lead image; pure.

Steps, in order (miniflux-style: structure first, sanitizer last):
  1. restructure (html.py, lxml): drop junk by generic and site rules, fix lazy images, drop pixels,
     resolve URLs, strip tracking parameters, unwrap wrappers, collapse whitespace, drop empty blocks;
  2. sanitize (sanitize.py, nh3): the allowlist table, always last. If step 1 raises, step 2 alone runs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from html import escape, unescape

from lxml import etree

from aggregator.tracking import strip_tracking

from ..model import Article, CleanConfig, Enclosure
from ..text import strip_invalid_xml_chars
from .html import junk_free_tree, restructure
from .images import choose_lead_image, content_images
from .rules import SiteRule, load_site_rules, rules_for
from .sanitize import sanitize
from .summary import (
    html_to_text,
    is_useful_summary,
    plain_title,
    root_text,
    title_from_summary,
    truncate_text,
)
from .tree import Explain, parse_fragment
from .urls import first_base, resolve_url

__all__ = ["SiteRule", "clean_article", "clean_html", "defer_cleaning", "load_site_rules"]

log = logging.getLogger(__name__)
# Only ASCII whitespace collapses, in both paths: U+3000 and nbsp are text to the DOM pass (idempotency).
_ASCII_WS = re.compile(r"[ \t\n\r\f\v]+")
_ASCII_BLANK = " \t\n\r\f\v"
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")


def clean_html(
    html: str,
    base_url: str = "",
    config: CleanConfig | None = None,
    host_rules: Sequence[SiteRule] | None = None,
    explain: list[str] | None = None,
    removed_images: set[str] | None = None,
) -> str:
    """Safe, tidy HTML for `html` seen at `base_url`. Never raises; idempotent.

    host_rules: the site rules to apply (default: the packaged and config rules matching base_url).
    removed_images receives the URLs of images the cleaning removed.
    """
    config = config or CleanConfig()
    rules = _rules(config, (), (base_url,)) if host_rules is None else tuple(host_rules)
    removed = removed_images if removed_images is not None else set()
    return _clean(html, base_url, config, rules, explain, removed)[0]


def _clean(
    html: str,
    base: str,
    config: CleanConfig,
    rules: tuple[SiteRule, ...],
    explain: list[str] | None,
    removed: set[str],
) -> tuple[str, etree._Element | None]:
    """Cleaned HTML and the DOM it came from (None when the DOM pass did not run)."""
    html = strip_invalid_xml_chars(html or "")
    if not html.strip(_ASCII_BLANK):
        return "", None
    if "<" not in html:  # plain text: nothing to restructure or sanitize; escaped as the sanitizer would
        text = escape(unescape(_ASCII_WS.sub(" ", html)).strip(_ASCII_BLANK), quote=False).replace("\u00a0", "&nbsp;")
        return text, None
    try:
        tidy, root = restructure(html, base, rules, config.iframe_hosts, Explain(explain), removed)
    except Exception:  # a DOM-pass bug must never lose an article: the sanitizer alone still makes it safe
        log.warning("structural cleaning failed for %s; sanitizing only", base or "an article", exc_info=True)
        return sanitize(html).strip(_ASCII_BLANK), None
    out = sanitize(tidy, config.iframe_hosts).strip(_ASCII_BLANK)
    if out.count("<") != tidy.count("<") or _TAG_NAMES.findall(out) != _TAG_NAMES.findall(tidy):
        # The sanitizer's parser (html5ever) read the markup differently from libxml2 (mutation-style
        # or broken markup): one more round over its own output reaches the fixed point (idempotency).
        try:
            tidy, root = restructure(out, base, rules, config.iframe_hosts, Explain(None), removed)
        except Exception:
            log.warning("structural cleaning failed for %s; sanitizing only", base or "an article", exc_info=True)
            return out, None
        out = sanitize(tidy, config.iframe_hosts).strip(_ASCII_BLANK)
    return out, root


# The sequence of tag names: when the sanitizer's parser nested or reordered elements (e.g. an
# <li> inside an <li>), the same number of tags is not enough to call the output settled.
_TAG_NAMES = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*")


def _rules(config: CleanConfig, extra: Sequence[Mapping[str, object]], urls: Sequence[str]) -> tuple[SiteRule, ...]:
    try:
        rules = load_site_rules([*config.rules, *extra])
    except ValueError:
        log.warning("invalid extra clean rules ignored", exc_info=True)
        rules = load_site_rules()
    return rules_for(rules, [u for u in urls if u])


def _lead_candidates(article: Article, base: str, root: etree._Element | None, content: str) -> list[str]:
    urls = [resolve_url(article.image, base)] if article.image else []
    for enc in article.enclosures:
        if enc.type.startswith("image/") or enc.url.lower().split("?")[0].endswith(_IMAGE_EXTENSIONS):
            urls.append(resolve_url(enc.url, base))
    if "<img" in content:
        urls.extend(content_images(root if root is not None else parse_fragment(content)))
    return urls


def _resolved_enclosure(enc: Enclosure, base: str) -> Enclosure:
    url = resolve_url(enc.url, base) or enc.url
    return enc if url == enc.url else replace(enc, url=url)  # replace() is costly; most URLs are absolute


def _summary_text(summary: str, base: str, rules: tuple[SiteRule, ...], removed: set[str]) -> str:
    """The feed's summary as plain text, without the junk the cleaning would remove from it."""
    summary = strip_invalid_xml_chars(summary)
    if "<" not in summary:
        return html_to_text(summary)
    try:
        return root_text(junk_free_tree(summary, base, rules, removed))
    except Exception:  # as in _clean: a DOM-pass bug never loses an article
        log.warning("structural cleaning failed for the summary of %s", base or "an article", exc_info=True)
        return html_to_text(sanitize(summary))


def clean_article(
    article: Article,
    config: CleanConfig,
    extra_rules: Sequence[Mapping[str, object]] = (),
    explain: list[str] | None = None,
) -> Article:
    """A new Article: cleaned content, plain-text title and summary, lead image, tracking-free link."""
    base = first_base(article.base_url, article.link, article.feed.link)
    link = _clean_link(article.link, base)
    rules = _rules(config, extra_rules, (article.link, article.feed.link, article.base_url))
    removed: set[str] = set()
    content, root = _clean(article.content_html, base, config, rules, explain, removed)
    image = choose_lead_image(_lead_candidates(article, base, root, content), removed)
    # a summary that is the content again (the parsers copy one into the other when a feed gives only
    # one of them) says nothing of its own: it is derived from the cleaned content, as for none
    has_own_summary = article.summary and article.summary != article.content_html
    summary_text = _summary_text(article.summary, base, rules, removed) if has_own_summary else ""
    # only the start of the content matters: the summary is compared with it or cut from it
    limit = max(config.summary_length * 2, len(summary_text) * 2) + 200
    content_text = root_text(root, limit) if root is not None else html_to_text(content)
    if not is_useful_summary(summary_text, content_text):
        summary_text = truncate_text(content_text, config.summary_length)
    # a deferred article's title is already plain text: decoding it again would decode twice
    title = article.title if article.needs_cleaning else plain_title(article.title)
    if not title and summary_text:
        title = title_from_summary(summary_text)
    enclosures = tuple(_resolved_enclosure(enc, base) for enc in article.enclosures)
    return replace(
        article,
        title=strip_invalid_xml_chars(title),
        summary=strip_invalid_xml_chars(summary_text),
        content_html=content,
        link=link or article.link,
        image=image,
        enclosures=enclosures,
        needs_cleaning=False,
    )


def _clean_link(link: str, base: str) -> str:
    return strip_tracking(resolve_url(link, base)) if link else ""


def defer_cleaning(article: Article) -> Article:
    """The article with only what identifies it cleaned (title and link, exactly as clean_article
    makes them when the title is not empty); the rest waits, marked, until an output needs it."""
    base = first_base(article.base_url, article.link, article.feed.link)
    return replace(
        article,
        title=strip_invalid_xml_chars(plain_title(article.title)),
        link=_clean_link(article.link, base) or article.link,
        needs_cleaning=True,
    )
