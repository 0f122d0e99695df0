"""Markdown posts with YAML front matter for Hexo (and Hugo/Jekyll by mapping); renders, never writes.

Front matter follows the seed post (tests/corpus/seed/sina-finance-post.md): title, categories
[category title, source name, feed title], headimg, author, comments: false, date (RFC 1123 GMT),
thumbnail. headimg/thumbnail are the article's lead image and are omitted when it has none.

Nunjucks escaping: Hexo renders every post body with Nunjucks, which reads `{{`, `{%` and `{#` as
the start of a tag. In the HTML body each `{` that starts such a pair becomes the entity `&#123;`:
browsers display `{` again, Nunjucks sees no tag. A lone `{` is left alone. Front matter is YAML,
not a template, so it is not escaped; every string in it that comes from a feed (title, categories,
author, image) is single-quoted, so no YAML reader takes a title such as `1e3`, `0o17`, `yes`, `null`
or `2024-01-01` for a number, bool, null or date.

Config (`output.hexo`): `dir` (required: the posts folder), `prune` (bool, default false: delete our
posts whose article is no longer published), `date_format` ("rfc1123", default, or "iso8601" for
Hugo/Jekyll), `fields` (rename front-matter keys, e.g. {headimg: cover}; map a key to "" to drop it).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import format_datetime
from html import escape
from typing import Any

import yaml

from aggregator.model import Article
from aggregator.publish import formatting

POST_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}-(?:[a-z0-9-]+-)?[0-9a-f]{12}\.md$")
_NUNJUCKS_OPEN = re.compile(r"\{(?=[{%#])")
_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
# libyaml's emitter: PyYAML's pure-Python one dominated the time of writing thousands of posts.
_BASE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Quoted(str):
    """A front-matter string always written quoted. PyYAML quotes only what YAML 1.1 would read as
    another type, but Hexo reads front matter with js-yaml (YAML 1.2): a title `1e3`, `0o17` or `.inf`
    came back a number. Quoting every string from a feed is the one rule right under both."""

    __slots__ = ()


class _Dumper(_BASE_DUMPER):  # type: ignore[misc,valid-type]
    pass


_Dumper.add_representer(
    _Quoted, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="'"))
SLUG_WORDS = 60  # characters of title in a file name


@dataclass(frozen=True)
class HexoOptions:
    dir: str
    prune: bool = False
    date_format: str = "rfc1123"
    fields: tuple[tuple[str, str], ...] = ()


def hexo_options(raw: Mapping[str, object]) -> HexoOptions | None:
    """Options from `output.hexo`; None when no `dir` (posts off). Raises ValueError on bad values."""
    folder = raw.get("dir")
    if not folder:
        return None
    unknown = set(raw) - {"dir", "prune", "date_format", "fields"}
    if unknown:
        raise ValueError(f"output.hexo: unknown keys {sorted(unknown)}")
    date_format = str(raw.get("date_format", "rfc1123"))
    if date_format not in ("rfc1123", "iso8601"):
        raise ValueError(f"output.hexo.date_format: expected rfc1123 or iso8601, got {date_format!r}")
    fields = raw.get("fields") or {}
    if not isinstance(fields, Mapping):
        raise ValueError("output.hexo.fields: expected a mapping of key renames")  # noqa: TRY004 (a config value error)
    return HexoOptions(
        dir=str(folder),
        prune=bool(raw.get("prune", False)),
        date_format=date_format,
        fields=tuple((str(k), str(v)) for k, v in fields.items()),
    )


def post_name(article: Article) -> str:
    """`YYYY-MM-DD-<ascii title slug>-<12 hex of the id>.md`: the id hash keeps it collision-free."""
    date = formatting.published_of(article).strftime("%Y-%m-%d")
    ascii_title = (
        unicodedata.normalize("NFKD", formatting.entry_title(article)).encode("ascii", "ignore").decode()
    )
    slug = _SLUG_CHARS.sub("-", ascii_title.lower()).strip("-")[:SLUG_WORDS].strip("-")
    digest = hashlib.sha256(article.id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{date}-{slug}-{digest}.md" if slug else f"{date}-{digest}.md"


def post_digest(name: str) -> str:
    return name[-15:-3]


def render_post(article: Article, category: str, options: HexoOptions) -> bytes:
    """One Markdown post: YAML front matter (a real serializer: quotes, colons, # survive) + body."""
    front: dict[str, Any] = {
        "title": _Quoted(formatting.entry_title(article)),
        "categories": [_Quoted(name) for name in formatting.unique(
            [formatting.text(category), formatting.source_name(article),
             formatting.about_source(article.feed.title, article, formatting.MAX_TITLE)]
        )],
    }
    image = _Quoted(formatting.web_iri(article.image))
    if image:
        front["headimg"] = image
    front["author"] = _Quoted(", ".join(formatting.authors(article)))
    front["comments"] = False
    when = formatting.published_of(article)
    front["date"] = (
        format_datetime(when, usegmt=True) if options.date_format == "rfc1123" else when.isoformat()
    )
    if image:
        front["thumbnail"] = image
    front = _rename(front, dict(options.fields))
    header = yaml.dump(
        front, Dumper=_Dumper, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1 << 20
    )
    body = escape_nunjucks(formatting.html(article.content_html) or formatting.html(_paragraph(article.summary)))
    return f"---\n{header}---\n\n{body}\n".encode()


def escape_nunjucks(body: str) -> str:
    """`{{`, `{%`, `{#` would open a Nunjucks tag in Hexo: turn that `{` into `&#123;`."""
    return _NUNJUCKS_OPEN.sub("&#123;", body)


def _paragraph(summary: str) -> str:
    text = formatting.text(summary)
    return f"<p>{escape(text)}</p>" if text else ""


def _rename(front: dict[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    renamed: dict[str, Any] = {}
    for key, value in front.items():
        new_key = fields.get(key, key)
        if new_key:
            renamed[new_key] = value
    return renamed


def posts(
    articles: Sequence[Article], categories_of: Mapping[str, Sequence[str]], options: HexoOptions
) -> dict[str, bytes]:
    """File name -> post bytes for every distinct article (first category wins)."""
    result: dict[str, bytes] = {}
    seen: set[str] = set()
    for article in formatting.order_articles(articles, 0):
        if article.id in seen:
            continue
        seen.add(article.id)
        category = next(iter(categories_of.get(article.source_url, ())), "")
        result[post_name(article)] = render_post(article, category, options)
    return result
