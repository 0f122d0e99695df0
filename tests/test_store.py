"""The SQLite store: identity and dedup on real corpus feeds, updates, dates, breaker, prune, errors."""

from __future__ import annotations

import calendar
import functools
import re
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from conftest import CORPUS, integrity_problems

from aggregator.errors import StateError
from aggregator.ids import make_article_id
from aggregator.model import Article, Enclosure, FeedMeta
from aggregator.store.rows import to_micros
from aggregator.store import Store
from aggregator.store.dedup import title_key

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TECHCRUNCH = CORPUS / "feeds/feedjira/TechCrunch.xml"  # 20 items: guid, link, date
V2EX = CORPUS / "feeds/rodel-reader/v2ex.xml"  # 50 items, CJK titles
CRE = CORPUS / "feeds/feedjira/CRE.xml"  # 30 podcast items with enclosures
RDF = CORPUS / "feeds/miniflux/rdf_UTF8.xml"  # 60 items: no guid, no date
DUPLICATE_GUIDS = CORPUS / "hostile/xml/duplicate_guids.xml"


def _date(parsed: Any) -> datetime | None:
    return None if parsed is None else datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def load(path: Path, source_url: str) -> list[Article]:
    """A corpus feed as the store receives it (a cheap stand-in for the parse stage)."""
    return list(_load(path, source_url))


@functools.cache
def _load(path: Path, source_url: str) -> tuple[Article, ...]:
    doc = feedparser.parse(path.read_bytes(), sanitize_html=False)
    meta = FeedMeta(title=doc.feed.get("title", ""), link=doc.feed.get("link", ""), format=doc.version)
    articles = []
    for e in doc.entries:
        content = e["content"][0]["value"] if e.get("content") else e.get("summary", "")
        guid, link, title = e.get("id", ""), e.get("link", ""), e.get("title", "")
        articles.append(Article(
            id=make_article_id(source_url, guid, link, title, content),
            source_url=source_url, source_name=meta.title or source_url, original_id=guid, title=title,
            link=link, authors=tuple(a["name"] for a in e.get("authors", []) if a.get("name")),
            published=_date(e.get("published_parsed")), updated=_date(e.get("updated_parsed")),
            summary=e.get("summary", "")[:200], content_html=content,
            tags=tuple(t["term"] for t in e.get("tags", []) if t.get("term")),
            enclosures=tuple(Enclosure(x.get("href", ""), x.get("type", ""), int(x.get("length") or 0))
                             for x in e.get("enclosures", [])),
            base_url=link, language=doc.feed.get("language", ""), feed=meta,
        ))
    return tuple(articles)


@pytest.fixture
def store(state_location: str) -> Any:
    """A new store, once on SQLite and once on PostgreSQL (conftest.state_location)."""
    with Store.open(state_location) as opened:
        yield opened


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Any:
    """A new SQLite store, for what only SQLite has (its pragmas)."""
    with Store.open(tmp_path / "state" / "state.db") as opened:
        yield opened


def _writes(store: Store) -> object:
    """What moves with every write: SQLite's count of rows changed on the store's connection, PostgreSQL's
    write-ahead log position (any insert, update or delete is logged; the test's server is its own)."""
    if isinstance(store.path, Path):
        return store._conn.total_changes  # type: ignore[attr-defined]
    return store._conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]


def ids(articles: list[Article]) -> list[str]:
    return [a.id for a in articles]


# --- basics ---------------------------------------------------------------------------------


def test_first_run_stores_everything_and_rerun_writes_nothing(store: Store) -> None:
    articles = load(TECHCRUNCH, "https://tc.example/feed")
    empty = _writes(store)
    first = store.upsert_articles("https://tc.example/feed", articles, NOW)
    assert (first.new, first.updated, first.unchanged, first.held_back) == (20, 0, 0, 0)
    changes = _writes(store)
    assert changes != empty  # the measure sees writes
    again = store.upsert_articles("https://tc.example/feed", articles, NOW + timedelta(minutes=30))
    assert (again.new, again.updated, again.unchanged) == (0, 0, 20)
    assert _writes(store) == changes  # unchanged articles cost no write
    out = store.articles_for(["https://tc.example/feed"], now=NOW)
    assert sorted(ids(out)) == sorted(a.id for a in articles)
    assert [a.updated for a in out] == sorted((a.updated for a in out), reverse=True)


