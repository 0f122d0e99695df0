"""The lxml fast path against feedparser over the whole shared corpus: where it answers, it answers the same."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import pytest
from conftest import CORPUS

from aggregator.errors import ParseError
from aggregator.model import ParsedFeed
from aggregator.parse import fast, parse_feed

_SKIP_SUFFIXES = (".md", ".tsv", ".py", ".json")
DOCUMENTS = sorted(
    path.relative_to(CORPUS).as_posix()
    for folder in ("feeds", "rsshub", "hostile/xml")
    for path in (CORPUS / folder).rglob("*")
    if path.is_file() and path.suffix not in _SKIP_SUFFIXES
)
# Content types the fetch stage passes on, each steering feedparser's encoding choice differently.
CONTENT_TYPES = (
    "application/rss+xml; charset=utf-8",
    "text/xml",
    "text/html; charset=iso-8859-1",
    "application/octet-stream",
    "text/xml; charset=gbk",
)

Outcome = ParsedFeed | str  # a ParseError's message


def _source_url(name: str) -> str:
    return "http://src.example/" + name


@functools.cache
def _body(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def _outcome(name: str, content_type: str, use_fast: bool) -> Outcome:
    headers = {"Content-Type": content_type} if content_type else {}
    saved, fast.ENABLED = fast.ENABLED, use_fast
    try:
        return parse_feed(_body(name), headers, _source_url(name), "src")
    except ParseError as exc:
        return str(exc)
    finally:
        fast.ENABLED = saved


def _differences(got: Outcome, want: Outcome) -> Iterator[str]:
    """Field by field, so a failure names the article and field that differ."""
    if isinstance(got, str) or isinstance(want, str):
        if got != want:
            yield f"outcome: {got!r:.200} != {want!r:.200}"
        return
    if got.meta != want.meta:
        yield f"meta: {got.meta} != {want.meta}"
    if got.warnings != want.warnings:
        yield f"warnings: {got.warnings} != {want.warnings}"
    if len(got.articles) != len(want.articles):
        yield f"article count: {len(got.articles)} != {len(want.articles)}"
    for index, (mine, theirs) in enumerate(zip(got.articles, want.articles, strict=False)):
        for field in dataclasses.fields(mine):
            a, b = getattr(mine, field.name), getattr(theirs, field.name)
            if a != b:
                yield f"article {index} {field.name}: {a!r:.300} != {b!r:.300}"


def _accepts(name: str, content_type: str = "") -> bool:
    return fast.parse(_body(name), content_type.lower(), _source_url(name)) is not None


@functools.cache
def _accepted() -> tuple[str, ...]:
    return tuple(name for name in DOCUMENTS if _accepts(name))


@pytest.mark.parametrize("name", DOCUMENTS)
def test_fast_path_equals_feedparser(name: str) -> None:
    # Documents the fast path declines go to feedparser alone, so both runs are then trivially equal.
    if not _accepts(name):
        assert fast.decline_reason(_body(name), "", _source_url(name))
        return
    want = _outcome(name, "", use_fast=False)
    got = _outcome(name, "", use_fast=True)
    assert list(_differences(got, want)) == []
    assert got == want


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_fast_path_equals_feedparser_under_content_types(content_type: str) -> None:
    # Every fifth document keeps the suite quick; the content type changes which encoding feedparser uses.
    checked = 0
    for name in DOCUMENTS[::5]:
        if not _accepts(name, content_type):
            continue
        checked += 1
        want = _outcome(name, content_type, use_fast=False)
        got = _outcome(name, content_type, use_fast=True)
        assert list(_differences(got, want)) == [], name
    assert checked >= 5


def test_fast_path_takes_most_well_formed_feeds() -> None:
    accepted = _accepted()
    formats = {fast.parse(_body(name), "", _source_url(name))["version"] for name in accepted}  # type: ignore[index]
    assert {"rss20", "atom10", "rss10"} <= formats
    real = [name for name in accepted if not name.startswith("hostile/")]
    assert len(real) >= 135, len(real)  # 138 of 184 real XML documents when written


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("hostile/xml/rss091_netscape_doctype.xml", "DOCTYPE"),
        ("hostile/xml/xhtml_content_script.xml", "application/xhtml+xml"),
        ("hostile/xml/utf7_declared.xml", ""),
        ("hostile/xml/trailing_garbage.xml", "XMLSyntaxError"),
        ("hostile/xml/gbk_bytes_declared_utf8.xml", "UnicodeDecodeError"),
        ("hostile/xml/bom_utf16le.xml", "wide encoding"),
        ("feeds/node-feedparser/illegally-nested.xml", "entry element item"),
    ],
)
def test_fast_path_declines_what_it_cannot_reproduce(name: str, reason: str) -> None:
    assert not _accepts(name)
    assert reason in fast.decline_reason(_body(name), "", _source_url(name))


def test_utf7_is_never_trusted() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-7"?><rss version="2.0"><channel><title>t</title></channel></rss>'
    )
    assert fast.parse(body, "", "http://src.example/") is None
    assert "utf-7" in fast.decline_reason(body, "", "http://src.example/")


def test_switched_off_it_takes_nothing() -> None:
    name = _accepted()[0]
    saved, fast.ENABLED = fast.ENABLED, False
    try:
        assert fast.parse(_body(name), "", _source_url(name)) is None
    finally:
        fast.ENABLED = saved
