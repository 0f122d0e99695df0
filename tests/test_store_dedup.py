"""The store's pure identity rules: canonical links, cosmetic-change normalization, batch identities."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from conftest import corpus_urls
from hypothesis import given
from hypothesis import strategies as st

from aggregator.model import Article
from aggregator.store.dedup import (
    canonical_link,
    content_hash,
    is_near_duplicate,
    is_site_root,
    normalize_html,
    prepare_batch,
    strip_tracking,
    title_key,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("a", "b"), [
    ("http://Example.COM/post/1/", "https://example.com/post/1"),
    ("https://example.com:443/post?b=2&a=1", "https://example.com/post?a=1&b=2"),
    ("https://example.com/post?utm_source=rss&utm_medium=x&fbclid=abc", "https://example.com/post"),
    ("https://example.com/post?id=3&gclid=z", "https://example.com/post/?id=3"),
    ("  https://example.com/p  ", "https://example.com/p"),
])
def test_canonical_link_equal(a: str, b: str) -> None:
    assert canonical_link(a) == canonical_link(b)


@pytest.mark.parametrize(("a", "b"), [
    ("https://example.com/post/1", "https://example.com/post/2"),
    ("https://example.com/p?id=1", "https://example.com/p?id=2"),
    ("https://example.com/changelog#v1", "https://example.com/changelog#v2"),  # fragments name items
    ("https://example.com:8080/p", "https://example.com/p"),
    ("https://example.com/Post", "https://example.com/post"),  # paths are case-sensitive
])
def test_canonical_link_different(a: str, b: str) -> None:
    assert canonical_link(a) != canonical_link(b)


def test_canonical_link_fast_path_agrees_with_parsing_every_corpus_link() -> None:
    """Plain links skip urlsplit; over every link of the corpus (and edge cases) the key is the same."""
    from aggregator.store.dedup import _PLAIN_LINK, _parsed_canonical_link

    links = set(corpus_urls()) | {"http://a.example", "http://a.example/", "https://a.example./x/", "http://./x", "http://a..b/c//",
              "http://a.example/p\tq", "http://a.example/caf\u00e9/", "https://a.example/%7Euser/"}
    plain = [link for link in links if _PLAIN_LINK.fullmatch(link.strip())]
    assert len(plain) > 1000  # the fast path is what most links take
    for link in links:
        assert canonical_link(link) == _parsed_canonical_link(link.strip()), link


def test_canonical_link_odd_input() -> None:
    assert canonical_link("") == ""
    assert canonical_link("mailto:a@b.example") == "mailto:a@b.example"
    assert canonical_link("http://[broken/") == "http://[broken/"  # not a crash
    assert is_site_root(canonical_link("https://example.com/"))
    assert not is_site_root(canonical_link("https://example.com/a"))


def test_strip_tracking_keeps_the_rest() -> None:
    assert strip_tracking("https://x.example/?id=1&utm_campaign=c") == "https://x.example/?id=1"
    assert strip_tracking("https://x.example/?id=1") == "https://x.example/?id=1"


def test_cosmetic_html_differences_normalize_away() -> None:
    a = '<p class="x" id="y">Tom &amp; Jerry <a href="https://e.example/a?utm_source=feed">link</a><br/></p>'
    b = "<P  id='y' class=x>\n  Tom &#38; Jerry\n<a href=\"https://e.example/a\">link</a><BR></P>"
    assert normalize_html(a) == normalize_html(b)


def test_real_html_differences_remain() -> None:
    base = '<p>Tom <a href="https://e.example/a">link</a></p>'
    assert normalize_html(base) != normalize_html(base.replace("Tom", "Tim"))
    assert normalize_html(base) != normalize_html(base.replace("/a", "/b"))
    assert normalize_html(base) != normalize_html(base.replace("<p>", "<p><b>").replace("</p>", "</b></p>"))


@given(st.text(max_size=200))
def test_normalize_html_never_raises(fragment: str) -> None:
    assert isinstance(normalize_html(fragment), str)


def test_title_key_folds_case_width_and_punctuation() -> None:
    assert title_key("Hello, World!") == title_key("hello world")
    assert title_key("ＡＢＣ：新闻") == title_key("abc 新闻")
    assert title_key("v1.2") != title_key("v1.3")


def test_near_duplicate_rule_is_conservative() -> None:
    key = title_key("A long enough headline about things")
    assert is_near_duplicate(key, T0, key, T0 + timedelta(hours=11))
    assert not is_near_duplicate(key, T0, key, T0 + timedelta(hours=13))
    short = title_key("Update")
    assert not is_near_duplicate(short, T0, short, T0)
    assert not is_near_duplicate(key, T0, key + "2", T0)


def _article(n: int, **fields: object) -> Article:
    base = Article(id=f"urn:x:{n}", source_url="https://s.example/", source_name="s", original_id=f"g{n}",
                   title=f"title {n}", link=f"https://s.example/{n}", content_html=f"<p>{n}</p>")
    return replace(base, **fields)  # type: ignore[arg-type]


def test_batch_detects_repeated_guids_and_keeps_items() -> None:
    articles = [_article(n, original_id="same") for n in range(3)]
    batch = prepare_batch("https://s.example/", articles, frozenset())
    assert batch.repeated_guids == {"same"} and len(batch.warnings) == 1
    assert [c.identity() for c in batch.candidates] == [("link", canonical_link(a.link)) for a in articles]


def test_batch_drops_exact_repeats_first_wins() -> None:
    articles = [_article(1), _article(1, title="title 1 "), _article(2)]
    batch = prepare_batch("https://s.example/", articles, frozenset())
    assert [c.article for c in batch.candidates] == [articles[0], articles[2]]
    assert batch.warnings == ()


def test_batch_shared_links_fall_back_to_content_hash() -> None:
    articles = [_article(n, original_id="", link="https://s.example/page") for n in range(3)]
    batch = prepare_batch("https://s.example/", articles, frozenset())
    assert [c.identity() for c in batch.candidates] == [("hash", content_hash(a)) for a in articles]
    assert not any(c.link_usable for c in batch.candidates)


def test_known_repeated_guid_stays_untrusted() -> None:
    batch = prepare_batch("https://s.example/", [_article(1, original_id="bad")], frozenset({"bad"}))
    assert batch.candidates[0].guid == "" and batch.warnings == ()


def test_a_feeds_window_equals_sorting_every_article(state_location: str) -> None:
    """articles_for reads only the newest rows when it has a limit; it must give exactly what sorting
    and deduplicating every stored article gives, also when a link's first-seen copy is old."""
    from aggregator.store import Store

    base = datetime(2026, 1, 1, tzinfo=UTC)
    sources = [f"https://s{i}.example/feed" for i in range(3)]
    with Store.open(state_location) as store:
        for turn, url in enumerate(reversed(sources)):  # s2 is seen first, then s1, then s0
            articles = [
                Article(id=f"urn:x:{url}:{n}", source_url=url, source_name=url, original_id=f"{url}#{n}",
                        title=f"Story number {n} from {url}", content_html=f"<p>{n}</p>",
                        # every 5th story is the same link in all three sources, dated differently
                        link=f"https://news.example/{n}" if n % 5 == 0 else f"{url}/{n}",
                        published=base + timedelta(hours=(n * 7 + turn * 13) % 97))
                for n in range(40)
            ]
            store.upsert_articles(url, articles, base + timedelta(days=turn))
        now = base + timedelta(days=10)
        everything = [a.id for a in store.articles_for(sources, now=now)]  # no limit: every row sorted
        for limit in (1, 3, 10, 25, 60, 200):
            window = [a.id for a in store.articles_for(sources, limit=limit, now=now)]
            assert window == everything[:limit]
        assert len(everything) == 3 * 40 - 2 * 8  # each shared link once: the copy s2 saw first