def test_every_field_round_trips(store: Store) -> None:
    feed = FeedMeta(title="Feed", link="https://x.example/", id="urn:x:feed",
                    updated=datetime(2024, 1, 2, tzinfo=UTC), language="zh-CN", ttl_s=600, format="rss20")
    article = Article(
        id="tag:x.example,2024:1", source_url="https://x.example/rss", source_name="新浪财经",
        original_id=" 1 ", title="标题 <b>", link="https://x.example/1", authors=("甲", "乙"),
        published=datetime(2024, 1, 1, tzinfo=UTC), updated=datetime(2024, 1, 3, tzinfo=UTC),
        summary="摘要", content_html="<p>正文</p>", tags=("a", "b"),
        enclosures=(Enclosure("https://x.example/a.mp3", "audio/mpeg", 123),), image="https://x.example/i.png",
        base_url="https://x.example/", language="zh", feed=feed,
    )
    store.upsert_articles(article.source_url, [article], NOW)
    assert store.articles_for([article.source_url], now=NOW) == [article]


def test_results_are_equal_across_calls_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store.open(path) as store:
        store.upsert_articles("https://v2ex.example/", load(V2EX, "https://v2ex.example/"), NOW)
        store.upsert_articles("https://rdf.example/", load(RDF, "https://rdf.example/"), NOW)
        first = store.articles_for(["https://v2ex.example/", "https://rdf.example/"], now=NOW)
        assert first == store.articles_for(["https://rdf.example/", "https://v2ex.example/"], now=NOW)
    with Store.open(path) as store:
        store.upsert_articles("https://v2ex.example/", load(V2EX, "https://v2ex.example/"), NOW + timedelta(hours=1))
        assert store.articles_for(["https://v2ex.example/", "https://rdf.example/"], now=NOW) == first
    assert len(first) == 110


