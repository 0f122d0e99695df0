"""Issue 4 "Done when", over every item of the test corpus (tests/corpus): no relative URL, style/class, comment,
tracking pixel or bad lead image survives, and cleaning is idempotent. Also: a 5 MB body finishes."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree
from test_clean_support import articles_of, corpus_files

from aggregator.clean import clean_article, clean_html
from aggregator.clean.images import is_lead_worthy
from aggregator.clean.rules import is_tracker
from aggregator.clean.tree import parse_fragment
from aggregator.model import Article, CleanConfig

CONFIG = CleanConfig()
URL_ATTRS = ("href", "src", "poster", "cite")


def _problems(html: str) -> list[str]:
    found = []
    if "<!--" in html:
        found.append("comment")
    root = parse_fragment(html)
    for el in root.iter():
        for name in el.attrib:
            if name in ("style", "class", "id") or name.startswith("on"):
                found.append(f"attribute {name} on <{el.tag}>")
        for name in URL_ATTRS:
            value = el.get(name)
            if value is not None and not re.match(r"(https?://[^/]|mailto:)", value):
                found.append(f"<{el.tag} {name}={value!r}>: not absolute")
        for candidate in (el.get("srcset") or "").split(","):
            if candidate.strip() and not candidate.split()[0].startswith(("http://", "https://")):
                found.append(f"<{el.tag} srcset> candidate {candidate!r}")
        if el.tag == "img":
            src = el.get("src", "")
            if not src or is_tracker(src) or el.get("width") in ("0", "1") or el.get("height") in ("0", "1"):
                found.append(f"pixel or empty image {src!r}")
        if el.tag in ("script", "style", "object", "embed", "form", "svg", "math", "font", "span"):
            found.append(f"element <{el.tag}>")
        if el.tag == "iframe" and not (
            el.get("sandbox") and urlsplit(el.get("src", "")).hostname in CONFIG.iframe_hosts
        ):
            found.append(f"iframe {el.get('src')!r} not an allowlisted sandboxed player")
    return found


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(p.parents[1])))
def test_corpus_item_comes_out_clean(path: Path) -> None:
    for article in articles_of(path):
        cleaned = clean_article(article, CONFIG)
        html = cleaned.content_html
        assert _problems(html) == [], article.id
        assert clean_html(html, "", CONFIG) == html, f"{article.id}: not idempotent"
        assert cleaned.image == "" or is_lead_worthy(cleaned.image, ()), article.id
        assert "\n" not in cleaned.summary and "\n" not in cleaned.title, article.id  # plain, collapsed text
        assert cleaned.link == "" or not re.search(r"[?&](utm_\w+|fbclid|gclid)=", cleaned.link)
        assert not re.search(r"appeared first on|~ff/|feedflare|/_/stat\?", html, re.IGNORECASE), article.id


def test_corpus_has_dirt_to_clean() -> None:
    """The invariants above mean something: the raw corpus breaks each of them."""
    raw = [a.content_html for p in corpus_files() for a in articles_of(p)]
    assert len(raw) > 3000
    joined = "\n".join(raw)
    assert "<!--" in joined and " style=" in joined and " class=" in joined and "~ff/" in joined
    assert any(re.search(r'src="/[^/]', h) for h in raw)  # root-relative
    assert any('src="//' in h or "src='//" in h for h in raw)  # protocol-relative


def test_five_megabyte_body_finishes() -> None:
    """Cost is linear: no regex backtracking blow-up, no quadratic DOM walk (issue 4 Tests)."""
    words = "lorem ipsum dolor sit amet, 中文字符测试。 " * 30
    block = (
        f'<div class="x"><p style="color:red">\u3000\u3000{words} <b>bold</b> &nbsp; <a href="/rel?utm_source=x">link</a>'
        '<img src="/i.png" width="1" height="1"></p><!-- c --><span>    </span></div>\n'
    )
    body = block * (5_000_000 // len(block))
    assert len(body) > 4_900_000
    out = clean_html(body, "https://example.org/", CONFIG)
    assert out.count("<p>lorem ipsum") == body.count("<p style")
    assert 'href="https://example.org/rel"' in out and "<img" not in out and "<!--" not in out


@pytest.mark.parametrize(
    "html",
    ["<div>" * 5000 + "deep" + "</div>" * 5000, "<" * 200_000, "&" * 1_000_000, " \u3000" * 1_000_000,
     "<p>" + "a " * 500_000 + "</p>", "<a href='x'>" * 3000, "<table><tr><td>" * 2000],
    ids=["nested", "lt", "amp", "blank", "long-p", "open-a", "open-table"],
)
def test_pathological_bodies_finish(html: str) -> None:
    out = clean_html(html, "https://example.org/", CONFIG)
    assert "<!--" not in out and "style=" not in out
    assert clean_html(out, "https://example.org/", CONFIG) == out


def test_dom_pass_failure_falls_back_to_the_sanitizer(monkeypatch: pytest.MonkeyPatch) -> None:
    import aggregator.clean as clean_module

    def broken(*args: object) -> str:
        raise etree.ParserError("boom")

    monkeypatch.setattr(clean_module, "restructure", broken)
    html = '<p onclick="x()">hi<script>alert(1)</script><img src="https://e.org/a.png"></p>'
    out = clean_module.clean_html(html, "https://e.org/", CONFIG)
    assert out == '<p>hi<img src="https://e.org/a.png"></p>'
    article = Article(id="a", source_url="s", source_name="s", content_html=html, title="t")
    assert clean_module.clean_article(article, CONFIG).content_html == out
