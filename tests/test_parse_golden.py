"""Parser goldens: every feed document of the corpus parses to what a reviewed record says it gives.

For each document in tests/corpus/feeds and tests/corpus/rsshub (all files but the READMEs and
MANIFESTs) tests/data/parse_expected/<its path below tests/corpus>.json holds what parse_feed makes of
it: the feed's meta, the warnings, and per article its ids, title, link, authors, dates (ISO 8601),
tags, enclosures, image and base URL, with content_html and summary as SHA-256 and length so the
records stay small. A document parse_feed refuses has a record of the ParseError's message instead.
The records live outside tests/corpus because every file there must be listed in its MANIFEST.

A change of parser behaviour fails here, naming the fields that differ. When the change is intended,
record the goldens again and read the diff of tests/data/parse_expected before committing it:

    AGGREGATOR_RECORD_PARSE=1 .venv/bin/python -m pytest -q tests/test_parse_golden.py

A new document gets its golden the same way; the golden of a removed document is deleted by hand
(test_every_golden_belongs_to_a_document names it).

Each document is parsed as if fetched from http://feeds.example/<its path> with the content type its
suffix suggests (CONTENT_TYPES).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, ROOT

from aggregator.errors import ParseError
from aggregator.model import Article, ParsedFeed
from aggregator.parse import parse_feed

GOLDEN = ROOT / "tests" / "data" / "parse_expected"
RECORDING = bool(os.environ.get("AGGREGATOR_RECORD_PARSE"))
CONTENT_TYPES = {
    ".json": "application/feed+json",
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".rdf": "application/rdf+xml",
}
DEFAULT_CONTENT_TYPE = "application/xml"  # .xml, and a suffix that says nothing
NOT_FEEDS = (".md", ".tsv")
DOCUMENTS = sorted(
    path.relative_to(CORPUS).as_posix()
    for folder in ("feeds", "rsshub")
    for path in (CORPUS / folder).rglob("*")
    if path.is_file() and path.suffix not in NOT_FEEDS
)


def golden_path(name: str) -> Path:
    return GOLDEN / f"{name}.json"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _text_digest(text: str) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "chars": len(text)}


def _article_record(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "original_id": article.original_id,
        "title": article.title,
        "link": article.link,
        "authors": list(article.authors),
        "published": _iso(article.published),
        "updated": _iso(article.updated),
        "tags": list(article.tags),
        "enclosures": [{"url": e.url, "type": e.type, "length": e.length} for e in article.enclosures],
        "image": article.image,
        "base_url": article.base_url,
        "language": article.language,
        "content_html": _text_digest(article.content_html),
        "summary": _text_digest(article.summary),
    }


def _feed_record(parsed: ParsedFeed) -> dict[str, Any]:
    meta = parsed.meta
    return {
        "feed": {
            "title": meta.title,
            "link": meta.link,
            "id": meta.id,
            "updated": _iso(meta.updated),
            "language": meta.language,
            "ttl_s": meta.ttl_s,
            "format": meta.format,
        },
        "warnings": list(parsed.warnings),
        "articles": [_article_record(a) for a in parsed.articles],
    }


def parse_record(name: str) -> dict[str, Any]:
    """What parse_feed makes of one corpus document, as the golden records it."""
    path = CORPUS / name
    url = f"http://feeds.example/{name}"
    headers = {"content-type": CONTENT_TYPES.get(path.suffix, DEFAULT_CONTENT_TYPE)}
    try:
        parsed = parse_feed(path.read_bytes(), headers, url, name, url)
    except ParseError as exc:
        return {"document": name, "content_type": headers["content-type"], "parse_error": str(exc)}
    return {"document": name, "content_type": headers["content-type"], **_feed_record(parsed)}


def dump(value: Any, depth: int = 0) -> str:
    """JSON with one line per article field (the lines a reviewer reads in a diff): containers nested
    deeper than an article's fields are written on one line."""
    if depth > 2 or not isinstance(value, (dict, list)) or not value:
        return json.dumps(value, ensure_ascii=False)
    inner = " " * (depth + 1)
    if isinstance(value, dict):
        rows = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {dump(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(rows) + "\n" + " " * depth + "}"
    return "[\n" + ",\n".join(inner + dump(v, depth + 1) for v in value) + "\n" + " " * depth + "]"


def _differences(expected: Any, actual: Any, where: str = "") -> list[str]:
    """The paths at which two records differ, e.g. `articles[3].title: 'a' != 'b'`."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return [line for key in dict.fromkeys([*expected, *actual])
                for line in _differences(expected.get(key, "<absent>"), actual.get(key, "<absent>"),
                                         f"{where}.{key}" if where else str(key))]
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [line for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for line in _differences(e, a, f"{where}[{i}]")]
    if isinstance(expected, list) and isinstance(actual, list):
        return [f"{where}: {len(expected)} entries recorded, {len(actual)} now"]
    return [] if expected == actual else [f"{where}: {expected!r} != {actual!r}"]


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_parses_as_recorded(name: str) -> None:
    actual = json.loads(json.dumps(parse_record(name)))  # as JSON gives it back: tuples become lists
    golden = golden_path(name)
    if RECORDING:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(dump(actual) + "\n", encoding="utf-8")
    assert golden.is_file(), f"no golden for {name}: record it with AGGREGATOR_RECORD_PARSE=1"
    expected = json.loads(golden.read_text(encoding="utf-8"))
    differences = _differences(expected, actual)
    assert differences == [], f"{name} parses differently from {golden.relative_to(ROOT)}: " + "; ".join(
        differences[:10])


def test_every_golden_belongs_to_a_document() -> None:
    """A golden whose document was removed or renamed would silently stop being checked."""
    names = {golden.relative_to(GOLDEN).as_posix().removesuffix(".json") for golden in GOLDEN.rglob("*.json")}
    assert len(DOCUMENTS) > 150
    assert sorted(names - set(DOCUMENTS)) == []