def test_source_state_round_trips(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        store.save_source_states({"https://a.example/": {"etag": '"x"', "failures": 2, "next": None}})
        store.save_source_states({"https://a.example/": {"etag": '"y"', "failures": 0}})
    with Store.open(tmp_path / "s.db") as store:
        assert store.source_states() == {"https://a.example/": {"etag": '"y"', "failures": 0}}


def test_due_sources_are_read_by_their_due_at(store: Store) -> None:
    """On both engines: the states due by a moment (saved due_at <= it; none given: due now), and every
    URL that has a state; a state saved again moves its due_at."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    at = {"https://a.example/": now - timedelta(minutes=1), "https://b.example/": now + timedelta(minutes=1)}
    store.save_source_states({url: {"etag": url} for url in at},
                             {url: to_micros(moment) for url, moment in at.items()})
    store.save_source_states({"https://c.example/": {"etag": "c"}})
    due, known = store.due_source_states(now)
    assert due == {"https://a.example/": {"etag": "https://a.example/"}, "https://c.example/": {"etag": "c"}}
    assert known == {"https://a.example/", "https://b.example/", "https://c.example/"}
    store.save_source_states({"https://a.example/": {"etag": "later"}}, {"https://a.example/": to_micros(now) + 1})
    assert set(store.due_source_states(now)[0]) == {"https://c.example/"}
    assert set(store.due_source_states(now + timedelta(minutes=2))[0]) == set(at) | {"https://c.example/"}


def test_date_samples_are_kept_apart_and_only_replaced_when_given(tmp_path: Path) -> None:
    samples = {"urn:x:1": ["2026-03-01T11:00:00+00:00", "2026-03-01T11:05:00+00:00"]}
    with Store.open(tmp_path / "s.db") as store:
        assert store.date_samples("https://a.example/") == {}
        store.save_source_states({"https://a.example/": {"etag": '"x"', "tz_samples": samples}})
        store.save_source_states({"https://a.example/": {"etag": '"y"'}})  # a 304: the samples stay
    with Store.open(tmp_path / "s.db") as store:
        assert store.source_states() == {"https://a.example/": {"etag": '"y"'}}
        assert store.date_samples("https://a.example/") == samples
        store.save_source_states({"https://a.example/": {"etag": '"z"', "tz_samples": {}}})
        assert store.date_samples("https://a.example/") == {}


def test_a_failed_upsert_leaves_nothing_half_written(store: Store) -> None:
    good = load(TECHCRUNCH, "https://tc.example/")
    bad = replace(good[5], tags=(b"bytes",))  # type: ignore[arg-type]  # not text: fails mid-transaction
    with pytest.raises(TypeError):
        store.upsert_articles("https://tc.example/", [*good[:5], bad], NOW)
    assert store.articles_for(["https://tc.example/"], now=NOW) == []
    assert integrity_problems(store.path) == []


def test_in_a_batch_a_failed_upsert_costs_only_itself(tmp_path: Path) -> None:
    """batched(): sources share a transaction, each its own savepoint; what is kept is committed."""
    good = load(TECHCRUNCH, "https://tc.example/")
    other = load(V2EX, "https://v2ex.example/")
    bad = replace(other[5], tags=(b"bytes",))  # type: ignore[arg-type]  # not text: fails mid-unit
    with Store.open(tmp_path / "s.db") as store, store.batched(seconds=3600):
        store.upsert_articles("https://tc.example/", good, NOW)
        with pytest.raises(TypeError):
            store.upsert_articles("https://v2ex.example/", [*other[:5], bad], NOW)
        store.save_source_states({"https://tc.example/": {"etag": '"t"'}})
        with sqlite3.connect(tmp_path / "s.db") as reader:  # not committed yet: nothing to see
            assert reader.execute("SELECT count(*) FROM entries").fetchone() == (0,)
    with Store.open(tmp_path / "s.db") as store:
        assert len(store.articles_for(["https://tc.example/"], now=NOW)) == len(good)
        assert store.articles_for(["https://v2ex.example/"], now=NOW) == []
        assert store.source_states() == {"https://tc.example/": {"etag": '"t"'}}
        assert integrity_problems(store.path) == []


# --- dates ----------------------------------------------------------------------------------


def test_missing_dates_are_first_seen_and_never_change(store: Store) -> None:
    articles = load(RDF, "https://rdf.example/")
    assert all(a.published is None and a.updated is None for a in articles)
    store.upsert_articles("https://rdf.example/", articles, NOW)
    store.upsert_articles("https://rdf.example/", articles, NOW + timedelta(days=3))
    out = store.articles_for(["https://rdf.example/"], now=NOW)
    assert len(out) == 60
    assert {(a.published, a.updated) for a in out} == {(NOW, NOW)}


def test_published_only_fills_updated_so_old_items_stay_old(store: Store) -> None:
    article = replace(load(TECHCRUNCH, "https://tc.example/")[0], updated=None)
    store.upsert_articles("https://tc.example/", [article], NOW)
    [out] = store.articles_for(["https://tc.example/"], now=NOW)
    assert out.updated == out.published == article.published


def test_far_future_dates_become_first_seen(store: Store) -> None:
    article = replace(load(TECHCRUNCH, "https://tc.example/")[0], published=NOW + timedelta(days=400), updated=None)
    store.upsert_articles("https://tc.example/", [article], NOW)
    [out] = store.articles_for(["https://tc.example/"], now=NOW)
    assert out.published == NOW


def test_resent_old_items_never_jump_to_the_top(store: Store) -> None:
    url = "https://tc.example/"
    articles = load(TECHCRUNCH, url)
    by_date = sorted(articles, key=lambda a: a.published or NOW, reverse=True)
    store.upsert_articles(url, by_date[:5], NOW)
    store.upsert_articles(url, by_date[:5], NOW + timedelta(days=1))  # the rest were never in the feed
    store.upsert_articles(url, list(reversed(by_date)), NOW + timedelta(days=2))  # re-sent, reordered
    out = store.articles_for([url], now=NOW)
    assert ids(out) == ids(by_date)  # strictly by their own dates
    assert {a.id for a in out[:5]} == {a.id for a in by_date[:5]}


def test_dropped_articles_stay_published(store: Store) -> None:
    url = "https://v2ex.example/"
    articles = load(V2EX, url)
    store.upsert_articles(url, articles, NOW)
    store.upsert_articles(url, articles[:3], NOW + timedelta(hours=1))
    assert len(store.articles_for([url], now=NOW)) == 50


# --- identity -------------------------------------------------------------------------------


def test_guid_churn_with_stable_links_is_not_new(store: Store) -> None:
    url = "https://v2ex.example/"
    articles = load(V2EX, url)
    store.upsert_articles(url, articles, NOW)
    before = store.articles_for([url], now=NOW)
    churned = [replace(a, original_id=a.original_id + "?migrated", id=a.id + "-new") for a in articles]
    result = store.upsert_articles(url, churned, NOW + timedelta(hours=1))
    assert (result.new, result.held_back, result.unchanged + result.updated) == (0, 0, 50)
    assert ids(store.articles_for([url], now=NOW)) == ids(before)  # ids never change
    again = store.upsert_articles(url, churned, NOW + timedelta(hours=2))
    assert again.new == 0


def test_tracking_parameters_and_scheme_do_not_make_a_link_new(store: Store) -> None:
    url = "https://tc.example/"
    articles = load(TECHCRUNCH, url)
    store.upsert_articles(url, articles, NOW)
    moved = [replace(a, original_id="new-" + a.original_id, id="urn:x:new:" + str(i),
                     link=a.link.replace("http://", "HTTPS://").replace("techcrunch.com", "TechCrunch.com")
                     + "?utm_source=rss&utm_medium=feed")
             for i, a in enumerate(articles)]
    result = store.upsert_articles(url, moved, NOW + timedelta(hours=1))
    assert result.new == 0 and result.held_back == 0
    assert len(store.articles_for([url], now=NOW)) == 20


def test_feed_repeating_one_guid_falls_back_to_link_then_hash(store: Store) -> None:
    url = "https://tc.example/"
    articles = [replace(a, original_id="same-guid", id="urn:x:same") for a in load(TECHCRUNCH, url)]
    result = store.upsert_articles(url, articles, NOW)
    assert result.new == 20
    assert any("same-guid" in w and "repeated" in w for w in result.warnings)
    out = store.articles_for([url], now=NOW)
    assert len(set(ids(out))) == 20
    assert {a.title for a in out} == {a.title for a in articles}
    again = store.upsert_articles(url, articles, NOW + timedelta(hours=1))
    assert (again.new, again.unchanged, again.warnings) == (0, 20, ())
    # the guid stays untrusted even when one item carries it alone
    lone = store.upsert_articles(url, [replace(articles[0], title="other", link="https://tc.example/other")],
                                 NOW + timedelta(hours=2))
    assert lone.new == 1


def test_hostile_duplicate_guids_feed(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        first = store.upsert_articles("https://a.example/", load(DUPLICATE_GUIDS, "https://a.example/"), NOW)
        other = store.upsert_articles("https://b.example/", load(DUPLICATE_GUIDS, "https://b.example/"), NOW)
        assert first.new == other.new == 4
        assert any("dup-1" in w for w in first.warnings)
        out = store.articles_for(["https://a.example/", "https://b.example/"], now=NOW)
        good = [a for a in out if a.original_id == "good-1"]
        assert len(good) == 2  # namespaced by source
        assert len(set(ids(out))) == len(out)
        titles = {a.title for a in out if a.source_url == "https://a.example/"}
        assert titles == {"first version", "second version", "same link no guid", "collides with another source"}
        snapshot = store.articles_for(["https://a.example/"], now=NOW)
    with Store.open(tmp_path / "s.db") as store:
        again = store.upsert_articles("https://a.example/", load(DUPLICATE_GUIDS, "https://a.example/"),
                                      NOW + timedelta(hours=1))
        assert (again.new, again.unchanged) == (0, 4)
        assert store.articles_for(["https://a.example/"], now=NOW) == snapshot


def test_same_article_id_from_two_sources_gets_distinct_ids(store: Store) -> None:
    article = load(TECHCRUNCH, "https://a.example/")[0]  # its guid is an http IRI: kept as the id
    store.upsert_articles("https://a.example/", [article], NOW)
    store.upsert_articles("https://b.example/", [replace(article, source_url="https://b.example/",
                                                          link="https://b.example/copy")], NOW)
    out = store.articles_for(["https://a.example/", "https://b.example/"], now=NOW)
    assert len(out) == 2 and len(set(ids(out))) == 2
    assert article.id in ids(out)


def test_near_duplicate_titles_within_window_collapse(store: Store) -> None:
    url = "https://v2ex.example/"
    original = next(a for a in load(V2EX, url) if len(title_key(a.title)) >= 16)
    store.upsert_articles(url, [original], NOW)
    repost = replace(original, original_id="repost-1", id="urn:x:repost", link=original.link + "-again",
                     title=original.title.upper() + "!!", published=(original.published or NOW) + timedelta(hours=2))
    result = store.upsert_articles(url, [original, repost], NOW + timedelta(hours=2))
    assert (result.new, result.unchanged) == (0, 2)
    assert ids(store.articles_for([url], now=NOW)) == [original.id]
    assert store.upsert_articles(url, [repost], NOW + timedelta(hours=3)).new == 0  # remembered


def test_same_title_outside_window_or_short_is_a_new_article(store: Store) -> None:
    url = "https://v2ex.example/"
    original = replace(load(V2EX, url)[0], title="Weekly open thread for everyone")
    store.upsert_articles(url, [original], NOW)
    next_week = replace(original, original_id="w2", id="urn:x:w2", link=original.link + "w2",
                        published=(original.published or NOW) + timedelta(days=7))
    short_a = replace(original, original_id="s1", id="urn:x:s1", link=original.link + "s1", title="Update")
    short_b = replace(original, original_id="s2", id="urn:x:s2", link=original.link + "s2", title="Update")
    assert store.upsert_articles(url, [original, next_week, short_a, short_b], NOW).new == 3


def test_same_link_from_two_sources_is_shown_once_from_the_first(store: Store) -> None:
    a_url, b_url = "https://a.example/feed", "https://b.example/feed"
    original = load(TECHCRUNCH, a_url)[:3]
    store.upsert_articles(a_url, original, NOW)
    copies = [replace(a, source_url=b_url, original_id="b-" + a.original_id, id=f"urn:x:b{i}",
                      link=a.link.replace("http://", "https://") + "/?utm_campaign=x")
              for i, a in enumerate(original)]
    store.upsert_articles(b_url, copies, NOW + timedelta(minutes=5))
    both = store.articles_for([b_url, a_url], now=NOW)
    assert ids(both) == ids(store.articles_for([a_url], now=NOW))
    assert {a.source_url for a in both} == {a_url}  # the source that saw the link first
    # b's copies are stored all the same
    assert store._conn.execute("SELECT count(*) FROM entries WHERE source_url = ?", (b_url,)).fetchone() == (3,)
    assert len(store.articles_for([b_url], now=NOW)) == 3  # alone, b's copies are its own


# --- updates --------------------------------------------------------------------------------


def test_cosmetic_changes_are_not_updates(store: Store) -> None:
    url = "https://tc.example/"
    article = replace(load(TECHCRUNCH, url)[0],
                      content_html='<p class="a" id="b">Hello &amp; <a href="https://x.example/p?id=1">world</a></p>')
    store.upsert_articles(url, [article], NOW)
    cosmetic = replace(article, title="  " + article.title + "\n",
                       content_html="<P id='b'   class=\"a\">\n  Hello &#38;\t<a href=\"https://x.example/p?id=1"
                                    "&utm_source=rss\">world</a>  </P>")
    result = store.upsert_articles(url, [cosmetic], NOW + timedelta(days=1))
    assert (result.updated, result.unchanged) == (0, 1)
    [out] = store.articles_for([url], now=NOW)
    assert out.updated == article.updated and out.content_html == article.content_html


def test_real_change_updates_in_place(store: Store) -> None:
    url = "https://tc.example/"
    articles = load(TECHCRUNCH, url)
    store.upsert_articles(url, articles, NOW)
    later = NOW + timedelta(days=1)
    edited = replace(articles[3], title=articles[3].title + " (corrected)", id="ignored-new-id")
    result = store.upsert_articles(url, [*articles[:3], edited, *articles[4:]], later)
    assert (result.new, result.updated, result.unchanged) == (0, 1, 19)
    out = store.articles_for([url], now=later)
    assert out[0].id == articles[3].id and out[0].title == edited.title
    assert out[0].updated == later and out[0].published == articles[3].published
    feed_dated = replace(edited, content_html="<p>rewritten</p>", updated=later + timedelta(hours=1))
    store.upsert_articles(url, [feed_dated], later + timedelta(hours=3))
    assert store.articles_for([url], now=later)[0].updated == later + timedelta(hours=1)


def test_link_change_is_stored_without_moving_the_date(store: Store) -> None:
    url = "https://tc.example/"
    article = load(TECHCRUNCH, url)[0]
    store.upsert_articles(url, [article], NOW)
    moved = replace(article, link="https://new-domain.example/post")
    assert store.upsert_articles(url, [moved], NOW + timedelta(days=1)).updated == 1
    [out] = store.articles_for([url], now=NOW)
    assert out.link == moved.link and out.updated == article.updated


# --- circuit breaker ------------------------------------------------------------------------


def test_breaker_holds_back_a_reimport_until_accepted(store: Store) -> None:
    url = "https://cre.example/"
    articles = load(CRE, url)
    newest = max(a.published for a in articles if a.published)
    current = [a for a in articles if a.published == newest]
    store.upsert_articles(url, current, NOW)
    # the whole archive comes back with new guids and links: 29 "new" articles with old dates
    reimport = [replace(a, original_id="re:" + a.original_id, id=f"urn:x:re{i}", link=a.link + "?p=re")
                for i, a in enumerate(articles)]
    result = store.upsert_articles(url, reimport, NOW + timedelta(hours=1))
    assert result.held_back == len(articles) - 1 and result.new == 0
    assert any("--accept-burst" in w for w in result.warnings)
    assert len(store.articles_for([url], now=NOW)) == 1
    again = store.upsert_articles(url, reimport, NOW + timedelta(hours=2))
    assert (again.new, again.held_back) == (0, len(articles) - 1)
    accepted = store.upsert_articles(url, reimport, NOW + timedelta(hours=3), accept_burst=True)
    assert accepted.new == len(articles) - 1
    assert len(store.articles_for([url], now=NOW)) == len(articles)


def test_breaker_lets_ordinary_news_and_first_runs_through(store: Store) -> None:
    url = "https://cre.example/"
    articles = load(CRE, url)
    assert store.upsert_articles(url, articles[5:], NOW).new == len(articles) - 5  # first run: no history
    fresh = [replace(a, published=NOW + timedelta(minutes=i)) for i, a in enumerate(articles[:5])]
    assert store.upsert_articles(url, fresh, NOW + timedelta(hours=1), burst_threshold=2).new == 5
    other = "https://other.example/"
    store.upsert_articles(other, articles[:1], NOW)
    assert store.upsert_articles(other, articles[1:4], NOW, burst_threshold=3).new == 3  # not more than 3


# --- retention ------------------------------------------------------------------------------


def test_prune_keeps_identity_of_articles_still_in_the_feed(store: Store) -> None:
    url = "https://tc.example/"
    articles = load(TECHCRUNCH, url)  # dated 2011
    store.upsert_articles(url, articles, NOW)
    removed = store.prune(keep_days=30, now=NOW, active_source_urls=[url])
    assert removed == 20  # the bodies
    assert store.articles_for([url], now=NOW) == []
    result = store.upsert_articles(url, articles, NOW + timedelta(days=1))
    assert (result.new, result.unchanged) == (0, 20)  # never back as new
    assert store.articles_for([url], now=NOW) == []
    # once the feed has stopped listing them for longer than retention, identities go too
    store.upsert_articles(url, [], NOW + timedelta(days=2))
    assert store.prune(keep_days=30, now=NOW + timedelta(days=40), active_source_urls=[url]) == 60  # entries, guid and link keys
    assert store.upsert_articles(url, articles[:1], NOW + timedelta(days=41)).new == 1


def test_prune_keeps_recent_articles_and_drops_removed_sources(store: Store) -> None:
    kept, gone = "https://kept.example/", "https://gone.example/"
    fresh = [replace(a, published=NOW - timedelta(days=1), updated=None) for a in load(V2EX, kept)[:5]]
    store.upsert_articles(kept, fresh, NOW)
    store.upsert_articles(gone, load(TECHCRUNCH, gone), NOW)
    store.save_source_states({gone: {"etag": "x"}})
    store.prune(keep_days=30, now=NOW, active_source_urls=[kept])
    assert len(store.articles_for([kept], now=NOW)) == 5
    assert gone in store.source_states()  # identities still recent
    store.prune(keep_days=30, now=NOW + timedelta(days=31), active_source_urls=[kept])
    assert gone not in store.source_states()
    assert kept in store.source_states()


def test_limit_and_max_age(store: Store) -> None:
    url = "https://v2ex.example/"
    articles = [replace(a, published=NOW - timedelta(days=i), updated=None) for i, a in enumerate(load(V2EX, url))]
    store.upsert_articles(url, articles, NOW)
    assert ids(store.articles_for([url], limit=7, now=NOW)) == ids(articles[:7])
    assert ids(store.articles_for([url], max_age_s=3.5 * 86400, now=NOW)) == ids(articles[:4])


# --- the file itself ------------------------------------------------------------------------


def test_corrupt_file_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(StateError, match=str(path)):
        Store.open(path)
    assert path.read_bytes().startswith(b"this is not")  # never silently reset


def test_truncated_database_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store.open(path) as store:
        store.upsert_articles("https://v2ex.example/", load(V2EX, "https://v2ex.example/"), NOW)
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xff" * 4000 + data[4100:])  # clobber the schema page
    with pytest.raises(StateError, match=str(path)), Store.open(path) as store:
        store.articles_for(["https://v2ex.example/"], now=NOW)


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "places.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="not an aggregator state file"):
        Store.open(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("moz_places",)]
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StateError, match="newer"):
        Store.open(path)


def test_file_settings(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "s.db"
    with Store.open(path) as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        store.sync()
        assert integrity_problems(store.path) == []


# --- the whole Chinese corpus ---------------------------------------------------------------


def test_real_feeds_rerun_and_guid_churn_never_duplicate(store: Store) -> None:
    paths = sorted(CORPUS.glob("rsshub/*.xml")) + sorted(CORPUS.glob("feeds/wechat-feeds/*.xml"))
    assert len(paths) >= 30
    for path in paths:
        url = "https://src.example/" + path.name
        articles = load(path, url)
        first = store.upsert_articles(url, articles, NOW)
        assert first.new > 0 and first.warnings == (), path.name
        rerun = store.upsert_articles(url, articles, NOW + timedelta(hours=1))
        assert (rerun.new, rerun.updated, rerun.held_back) == (0, 0, 0), path.name
        churned = [replace(a, original_id=a.original_id + "/v2", id=a.id + "/v2") if a.original_id else a
                   for a in articles]
        after = store.upsert_articles(url, churned, NOW + timedelta(hours=2))
        assert (after.new, after.held_back) == (0, 0), path.name
        out = store.articles_for([url], now=NOW)
        assert len(out) == first.new and len({a.id for a in out}) == len(out), path.name


def test_unusable_location_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state folder should be")
    with pytest.raises(StateError, match="not-a-dir"):
        Store.open(blocker / "state.db")


def test_cosmetic_rewrites_of_a_real_feed_are_not_updates(store: Store) -> None:
    url = "https://tc.example/"
    articles = load(TECHCRUNCH, url)
    store.upsert_articles(url, articles, NOW)
    before = store.articles_for([url], now=NOW)

    def restyle(html: str) -> str:
        html = re.sub(r'href="([^"?]*)"', r'href="\1?utm_source=feedburner&amp;utm_medium=feed"', html)
        return html.replace("\n", "\n    ").replace("<br />", "<BR>").replace("&#8217;", "\u2019")

    restyled = [replace(a, content_html=restyle(a.content_html), title=f" {a.title} ") for a in articles]
    assert sum(r.content_html != a.content_html for r, a in zip(restyled, articles)) >= 15
    result = store.upsert_articles(url, restyled, NOW + timedelta(days=1))
    assert (result.new, result.updated, result.unchanged) == (0, 0, 20)
    assert store.articles_for([url], now=NOW) == before


def test_full_disk_is_a_state_error_and_loses_nothing(sqlite_store: Store) -> None:
    store = sqlite_store
    store.upsert_articles("https://tc.example/", load(TECHCRUNCH, "https://tc.example/"), NOW)
    before = store.articles_for(["https://tc.example/"], now=NOW)
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk full" (SQLITE_FULL)
    with pytest.raises(StateError, match="full"):
        store.upsert_articles("https://v2ex.example/", load(V2EX, "https://v2ex.example/"), NOW)
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert integrity_problems(store.path) == []
    assert store.articles_for(["https://tc.example/", "https://v2ex.example/"], now=NOW) == before
    assert store.upsert_articles("https://v2ex.example/", load(V2EX, "https://v2ex.example/"), NOW).new == 50


def test_fingerprints_are_remembered_refreshed_and_pruned(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from aggregator.model import Article

    now = datetime(2026, 1, 1, tzinfo=UTC)
    article = Article(id="https://fp.example/1", source_url="https://fp.example/feed", source_name="fp",
                      original_id="https://fp.example/1", title="One", link="https://fp.example/1",
                      content_html="<p>x</p>", fingerprint="f" * 32)
    with Store.open(tmp_path / "s.db") as store:
        assert store.known_fingerprints(article.source_url) == frozenset()
        assert store.upsert_articles(article.source_url, [article], now).new == 1
        assert store.known_fingerprints(article.source_url) == {"f" * 32}
        later = now + timedelta(days=3)
        result = store.upsert_articles(article.source_url, [], later, seen_fingerprints=["f" * 32])
        assert (result.new, result.unchanged) == (0, 1)
        store.prune(keep_days=2, now=later + timedelta(days=1), active_source_urls=[article.source_url])
        assert store.known_fingerprints(article.source_url) == {"f" * 32}  # refreshed 3 days later: kept
        store.prune(keep_days=2, now=later + timedelta(days=5), active_source_urls=[article.source_url])
        assert store.known_fingerprints(article.source_url) == {"f" * 32}  # the last listing had it: kept
        store.upsert_articles(article.source_url, [], later + timedelta(days=6))  # a listing without it
        store.prune(keep_days=2, now=later + timedelta(days=7), active_source_urls=[article.source_url])
        assert store.known_fingerprints(article.source_url) == frozenset()  # unlisted, unseen for 7 days: gone