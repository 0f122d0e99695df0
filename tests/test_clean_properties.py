"""Property tests (hypothesis): cleaning never raises, is idempotent, and emits nothing forbidden."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aggregator.clean import clean_article, clean_html
from aggregator.clean.tree import parse_fragment
from aggregator.model import Article, CleanConfig

CONFIG = CleanConfig()
TAGS = ["p", "div", "span", "font", "a", "img", "script", "style", "iframe", "svg", "math", "form", "noscript",
        "table", "td", "tr", "b", "i", "pre", "code", "h2", "ul", "li", "br", "center", "object", "embed",
        "template", "textarea", "title", "xmp", "select", "option", "blockquote", "q", "video", "source"]
ATTRS = ["href", "src", "style", "class", "id", "onclick", "onerror", "srcset", "data-src", "width", "height",
         "cite", "poster", "xlink:href", "action", "formaction", "sandbox", "referrerpolicy"]
VALUES = ["javascript:alert(1)", "jav&#x09;ascript:x", "//cdn.example.com/a.png", "/rel/path?utm_source=x",
          "https://www.youtube.com/embed/x", "data:text/html,x", "1", "0", "x.png 2x, javascript:y 1x",
          "color:red;display:none", "vbscript:x", "mailto:a@b.c", "http://x.example/p?fbclid=1&a=2", "\u3000"]
TEXTS = ["\u3000\u3000正文。", "&nbsp;&nbsp;text", "<!-- c -->", "]]>", "<![CDATA[x]]>", "&amp;amp;", " ", "\n",
         "The post X appeared first on Y.", "责任编辑：某", "--><script>alert(1)</script>", "</", "<", "&"]


@st.composite
def fragments(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 3 if depth < 3 else 1))
        if kind == 0:
            parts.append(draw(st.sampled_from(TEXTS)))
        elif kind == 1:
            parts.append(draw(st.text(max_size=8)))
        else:
            tag = draw(st.sampled_from(TAGS))
            attrs = "".join(
                f' {draw(st.sampled_from(ATTRS))}="{draw(st.sampled_from(VALUES))}"' for _ in range(draw(st.integers(0, 3)))
            )
            close = draw(st.booleans())
            parts.append(f"<{tag}{attrs}>{draw(fragments(depth + 1))}{f'</{tag}>' if close else ''}")
    return "".join(parts)


FORBIDDEN_TAGS = {"script", "style", "object", "embed", "form", "svg", "math", "font", "span", "center", "template",
                  "textarea", "select", "noscript", "xmp", "title"}


def _assert_safe(html: str) -> None:
    assert "<!--" not in html
    for el in parse_fragment(html).iter():
        assert el.tag not in FORBIDDEN_TAGS, html
        if el.tag == "iframe":
            assert el.get("sandbox") and el.get("src", "").startswith("https://www.youtube.com/"), html
        for name, value in el.attrib.items():
            assert not name.startswith("on") and name not in ("style", "class", "id", "action", "formaction"), html
            if name in ("href", "src", "cite", "poster"):
                assert re.match(r"(https?://|mailto:)", value), html
            if name == "srcset":
                assert all(c.split()[0].startswith(("https://", "http://")) for c in value.split(",")), html


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragments())
@example(html="<li><div><li>\u3000\u3000正文。")  # html5ever re-nests the <li>: a settled-looking count of tags
def test_clean_html_is_safe_and_idempotent(html: str) -> None:
    once = clean_html(html, "https://example.org/a/b.html", CONFIG)
    _assert_safe(once)
    assert clean_html(once, "https://example.org/a/b.html", CONFIG) == once


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_never_raises(text: str) -> None:
    once = clean_html(text, "https://example.org/", CONFIG)
    assert clean_html(once, "https://example.org/", CONFIG) == once


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragments(), st.text(max_size=40), fragments())
def test_clean_article_never_raises_and_is_idempotent(content: str, title: str, summary: str) -> None:
    article = Article(id="x", source_url="s", source_name="s", link="https://example.org/p?utm_source=a",
                      title=title, summary=summary, content_html=content)
    once = clean_article(article, CONFIG)
    _assert_safe(once.content_html)
    assert once.link == "https://example.org/p"
    assert "\n" not in once.title and "\n" not in once.summary
    twice = clean_article(once, CONFIG)
    assert twice.content_html == once.content_html
    assert twice.image == once.image
