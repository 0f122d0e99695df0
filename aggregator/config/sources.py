"""Categories and sources: slugs, per-category defaults, source URLs and categories, and their merge."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator.model import Category, Source

from .rules import rule_list
from .urls import checked_http_url, looks_like_a_host, scheme_of
from .values import INVALID, check_keys, convert, describe, suggest
from .yamlfile import Doc, Problems, display, line_of

SLUG_MAX = 100  # publish refuses longer file names; refusing them here keeps `check` honest
# match with fullmatch: `$` also matches before a final "\n" ("news\n" would pass .match)
SLUG = re.compile(rf"^[a-z0-9_-]{{1,{SLUG_MAX}}}$")
RESERVED_SLUGS = {"all"}  # all.atom is the combined feed
CATEGORY_KEYS = ("title", "subtitle", "filters", "interval", "headers", "user_agent", "full_text", "clean_rules")
SOURCE_KEYS = ("url", "category", "name", "interval", "headers", "user_agent", "full_text", "filters", "clean_rules")
OVERRIDE_KINDS = {"interval": "duration", "headers": "map", "user_agent": "str", "full_text": "bool",
                   "clean_rules": "list"}


def read_categories(doc: Doc, categories: dict[str, Category], defaults: dict[str, dict[str, Any]],
                    problems: Problems) -> None:
    raw = doc.data.get("categories")
    if raw is None:
        return
    if not isinstance(raw, dict):
        problems.add(doc, ("categories",), f"expected a mapping of slug: {{title: ...}}, got {describe(raw)}")
        return
    for slug, body in raw.items():
        key_path: tuple[object, ...] = ("categories", slug)
        if not isinstance(slug, str) or not SLUG.fullmatch(slug):
            problems.add(doc, key_path, slug_problem(slug))
            continue
        if slug in RESERVED_SLUGS:
            problems.add(doc, key_path, f"the slug {slug!r} is reserved for the combined feed")
            continue
        if slug in categories:
            problems.add(doc, key_path, "category defined twice")
            continue
        if body is None:
            body = {}
        if not isinstance(body, dict):
            problems.add(doc, key_path, f"expected a mapping with 'title', got {describe(body)}")
            continue
        check_keys(doc, key_path, body, CATEGORY_KEYS, problems)
        title = body.get("title", slug)
        subtitle = body.get("subtitle", "")
        for key, value in (("title", title), ("subtitle", subtitle)):
            if not isinstance(value, str):
                problems.add(doc, key_path + (key,), f"expected a string, got {describe(value)}")
        defaults[slug] = _overrides(doc, key_path, body, problems)
        categories[slug] = Category(
            slug=slug, title=str(title), subtitle=str(subtitle),
            filters=rule_list(doc, key_path + ("filters",), problems),
        )


def slug_problem(slug: object) -> str:
    """What is wrong with a slug that SLUG.fullmatch refuses."""
    if isinstance(slug, str) and len(slug) > SLUG_MAX:
        return f"category slug of {len(slug)} characters: at most {SLUG_MAX}"
    return "unsafe category slug: use only lower-case a-z, 0-9, '_' and '-'"


def _overrides(doc: Doc, key_path: tuple[object, ...], body: Mapping[str, Any],
               problems: Problems) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, kind in OVERRIDE_KINDS.items():
        if key in body:
            converted = convert(doc, key_path + (key,), body[key], kind, doc.path.parent, problems)
            if converted is INVALID:
                continue
            if key == "headers" and not all(isinstance(v, (str, int)) for v in converted.values()):
                problems.add(doc, key_path + (key,), "header values must be strings")
                continue
            values[key] = converted
    return values


def read_sources(doc: Doc, categories: Mapping[str, Category], category_defaults: Mapping[str, dict[str, Any]],
                 seen_urls: dict[str, str], out: list[Source], problems: Problems) -> None:
    raw = doc.data.get("sources")
    if raw is None:
        return
    if not isinstance(raw, list):
        problems.add(doc, ("sources",), f"expected a list of sources, got {describe(raw)}")
        return
    shown = display(doc.path)
    for index, body in enumerate(raw):
        source = _read_source(doc, index, body, categories, category_defaults, problems)
        if source is None:
            continue
        if source.url in seen_urls:
            problems.add(doc, ("sources", index, "url"), f"duplicate URL, already listed at {seen_urls[source.url]}")
            continue
        seen_urls[source.url] = f"{shown}:{line_of(doc, ('sources', index))}"
        out.append(source)


def _read_source(doc: Doc, index: int, body: Any, categories: Mapping[str, Category],
                 category_defaults: Mapping[str, dict[str, Any]], problems: Problems) -> Source | None:
    key_path: tuple[object, ...] = ("sources", index)
    if isinstance(body, str):
        problems.add(doc, key_path, "expected a mapping with 'url' and 'category', got a string")
        return None
    if not isinstance(body, dict):
        problems.add(doc, key_path, f"expected a mapping with 'url' and 'category', got {describe(body)}")
        return None
    before = len(problems.items)
    check_keys(doc, key_path, body, SOURCE_KEYS, problems)
    url = _source_url(doc, key_path, body, problems)
    slugs = _source_categories(doc, key_path, body, categories, problems)
    name = body.get("name", "")
    if not isinstance(name, str):
        problems.add(doc, key_path + ("name",), f"expected a string, got {describe(name)}")
    own = _overrides(doc, key_path, body, problems)
    filters = rule_list(doc, key_path + ("filters",), problems)
    if len(problems.items) > before or url is None or not slugs:
        return None
    merged: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for slug in slugs:  # category defaults, then the source's own values win
        merged.update({k: v for k, v in category_defaults.get(slug, {}).items() if k != "headers"})
        headers.update({str(k): str(v) for k, v in category_defaults.get(slug, {}).get("headers", {}).items()})
    merged.update({k: v for k, v in own.items() if k != "headers"})
    headers.update({str(k): str(v) for k, v in own.get("headers", {}).items()})
    if merged.get("full_text"):  # refused here rather than teasers kept silently at run time
        from aggregator.fulltext import missing_extractor

        if missing := missing_extractor():
            problems.add(doc, key_path + ("full_text",), missing)
    return Source(
        url=url, categories=tuple(slugs), name=str(name).strip(),
        interval=int(merged["interval"]) if "interval" in merged else None,
        headers=tuple(sorted(headers.items())), user_agent=merged.get("user_agent", ""),
        full_text=bool(merged.get("full_text", False)), filters=filters,
        clean_rules=tuple(merged.get("clean_rules", ())),
    )


def _source_url(doc: Doc, key_path: tuple[object, ...], body: Mapping[str, Any], problems: Problems) -> str | None:
    if "url" not in body:
        problems.add(doc, key_path, "missing key: url")
        return None
    url = body["url"]
    if not isinstance(url, str) or not url.strip():
        problems.add(doc, key_path + ("url",), f"expected an http(s) URL or a file path, got {describe(url)}")
        return None
    url = url.strip()
    scheme = scheme_of(url)
    try:
        if scheme in ("http", "https"):
            return checked_http_url(url)
        if scheme == "file":
            return str(Path(urlsplit(url).path).absolute())
        if scheme:
            hint = f" (did you mean 'http://{url}'?)" if re.match(r"[^:]+:[0-9]+(/|$)", url) else ""
            raise ValueError(f"expected an http(s) URL or a file path, got {url!r}{hint}")
        return _local_path(doc, url)
    except ValueError as exc:
        problems.add(doc, key_path + ("url",), str(exc))
        return None


def _local_path(doc: Doc, value: str) -> str:
    """A scheme-less value is a file path, unless it reads as a URL that lost its scheme."""
    path = os.path.normpath(doc.path.parent / Path(value).expanduser())
    if value.startswith("//") or (looks_like_a_host(value) and not os.path.exists(path)):
        bare = value.lstrip("/")
        raise ValueError(f"{value!r} has no scheme: write 'https://{bare}' for a URL, or './{bare}' for a file "
                         "beside the config")
    return path


def _source_categories(doc: Doc, key_path: tuple[object, ...], body: Mapping[str, Any],
                       categories: Mapping[str, Category], problems: Problems) -> list[str]:
    if "category" not in body:
        problems.add(doc, key_path, "missing key: category")
        return []
    raw = body["category"]
    slugs = [raw] if isinstance(raw, str) else raw
    if not isinstance(slugs, list) or not slugs or not all(isinstance(s, str) for s in slugs):
        problems.add(doc, key_path + ("category",), f"expected a category slug or a list of slugs, got {describe(raw)}")
        return []
    good: list[str] = []
    for slug in slugs:
        if slug not in categories:
            hint = suggest(slug, categories)
            problems.add(doc, key_path + ("category",), f"undefined category {slug!r}{hint}")
        elif slug not in good:
            good.append(slug)
    return good if len(good) == len(set(slugs)) else []
