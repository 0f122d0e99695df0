"""The clean stage piece by piece: URLs, lazy images, pixels, rules, summaries, titles, lead image, explain."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from aggregator.clean import clean_article, clean_html, load_site_rules
from aggregator.clean.summary import plain_title, truncate_text
from aggregator.clean.urls import resolve_url
from aggregator.model import Article, CleanConfig, Enclosure, FeedMeta
from aggregator.tracking import strip_tracking

CONFIG = CleanConfig()
BASE = "https://example.org/blog/post.html"


def _article(content: str = "", **kw: object) -> Article:
    fields: dict[str, object] = {"id": "a", "source_url": "s", "source_name": "s", "link": BASE, "content_html": content}
    fields.update(kw)
    return Article(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("img/a.png", BASE, "https://example.org/blog/img/a.png"),
        ("/a.png", BASE, "https://example.org/a.png"),
        ("//cdn.example.com/a.png", "", "https://cdn.example.com/a.png"),
        ("java\tscript:alert(1)", BASE, ""),
        ("data:image/png;base64,xx", BASE, ""),
        ("mailto:a@example.org", BASE, "mailto:a@example.org"),
        ("a.png", "", ""),
    ],
)
def test_resolve_url(url: str, base: str, expected: str) -> None:
    assert resolve_url(url, base) == expected


_PATHS = st.text(alphabet=st.sampled_from("/.;?#%:@ aZ9-_\\\t\u00e9\u4e2d"), max_size=12).map(lambda t: "/" + t)
_BASES = st.sampled_from([
    BASE, "http://example.org", "https://example.org:8443/a/b?q=1#f", "https://user@example.org/x/",
    "https://[::1]/x", "https://ex\u00e4mple.org/x", "http://example.org?q", "https://example.org#top",
])


@given(url=_PATHS, base=_BASES)
def test_root_relative_urls_resolve_as_urljoin_does(url: str, base: str) -> None:
    """resolve_url's shortcut for root-relative paths gives urljoin's answer, or leaves it to urljoin."""
    cleaned = re.sub(r"[\t\n\r]", "", url).strip()
    assume(cleaned and not cleaned.startswith("//"))  # protocol-relative: not the shortcut's case
    expected = urljoin(base, cleaned)
    assert resolve_url(url, base) == (expected if urlsplit(expected).scheme in ("http", "https") else "")


def test_strip_tracking_keeps_other_parameters_in_order() -> None:
    assert strip_tracking("https://x.org/p?id=3&utm_source=rss&utm_medium=feed&b=2&fbclid=z&spm=a.b") == "https://x.org/p?id=3&b=2"
    assert strip_tracking("https://x.org/p?id=3") == "https://x.org/p?id=3"


def test_relative_urls_resolve_against_base_then_link_then_feed_link() -> None:
    html = '<p><a href="../x?utm_campaign=c">x</a><img src="i.png" srcset="i2.png 2x"></p>'
    with_base = clean_article(_article(html, base_url="https://base.example/dir/"), CONFIG)
    assert 'href="https://base.example/x"' in with_base.content_html
    assert 'src="https://base.example/dir/i.png"' in with_base.content_html
    assert 'srcset="https://base.example/dir/i2.png 2x"' in with_base.content_html
    with_feed = clean_article(_article(html, link="", feed=FeedMeta(link="https://feed.example/a/")), CONFIG)
    assert 'href="https://feed.example/x"' in with_feed.content_html
    nothing = clean_article(_article(html, link=""), CONFIG)
    assert "href" not in nothing.content_html and "<img" not in nothing.content_html  # unresolvable: gone


def test_lazy_images_get_their_real_source() -> None:
    html = (
        '<p><img src="data:image/gif;base64,R0lGOD" data-src="/real.jpg" class="lazy"></p>'
        '<p><img data-original="//cdn.example.com/b.jpg"></p>'
        '<p><img src="placeholder.gif" data-lazy-src="/c.jpg"></p>'
        '<p><img class="lazy"><noscript><img src="/d.jpg" alt="d"></noscript></p>'
    )
    out = clean_html(html, BASE, CONFIG)
    for src in ("https://example.org/real.jpg", "https://cdn.example.com/b.jpg", "https://example.org/c.jpg",
                "https://example.org/d.jpg"):
        assert f'src="{src}"' in out
    assert "data:" not in out and "noscript" not in out


def test_pixels_beacons_and_hidden_things_go() -> None:
    html = (
        '<p>Text<img src="https://example.org/a.gif" width="1" height="1">'
        '<img src="http://feeds.feedburner.com/~r/X/~4/abc">'
        '<img src="https://pixel.wp.com/g.gif?x=1">'
        '<img src="https://example.org/s.png" style="width:0px;height:0px">'
        '<span style="display: none">hidden</span></p>'
    )
    explain: list[str] = []
    out = clean_article(_article(html), CONFIG, explain=explain)
    assert out.content_html == "<p>Text</p>"
    assert out.image == ""
    assert len([line for line in explain if "pixel/tracker" in line]) == 4
    assert any("hidden by its style" in line for line in explain)


def test_structure_is_unwrapped_and_indentation_stripped() -> None:
    html = (
        '<div class="wrap"><center><font face="x"><p style="x">\u3000\u3000第一段。</p>'
        '<p>&nbsp;&nbsp; Second   para </p><p> </p><p><br></p><div>inline only <b>bold</b></div></font></center></div>'
    )
    assert clean_html(html, BASE, CONFIG) == "<p>第一段。</p><p>Second para</p><p>inline only <b>bold</b></p>"


def test_footers_and_share_widgets_go() -> None:
    html = (
        "<p>Body.</p><div class='sharedaddy'><a href='https://twitter.com/share'>Tweet</a></div>"
        "<p>The post <a href='https://b.example/p'>Hello</a> appeared first on <a href='https://b.example'>B</a>.</p>"
        "<h3>Related posts</h3><ul><li><a href='https://b.example/1'>One</a></li></ul>"
        "<p><a href='https://b.example/p'>Read more »</a></p>"
    )
    assert clean_html(html, BASE, CONFIG) == "<p>Body.</p>"


def test_a_footer_pattern_removes_only_the_innermost_block_it_matches() -> None:
    """The wrapper's text matches the footer pattern too ("... appeared first on B. Body stays."),
    but only the paragraph that is the footer goes: the wrapper and its other paragraph stay."""
    html = (
        "<blockquote><p>The post Hello appeared first on B.</p><p>Body stays.</p></blockquote>"
        "<div><p>The post Hello appeared first on B.</p><p>So does this.</p></div>"
    )
    assert clean_html(html, BASE, CONFIG) == "<blockquote><p>Body stays.</p></blockquote><p>So does this.</p>"


def test_config_and_source_rules_extend_the_packaged_ones() -> None:
    html = '<p>Keep</p><div class="promo">Buy</div><p>Sponsored: x</p><p><a class="kw" href="/k">kw</a> text</p>'
    config = CleanConfig(rules=[{"hosts": ["example.org"], "remove": [".promo"], "drop_text": ["^Sponsored"]}])
    source_rules = [{"hosts": ["*.org"], "unwrap": ["a.kw"]}]
    out = clean_article(_article(html), config, extra_rules=source_rules)
    assert out.content_html == "<p>Keep</p><p>kw text</p>"
    other_host = clean_article(_article(html, link="https://other.example/"), config)
    assert "Buy" in other_host.content_html
    assert len(load_site_rules(source_rules)) == len(load_site_rules()) + 1
    with pytest.raises(ValueError, match="bad selector"):
        load_site_rules([{"hosts": ["x"], "remove": ["::!"]}])
    broken = CleanConfig(rules=[{"hosts": ["x"], "remove": ["::!"]}])
    assert clean_article(_article("<p>x</p>"), broken).content_html == "<p>x</p>"  # bad rules never stop cleaning


def test_iframes_only_from_allowlisted_hosts_and_sandboxed() -> None:
    html = (
        '<iframe src="//www.youtube.com/embed/abc" width="560" onload="x()"></iframe>'
        '<iframe src="https://evil.example/x"></iframe>'
    )
    out = clean_html(html, BASE, CONFIG)
    assert out.count("<iframe") == 1 and 'src="https://www.youtube.com/embed/abc"' in out
    assert 'sandbox="allow-scripts allow-same-origin allow-popups allow-presentation"' in out
    assert "<iframe" not in clean_html(html, BASE, CleanConfig(iframe_hosts=[]))


def test_hotlink_protected_images_get_no_referrer() -> None:
    out = clean_html('<img src="https://n.sinaimg.cn/a.jpg"><img src="https://example.org/b.jpg">', BASE, CONFIG)
    assert out == ('<img src="https://n.sinaimg.cn/a.jpg" referrerpolicy="no-referrer">'
                   '<img src="https://example.org/b.jpg">')


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Tom &amp;amp; Jerry", "Tom &amp; Jerry"), ("<b>Bold</b>  &lt;tag&gt;\n title", "Bold <tag> title"),
     ("A &amp; B", "A & B"), ("  ", "")],
)
def test_titles_are_plain_text_decoded_once(raw: str, expected: str) -> None:
    assert plain_title(raw) == expected


def test_empty_title_comes_from_the_summary() -> None:
    out = clean_article(_article("<p>第一句话。第二句话很长。</p>", title=""), CONFIG)
    assert out.title == "第一句话。"


def test_summary_is_generated_cjk_aware_when_missing_duplicate_or_junk() -> None:
    body = "<p>" + "这是一个句子。" * 60 + "</p>"
    for summary in ("", body, "<p>Read more</p>", '<img src="https://e.org/x.gif" width="1" height="1">'):
        out = clean_article(_article(body, summary=summary), CONFIG)
        assert out.summary.endswith("。") and len(out.summary) <= 200
        assert out.summary == "这是一个句子。" * 28
    kept = clean_article(_article(body, summary="<p>An <b>editor's</b> summary.</p>"), CONFIG)
    assert kept.summary == "An editor's summary."


def test_a_summary_that_is_the_content_again_is_cut_from_the_cleaned_content() -> None:
    # The parsers copy a lone description or Atom content into both fields. Read as a summary of its
    # own, the refused iframe's fallback text made it differ from the content: the whole body came back.
    body = "<p>" + "这是一个句子。" * 60 + '</p><iframe src="https://ads.example/x">Your browser has no frames</iframe>'
    out = clean_article(_article(body, summary=body), CONFIG)
    assert out.summary == "这是一个句子。" * 28


def test_truncate_text_cuts_at_sentence_or_word() -> None:
    assert truncate_text("First sentence. " + "word " * 100, 25) == "First sentence."
    cut = truncate_text("word " * 100, 50)
    assert cut.endswith("…") and not cut.endswith(" …") and len(cut) <= 51


def test_lead_image_order_and_exclusions() -> None:
    content = (
        '<p><img src="https://e.org/icons/star.png"><img src="https://e.org/small.jpg" width="40" height="40">'
        '<img src="https://e.org/photo.jpg" width="800" height="600"><img src="https://e.org/later.jpg"></p>'
    )
    assert clean_article(_article(content), CONFIG).image == "https://e.org/photo.jpg"
    from_feed = clean_article(_article(content, image="/media/lead.jpg"), CONFIG)
    assert from_feed.image == "https://example.org/media/lead.jpg"
    enclosure = clean_article(_article(content, enclosures=(Enclosure("https://e.org/e.png", "image/png"),)), CONFIG)
    assert enclosure.image == "https://e.org/e.png"
    qr = clean_article(_article(content, image="https://e.org/qrcode.png"), CONFIG)
    assert qr.image == "https://e.org/photo.jpg"
    assert clean_article(_article("<p>x</p>", image="https://secure.gravatar.com/avatar/1"), CONFIG).image == ""


def test_clean_is_pure_and_deterministic() -> None:
    article = _article('<p>a<img src="/x.jpg"></p>', summary="s", title="t")
    assert clean_article(article, CONFIG) == clean_article(article, CONFIG)
    assert article.content_html == '<p>a<img src="/x.jpg"></p>'


@pytest.mark.parametrize(
    "html",
    ['<q cite ="javascript:alert(1)">x</q>', '<img src="https://e.org/a.jpg" srcset = "javascript:alert(1) 1x">',
     '<blockquote CITE = "vbscript:x">q</blockquote>', '<video poster = "javascript:x" src="https://e.org/v.mp4"></video>'],
)
def test_url_attributes_written_with_spaces_are_still_judged(html: str) -> None:
    """html5ever reads `cite = "..."` as cite: the scheme check must see it however it was written."""
    out = clean_html(html, BASE, CONFIG)
    assert "script:" not in out.lower()
