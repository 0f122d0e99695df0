"""Known items recognised by their raw digest (parse/known.py): leaving them out never changes the rest."""

from __future__ import annotations

import dataclasses
import zlib
from datetime import UTC, datetime

import pytest
from conftest import CORPUS
from test_parse_fast import DOCUMENTS

from aggregator.errors import ParseError
from aggregator.model import CleanConfig, ParsedFeed, Source
from aggregator.parse import fast, parse_feed
from aggregator.worker_jobs import BodyJob, process_body

URL = "http://src.example/feed.xml"


def _parse(body: bytes, known: frozenset[str] = frozenset(), name: str = "src") -> ParsedFeed:
    return parse_feed(body, {}, URL, name, URL, known)


def _digested(name: str) -> tuple[bytes, ParsedFeed] | None:
    body = (CORPUS / name).read_bytes()
    try:
        full = _parse(body)
    except ParseError:
        return None
    return (body, full) if any(a.fingerprint for a in full.articles) else None


def _by_feedparser(body: bytes) -> ParsedFeed:
    saved, fast.ENABLED = fast.ENABLED, False
    try:
        return _parse(body)
    finally:
        fast.ENABLED = saved


# Only documents whose items get raw digests can skip anything; the test runs on those, and counts them.
DIGESTED = [name for name in DOCUMENTS if _digested(name) is not None]


@pytest.mark.parametrize("name", DIGESTED)
def test_leaving_known_items_out_gives_what_feedparser_gives_for_the_others(name: str) -> None:
    """Half the items known: what is left equals feedparser's reading of those items (the reference),
    not only the fast path's own full reading."""
    found = _digested(name)
    assert found is not None
    body, full = found
    reference = _by_feedparser(body)
    assert len(reference.articles) == len(full.articles)
    digests = [a.fingerprint for a in full.articles if a.fingerprint]
    known = frozenset(digests[::2])
    part = _parse(body, known)
    assert part.meta == reference.meta
    if not part.skipped:  # a skipped item would share an id or link with a parsed one: all parsed again
        expected = reference.articles
    else:
        expected = tuple(ref for ref, mine in zip(reference.articles, full.articles, strict=True)
                         if mine.fingerprint not in known)
        assert sorted(part.skipped) == sorted(d for d in digests if d in known)
    assert tuple(dataclasses.replace(a, fingerprint="") for a in part.articles) == expected


def test_most_real_feeds_get_digests_and_skip_their_known_items() -> None:
    skipping = 0
    for name in DIGESTED:
        found = _digested(name)
        assert found is not None
        if _parse(found[0], frozenset(a.fingerprint for a in found[1].articles)).skipped:
            skipping += 1
    assert len(DIGESTED) >= 150, len(DIGESTED)
    assert skipping >= 140, skipping  # 155 of the corpus's 230 documents when written


def _rss(items: list[str], channel: str = "<title>Feed</title><link>http://example.com/</link>",
         after: str = "") -> bytes:
    body = "".join(f"<item>{item}</item>" for item in items)
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>{channel}{body}{after}</channel></rss>'.encode()


ITEMS = [f"<title>Item {n}</title><link>/posts/{n}</link><guid>urn:item:{n}</guid><description>Body {n}</description>"
         for n in range(3)]


def _digests(body: bytes, name: str = "src") -> list[str]:
    return [a.fingerprint for a in _parse(body, name=name).articles]


def test_a_digest_follows_the_item_and_what_it_inherits_but_not_the_feed_s_dates() -> None:
    base = _digests(_rss(ITEMS))
    assert len(set(base)) == 3 and all(base)
    assert _digests(_rss(ITEMS)) == base  # deterministic
    dated = "<title>Feed</title><link>http://example.com/</link><lastBuildDate>Mon, 02 Jan 2026 00:00:00 GMT</lastBuildDate>"
    assert _digests(_rss(ITEMS, channel=dated)) == base  # the feed's own dates change often: no effect
    edited = _digests(_rss([ITEMS[0], ITEMS[1].replace("Body 1", "Body one"), ITEMS[2]]))
    assert edited[0] == base[0] and edited[1] != base[1] and edited[2] == base[2]
    # the links resolve against the channel's link, and the source's name comes from the feed's title
    for changed in (_digests(_rss(ITEMS, channel="<title>Feed</title><link>http://example.org/</link>")),
                    _digests(_rss(ITEMS, channel="<title>Renamed</title><link>http://example.com/</link>")),
                    _digests(_rss(ITEMS), name="other name")):
        assert not set(changed) & set(base)


def test_a_new_item_reusing_a_known_guid_has_the_whole_feed_parsed() -> None:
    old = _rss(ITEMS)
    known = frozenset(_digests(old))
    reused = "<title>Another story</title><link>/posts/9</link><guid>urn:item:1</guid><description>New</description>"
    new = _rss([reused, *ITEMS])
    part, full = _parse(new, known), _parse(new)
    assert part.skipped == () and part.articles == full.articles
    assert len({a.id for a in full.articles}) == 4  # the repeat got its own id, judged with the original
    # a relative link in one item and the same link written absolute in the other are one link too (a
    # link resolves against the document's address, as feedparser's do)
    absolute = ITEMS[2].replace("<link>/posts/2</link>", "<link>http://src.example/posts/2</link>")
    same_link = absolute.replace("urn:item:2", "urn:item:22").replace("Body 2", "Other")
    assert _parse(_rss([same_link, *ITEMS]), known).skipped == ()


def test_items_followed_by_channel_elements_are_neither_digested_nor_skipped() -> None:
    # a channel element after an item sees that item's parser state, so skipping could change the feed
    body = _rss(ITEMS, channel="<link>http://example.com/</link>", after="<title>Feed</title>")
    assert _digests(body) == ["", "", ""]
    assert _parse(body, frozenset({"x"})).skipped == ()


def test_a_worker_normalizes_and_cleans_only_the_new_items_of_a_changed_feed() -> None:
    source = Source(url=URL, categories=("news",))
    now = datetime(2026, 11, 26, tzinfo=UTC)

    def process(body: bytes, known: frozenset[str]):  # type: ignore[no-untyped-def]
        return process_body(BodyJob(zlib.compress(body), {}, source, URL, CleanConfig(), (), now, known=known))

    first = process(_rss(ITEMS), frozenset())
    assert first.feed is not None and first.seen == ()
    known = frozenset(a.fingerprint for a in first.feed.articles)
    new_item = "<title>Item 3</title><link>/posts/3</link><guid>urn:item:3</guid><description>Body 3</description>"
    second = process(_rss([new_item, *ITEMS]), known)
    assert second.feed is not None
    assert [a.title for a in second.feed.articles] == ["Item 3"]
    assert sorted(second.seen) == sorted(known)
    assert list(second.hashes) == [second.feed.articles[0].fingerprint]
    # the new item is stored as it would have been from a whole parse
    whole = process(_rss([new_item, *ITEMS]), frozenset())
    assert whole.feed is not None
    assert whole.feed.articles[0] == second.feed.articles[0]
