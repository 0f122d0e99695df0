"""Article ids: valid Atom ids kept, everything else derived stably and namespaced by source."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.ids import is_valid_atom_id, make_article_id


@pytest.mark.parametrize(
    "value",
    [
        "http://example.org/2024/01/post",
        "https://example.org/p?id=1&x=2#frag",
        "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a",
        "urn:isbn:0451450523",
        "tag:example.org,2024:post-1",
        "tag:blogger.com,1999:blog-123.post-456",
        "info:doi/10.1000/182",
    ],
)
def test_valid_atom_ids(value: str) -> None:
    assert is_valid_atom_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "123",
        "urn:x:1",
        "good-1",
        "a b",
        "http:/x",
        "http:///x",
        "HTTP://EXAMPLE.ORG/",
        "javascript:alert(1)",
        "http://example.org/<b>",
        "https://例え.jp/",
        "tag:example.org:1",
        "http://example.org/" + "x" * 600,
        " http://example.org/",
        "http://example.org/a\nb",
    ],
)
def test_invalid_atom_ids(value: str) -> None:
    assert not is_valid_atom_id(value)


def test_valid_guid_is_kept() -> None:
    assert make_article_id("http://s/", "tag:example.org,2024:1", "", "", "") == "tag:example.org,2024:1"


def test_derived_ids_are_stable_and_namespaced_by_source() -> None:
    one = make_article_id("http://one/", "good-1", "", "", "")
    assert one == make_article_id("http://one/", "good-1", "", "", "")
    assert one.startswith("urn:uuid:") and is_valid_atom_id(one)
    assert one != make_article_id("http://two/", "good-1", "", "", "")


def test_fallbacks_in_order_guid_link_content() -> None:
    by_link = make_article_id("http://s/", "  ", "http://s/a", "t", "c")
    assert by_link == make_article_id("http://s/", "", "http://s/a", "other", "other")
    by_content = make_article_id("http://s/", "", "", "t", "c")
    assert by_content != make_article_id("http://s/", "", "", "t", "d")
    assert by_content == make_article_id("http://s/", "", "", "t", "c")


def test_long_guid_gives_bounded_id() -> None:
    article_id = make_article_id("http://s/", "x" * 10_000, "", "", "")
    assert len(article_id) == len("urn:uuid:") + 36


@given(st.text(), st.text(), st.text(), st.text())
def test_every_id_is_valid_and_deterministic(guid: str, link: str, title: str, content: str) -> None:
    article_id = make_article_id("http://s/", guid, link, title, content)
    assert is_valid_atom_id(article_id)
    assert article_id == make_article_id("http://s/", guid, link, title, content)
