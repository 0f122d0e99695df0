"""OPML in and out of the config: import subscriptions (keeping the YAML's comments), export sources.

Import rules: each outline with an xmlUrl is a source; its category is the outermost folder
around it (nested folders fold into that one), or the default category outside any folder.
Folder names become safe slugs ([a-z0-9_-]); the folder text stays the category title.
URLs already in the config, repeated, not http(s) or refused by `check` (e.g. host 127.1) are skipped
with a reason.
Every `$` of an imported URL, name or title is written as `$$`: OPML comes from third parties, and
a `${NAME}` in it must stay text, never pull a secret from the environment (issue 20, item 5).
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from lxml import etree

from aggregator import __version__
from aggregator.config import SLUG, load_config, slug_problem
from aggregator.config.urls import checked_http_url, scheme_of
from aggregator.config.yamlfile import escape_env
from aggregator.errors import ConfigError, naming
from aggregator.model import Config


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    title: str
    folder: str  # "" outside any folder


def read_opml(path: Path) -> list[OpmlFeed]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             recover=False)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if b"<!ENTITY" in data:  # entity expansion is an attack vector, never a feature of OPML
        raise ConfigError(f"{path}: refused: the document declares XML entities")
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not well-formed OPML: {exc.msg}") from exc
    if root is None:
        raise ConfigError(f"{path}: empty document, expected OPML")
    if root.tag != "opml" or root.find("body") is None:
        raise ConfigError(f"{path}: not an OPML document (root <{root.tag}>, expected <opml> with a <body>)")
    feeds: list[OpmlFeed] = []
    for outline in root.find("body").iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if not url:
            continue
        title = (outline.get("title") or outline.get("text") or "").strip()
        folders = [a.get("title") or a.get("text") or "" for a in outline.iterancestors("outline")]
        feeds.append(OpmlFeed(url, title, folders[-1].strip() if folders else ""))
    return feeds


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9_-]+", "-", ascii_text).strip("-_")[:40]
    if not slug or slug == "all":  # non-Latin names: a stable slug from the name's hash
        slug = "category-" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return slug


def import_opml(opml_path: Path, config_path: Path, *, default_category: str = "imported") -> tuple[list[str], list[str]]:
    """Add the OPML's feeds to the config file (created if missing). Returns (added URLs, skip reasons)."""
    from ruamel.yaml import YAML

    if not SLUG.fullmatch(default_category):
        raise ConfigError(f"--category {default_category!r}: {slug_problem(default_category)}")
    feeds = read_opml(opml_path)
    yaml = YAML()  # round-trip mode keeps comments and layout of the existing file
    yaml.indent(mapping=2, sequence=4, offset=2)
    if config_path.exists():
        load_config(config_path)  # refuse to edit a config that is already broken
        data = yaml.load(config_path.read_text(encoding="utf-8"))
    else:
        data = yaml.load(_NEW_CONFIG)
    categories = data.setdefault("categories", {}) or {}
    data["categories"] = categories
    sources = data.setdefault("sources", []) or []
    data["sources"] = sources
    # the config's raw text, as the OPML's values are written: `$$` for each `$`
    known = {str(s.get("url")) for s in sources if hasattr(s, "get")}
    titles = {str(v.get("title", k)) if hasattr(v, "get") else str(k): k for k, v in categories.items()}
    added: list[str] = []
    skipped: list[str] = []
    for feed in feeds:
        if scheme_of(feed.url) not in ("http", "https"):
            skipped.append(f"{feed.url!r}: not an http(s) URL")
            continue
        try:  # what `check` would refuse is never written: one bad outline must not lock the config out
            url, folder = escape_env(checked_http_url(feed.url)), escape_env(feed.folder)
        except ValueError as exc:
            skipped.append(str(exc))
            continue
        if url in known:
            skipped.append(f"{feed.url}: already in the config")
            continue
        slug = titles.get(folder) if folder else default_category
        if slug is None:
            slug = _unique_slug(slugify(feed.folder), categories)
            categories[slug] = {"title": folder}
            titles[folder] = slug
        elif slug not in categories:
            categories[slug] = {"title": slug.replace("-", " ").title()}
        entry = {"url": url, "category": slug}
        if feed.title:
            entry["name"] = escape_env(feed.title)
        sources.append(entry)
        known.add(url)
        added.append(feed.url)
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = config_path.with_name(config_path.name + ".tmp")
    with naming(tmp):  # a full disk names the file
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    tmp.replace(config_path)
    return added, skipped


def _unique_slug(slug: str, taken: object) -> str:
    candidate, n = slug, 2
    while candidate in taken:  # type: ignore[operator]
        candidate, n = f"{slug}-{n}", n + 1
    return candidate


def export_opml(config: Config) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0">', "  <head>",
             f"    <title>aggregator {__version__} sources</title>", "  </head>", "  <body>"]
    for slug, category in config.categories.items():
        lines.append(f"    <outline text={quoteattr(category.title)} title={quoteattr(category.title)}>")
        for source in config.sources:
            if slug in source.categories:
                name = source.name or source.url
                lines.append(f"      <outline type=\"rss\" text={quoteattr(name)} title={quoteattr(name)} "
                             f"xmlUrl={quoteattr(source.url)}/>")
        lines.append("    </outline>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


_NEW_CONFIG = """\
# aggregator config, created by `aggregator import-opml`. See the README for every key.
output:
  dir: feeds                      # relative paths resolve against this file's folder
  base_url: http://localhost/feeds/
  max_entries: 50
state: state/state.db
categories: {}
sources: []
"""
