"""Publish stage: Atom/RSS/JSON Feed structure, golden Atom, stability, atomic writes, hostile text."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.model import Article, Enclosure, FeedMeta, OutputConfig
from aggregator.publish import (
    FeedSpec,
    PublishReport,
    publish_outputs,
    render_atom,
    render_json_feed,
    render_rss,
    write_atomically,
)

DATA = Path(__file__).parent / "data" / "publish"
ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SRC_A = "https://news.example.org/feed.xml"
SRC_B = "https://blog.example.com/atom.xml"
CATEGORIES = {SRC_A: ["金融"], SRC_B: ["Tech"]}
OUTPUT = OutputConfig(
    base_url="https://agg.example.net/feeds/",
    max_entries=50,
    title="Example news",
    author="Example editor",
    icon="https://agg.example.net/favicon.ico",
    logo="https://agg.example.net/logo.png",
    language="zh-CN",
)
SPEC = FeedSpec("finance", "金融", "Money & markets")


def make_articles() -> list[Article]:
    meta_a = FeedMeta(title="新浪财经－国內", link="https://news.example.org/", id="", updated=T0)
    meta_b = FeedMeta(
        title="A blog", link="https://blog.example.com/", id="urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"
    )
    return [
        Article(
            id="tag:agg.example.net,2024:a1",
            source_url=SRC_A,
            source_name="新浪财经",
            title="国家移民管理局印发《“十四五”移民管理事业发展规划》",
            link="https://news.example.org/2024/a1.html",
            published=T0 - timedelta(hours=3),
            updated=T0 - timedelta(hours=1),
            summary="近日，国家移民管理局印发规划。",
            content_html="<p>近日，国家移民管理局 &amp; 规划。</p>",
            tags=("移民", "规划"),
            image="https://news.example.org/img/a1.png",
            feed=meta_a,
        ),
        Article(
            id="tag:agg.example.net,2024:a2",
            source_url=SRC_B,
            source_name="A blog",
            title='Episode 12: a <podcast> & "quotes"',
            link="https://blog.example.com/ep12",
            authors=("Ann Author", "Bob Writer"),
            published=T0 - timedelta(days=1),
            updated=T0,
            summary="Show notes.",
            content_html='<p>Show notes with <a href="https://blog.example.com/x">a link</a>.</p>',
            enclosures=(Enclosure("https://cdn.example.com/ep12.mp3", "audio/mpeg", 12345678),),
            feed=meta_b,
        ),
        # Same updated as a2: the tie is broken by id, so a3 comes after a2 whatever the input order.
        Article(
            id="tag:agg.example.net,2024:a3",
            source_url=SRC_B,
            source_name="A blog",
            title="",
            link="",
            published=T0 - timedelta(days=1),
            updated=T0,
            summary="An untitled note without a link, whose title is derived from this summary text.",
            feed=meta_b,
        ),
    ]


def atom_root(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def test_golden_atom_byte_for_byte() -> None:
    data = render_atom(SPEC, make_articles(), OUTPUT, CATEGORIES)
    golden = DATA / "finance.atom"
    if os.environ.get("AGGREGATOR_REGEN_GOLDEN"):  # run once with this set after an intended change
        golden.write_bytes(data)
    assert data == golden.read_bytes()


def test_same_input_same_bytes_whatever_the_order() -> None:
    articles = make_articles()
    first = render_atom(SPEC, articles, OUTPUT, CATEGORIES)
    assert render_atom(SPEC, list(reversed(articles)), OUTPUT, CATEGORIES) == first
    for render in (render_rss, render_json_feed):
        assert render(SPEC, articles, OUTPUT, CATEGORIES) == render(SPEC, articles[::-1], OUTPUT, CATEGORIES)


def test_feed_level_elements() -> None:
    root = atom_root(render_atom(SPEC, make_articles(), OUTPUT, CATEGORIES))
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh-CN"
    assert root.findtext(f"{ATOM}id") == "https://agg.example.net/feeds/finance.atom"
    assert root.findtext(f"{ATOM}title") == "金融"
    assert root.findtext(f"{ATOM}subtitle") == "Money & markets"
    # Never "now": the newest entry's updated.
    assert root.findtext(f"{ATOM}updated") == T0.isoformat()
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links == {
        "self": "https://agg.example.net/feeds/finance.atom",
        "alternate": "https://agg.example.net/feeds/",
    }
    assert root.findtext(f"{ATOM}author/{ATOM}name") == "Example editor"
    generator = root.find(f"{ATOM}generator")
    assert generator is not None and generator.text == "aggregator" and generator.get("version")
    assert root.findtext(f"{ATOM}icon") == OUTPUT.icon and root.findtext(f"{ATOM}logo") == OUTPUT.logo
    assert b"ns0:" not in etree.tostring(root)


def test_entries_newest_first_ties_by_id_and_all_fields() -> None:
    root = atom_root(render_atom(SPEC, make_articles(), OUTPUT, CATEGORIES))
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}id") for e in entries] == [
        "tag:agg.example.net,2024:a2",
        "tag:agg.example.net,2024:a3",
        "tag:agg.example.net,2024:a1",
    ]
    ep, note, news = entries
    assert [a.findtext(f"{ATOM}name") for a in ep.findall(f"{ATOM}author")] == ["Ann Author", "Bob Writer"]
    assert [a.findtext(f"{ATOM}name") for a in news.findall(f"{ATOM}author")] == ["新浪财经"]  # fallback
    assert [c.get("term") for c in news.findall(f"{ATOM}category")] == ["金融", "移民", "规划"]
    links = [
        (link.get("rel"), link.get("href"), link.get("type"), link.get("length"))
        for link in ep.findall(f"{ATOM}link")
    ]
    assert links == [
        ("alternate", "https://blog.example.com/ep12", None, None),
        ("enclosure", "https://cdn.example.com/ep12.mp3", "audio/mpeg", "12345678"),
    ]
    assert ep.findtext(f"{ATOM}title") == 'Episode 12: a <podcast> & "quotes"'
    assert ep.find(f"{ATOM}content").get("type") == "html"  # type: ignore[union-attr]
    assert ep.find(f"{ATOM}summary").get("type") == "text"  # type: ignore[union-attr]
    assert news.find(f"{MEDIA}thumbnail").get("url") == "https://news.example.org/img/a1.png"  # type: ignore[union-attr]
    assert ep.find(f"{MEDIA}thumbnail") is None
    assert news.findtext(f"{ATOM}published") == (T0 - timedelta(hours=3)).isoformat()
    source = news.find(f"{ATOM}source")
    assert source is not None
    assert source.findtext(f"{ATOM}id") == SRC_A  # the feed had no id of its own
    assert source.findtext(f"{ATOM}title") == "新浪财经－国內"
    assert source.findtext(f"{ATOM}updated") == T0.isoformat()
    assert {link.get("rel"): link.get("href") for link in source.findall(f"{ATOM}link")} == {
        "alternate": "https://news.example.org/",
        "self": SRC_A,
    }
    assert ep.find(f"{ATOM}source").findtext(f"{ATOM}id") == "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"  # type: ignore[union-attr]
    # No link: no alternate link, but content so the entry stays valid (RFC 4287 4.1.1.1).
    assert note.findall(f"{ATOM}link") == []
    assert note.find(f"{ATOM}content") is not None
    derived = note.findtext(f"{ATOM}title") or ""
    assert derived.startswith("An untitled note without a link") and len(derived) <= 80


def test_max_entries_keeps_the_newest() -> None:
    output = replace(OUTPUT, max_entries=2)
    parsed = feedparser.parse(render_atom(SPEC, make_articles(), output, CATEGORIES))
    assert [e.id for e in parsed.entries] == ["tag:agg.example.net,2024:a2", "tag:agg.example.net,2024:a3"]


def test_feedparser_reads_back_ids_titles_links() -> None:
    articles = make_articles()
    parsed = feedparser.parse(render_atom(SPEC, articles, OUTPUT, CATEGORIES))
    assert not parsed.bozo
    by_id = {e.id: e for e in parsed.entries}
    for article in articles:
        entry = by_id[article.id]
        if article.link:  # (feedparser fills a missing link from the id)
            assert entry.link == article.link
        if article.title:
            assert entry.title == article.title
        assert entry.updated_parsed[:6] == article.updated.timetuple()[:6]  # type: ignore[union-attr]
    assert by_id["tag:agg.example.net,2024:a2"].enclosures[0].href == "https://cdn.example.com/ep12.mp3"


def test_a_repeated_id_is_published_once_newest_version() -> None:
    old, _, _ = make_articles()
    new = replace(old, title="Corrected title", updated=T0 + timedelta(hours=5))
    for articles in ([old, new], [new, old]):
        parsed = feedparser.parse(render_atom(SPEC, articles, OUTPUT, CATEGORIES))
        assert [e.title for e in parsed.entries] == ["Corrected title"]


def test_empty_feed_is_valid_and_stable() -> None:
    data = render_atom(FeedSpec("empty", "Empty", ""), [], OUTPUT, {})
    root = atom_root(data)
    assert root.findtext(f"{ATOM}updated") == "1970-01-01T00:00:00+00:00"
    assert root.findall(f"{ATOM}entry") == []
    assert data == render_atom(FeedSpec("empty", "Empty", ""), [], OUTPUT, {})


# --- RSS 2.0 and JSON Feed 1.1: each spec's required fields ------------------------------------


def test_rss_has_the_required_fields() -> None:
    output = replace(OUTPUT, websub_hub="https://hub.example.org/")
    root = etree.fromstring(render_rss(SPEC, make_articles(), output, CATEGORIES))
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None
    for name in ("title", "link", "description"):  # RSS 2.0: required channel elements
        assert channel.findtext(name)
    assert channel.findtext("link") == "https://agg.example.net/feeds/"
    atom_links = {link.get("rel"): link.get("href") for link in channel.findall(f"{ATOM}link")}
    assert atom_links == {
        "self": "https://agg.example.net/feeds/finance.rss",
        "hub": "https://hub.example.org/",
    }
    assert parsedate_to_datetime(channel.findtext("lastBuildDate") or "") == T0
    items = channel.findall("item")
    assert [i.findtext("guid") for i in items] == [
        a.id for a in sorted(make_articles(), key=lambda a: (-a.updated.timestamp(), a.id))
    ]  # type: ignore[union-attr]
    for item in items:
        assert item.findtext("title") or item.findtext("description")  # one of them is required
        assert item.find("guid").get("isPermaLink") == "false"  # type: ignore[union-attr]
        parsedate_to_datetime(item.findtext("pubDate") or "")
        assert item.find("author") is None  # RSS <author> must be an e-mail: dc:creator instead
    enclosure = items[0].find("enclosure")
    assert enclosure is not None and enclosure.attrib == {
        "url": "https://cdn.example.com/ep12.mp3",
        "length": "12345678",
        "type": "audio/mpeg",
    }
    assert [c.text for c in items[0].findall("{http://purl.org/dc/elements/1.1/}creator")] == [
        "Ann Author",
        "Bob Writer",
    ]
    assert items[2].find("source").get("url") == SRC_A  # type: ignore[union-attr]
    assert not feedparser.parse(render_rss(SPEC, make_articles(), output, CATEGORIES)).bozo


def test_json_feed_has_the_required_fields() -> None:
    output = replace(OUTPUT, websub_hub="https://hub.example.org/")
    feed = json.loads(render_json_feed(SPEC, make_articles(), output, CATEGORIES))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "金融" and feed["feed_url"] == "https://agg.example.net/feeds/finance.json"
    assert feed["hubs"] == [{"type": "WebSub", "url": "https://hub.example.org/"}]
    assert isinstance(feed["items"], list) and len(feed["items"]) == 3
    for item in feed["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert "content_html" in item or "content_text" in item  # 1.1: one is required
        for key in ("date_published", "date_modified"):
            assert datetime.fromisoformat(item[key]).tzinfo is not None  # RFC 3339
        assert all(set(author) == {"name"} for author in item["authors"])
    first = feed["items"][0]
    assert first["attachments"] == [
        {"url": "https://cdn.example.com/ep12.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 12345678}
    ]
    assert feed["items"][2]["image"] == "https://news.example.org/img/a1.png"
    assert "url" not in feed["items"][1]


# --- hostile text -----------------------------------------------------------------------------

HOSTILE_STRINGS = [
    "nul\x00bell\x07esc\x1bvt\x0b",
    "lone \ud800 surrogate \udfff here",
    "x" * 10_240,
    "cdata ]]> end ]]>",
    "<script>alert(1)</script><b>bold</b> &amp; &lt;",
    "../../../etc/passwd",
    "\ufffe\uffff non-characters",
    "",
]


@pytest.mark.parametrize("bad", HOSTILE_STRINGS)
def test_hostile_strings_stay_well_formed(bad: str) -> None:
    article = Article(
        id="tag:x,2024:" + bad[:50],
        source_url="../../" + bad[:40],
        source_name=bad,
        title=bad,
        link="javascript:alert(1)" if not bad else "https://example.org/" + bad[:30],
        authors=(bad, bad),
        published=T0,
        updated=T0,
        summary=bad,
        content_html=f"<p>{bad}</p>",
        tags=(bad, "ok"),
        enclosures=(Enclosure(bad, bad, -5), Enclosure("https://example.org/a.mp3", "audio/mpeg", 1)),
        image=bad,
        feed=FeedMeta(title=bad, link=bad, id=bad, language=bad),
    )
    categories = {article.source_url: [bad, "cat"]}
    spec = FeedSpec("hostile", bad or "t", bad)
    output = replace(OUTPUT, title=bad, author=bad, language=bad, icon=bad, logo=bad)
    atom = render_atom(spec, [article], output, categories)
    rss = render_rss(spec, [article], output, categories)
    jsonfeed = json.loads(render_json_feed(spec, [article], output, categories))
    for doc in (atom, rss):
        etree.fromstring(doc)  # well-formed XML 1.0, or this raises
        parsed = feedparser.parse(doc)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert len(parsed.entries) == 1
        assert len(parsed.entries[0].title) <= 1000
    entry = atom_root(atom).find(f"{ATOM}entry")
    assert entry is not None
    assert all(link.get("href", "").startswith("https://") for link in entry.iter(f"{ATOM}link"))
    assert len(jsonfeed["items"]) == 1


def test_publish_outputs_refuses_unsafe_slugs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    feeds = [(FeedSpec("../evil", "x", ""), make_articles()), (FeedSpec("ok", "OK", ""), make_articles())]
    report = publish_outputs(OUTPUT, out, feeds, CATEGORIES)
    assert any("../evil" in warning for warning in report.warnings)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "feeds.opml",
        "index.html",
        "ok.atom",
        "ok.html",
    ]
    with pytest.raises(ValueError, match="unsafe feed slug"):
        render_atom(FeedSpec("a/b", "x", ""), [], OUTPUT, {})


# --- writing ------------------------------------------------------------------------------------


def test_write_atomically_keeps_mtime_on_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.atom"
    assert write_atomically(path, b"one") is True
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # an old mtime: any rewrite would change it
    assert write_atomically(path, b"one") is False
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert write_atomically(path, b"two") is True
    assert path.read_bytes() == b"two" and path.stat().st_mtime_ns != 1_000_000_000
    assert path.stat().st_mode & 0o777 == 0o644  # readable by the web server
    assert [p.name for p in tmp_path.iterdir()] == ["f.atom"]  # no temp file left behind


def test_write_atomically_replaces_via_rename(tmp_path: Path) -> None:
    path = tmp_path / "f.atom"
    path.write_bytes(b"old")
    inode = path.stat().st_ino
    held = path.open("rb")  # a reader mid-download keeps the complete old file
    try:
        assert write_atomically(path, b"new")
        assert held.read() == b"old"
    finally:
        held.close()
    assert path.read_bytes() == b"new" and path.stat().st_ino != inode


def feeds_of(articles: Sequence[Article]) -> list[tuple[FeedSpec, Sequence[Article]]]:
    return [
        (SPEC, [a for a in articles if a.source_url == SRC_A]),
        (FeedSpec("tech", "Tech", ""), [a for a in articles if a.source_url == SRC_B]),
        (FeedSpec("all", "Everything", "All categories"), articles),
    ]


def test_publish_outputs_writes_every_format_then_nothing(tmp_path: Path) -> None:
    output = replace(OUTPUT, formats=["atom", "rss", "json"])
    report = publish_outputs(output, tmp_path, feeds_of(make_articles()), CATEGORIES)
    names = {f"{slug}.{fmt}" for slug in ("finance", "tech", "all") for fmt in ("atom", "rss", "json")}
    pages = {f"{slug}.html" for slug in ("finance", "tech", "all")}
    assert set(report.written) == names | pages | {"index.html", "feeds.opml"}
    assert report.unchanged == () and report.warnings == ()
    for name in names:
        parsed = feedparser.parse((tmp_path / name).read_bytes()) if not name.endswith(".json") else None
        assert parsed is None or (not parsed.bozo and parsed.entries)
    all_ids = [e.id for e in feedparser.parse((tmp_path / "all.atom").read_bytes()).entries]
    assert sorted(all_ids) == sorted(a.id for a in make_articles()) and len(set(all_ids)) == len(all_ids)
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = publish_outputs(output, tmp_path, feeds_of(make_articles()), CATEGORIES)
    assert again == PublishReport(written=(), unchanged=report.written, warnings=())
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes


def test_only_the_changed_feeds_are_rewritten(tmp_path: Path) -> None:
    articles = make_articles()
    publish_outputs(OUTPUT, tmp_path, feeds_of(articles), CATEGORIES)
    newer = replace(articles[0], id="tag:agg.example.net,2024:a4", updated=T0 + timedelta(hours=1))
    report = publish_outputs(OUTPUT, tmp_path, feeds_of([*articles, newer]), CATEGORIES)
    assert set(report.written) == {"finance.atom", "finance.html", "all.atom", "all.html", "index.html"}
    assert set(report.unchanged) == {"tech.atom", "tech.html", "feeds.opml"}


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = publish_outputs(OUTPUT, out, feeds_of(make_articles()), CATEGORIES, dry_run=True)
    assert "all.atom" in report.written
    assert not out.exists()


def test_max_age_needs_now(tmp_path: Path) -> None:
    output = replace(OUTPUT, max_age=2 * 3600)
    publish_outputs(
        output, tmp_path, feeds_of(make_articles()), CATEGORIES, now=T0 + timedelta(hours=1, minutes=30)
    )
    ids = [e.id for e in feedparser.parse((tmp_path / "all.atom").read_bytes()).entries]
    assert ids == ["tag:agg.example.net,2024:a2", "tag:agg.example.net,2024:a3"]  # a1 (T0-1h) is 2.5 h old


def test_opml_lists_every_feed(tmp_path: Path) -> None:
    output = replace(OUTPUT, formats=["atom", "rss"])
    publish_outputs(output, tmp_path, feeds_of(make_articles()), CATEGORIES)
    root = etree.parse(str(tmp_path / "feeds.opml")).getroot()
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") == "Example news"
    outlines = root.findall("body/outline")
    assert {o.get("xmlUrl") for o in outlines} == {
        f"https://agg.example.net/feeds/{slug}.{fmt}"
        for slug in ("finance", "tech", "all")
        for fmt in ("atom", "rss")
    }
    assert all(o.get("text") and o.get("type") == "rss" for o in outlines)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://例子.测试/路径?q=中文#f",
            "https://xn--fsqu00a.xn--0zwm56d/%E8%B7%AF%E5%BE%84?q=%E4%B8%AD%E6%96%87#f",
        ),
        ('http://example.org:8080/a b"<x>', "http://example.org:8080/a%20b%22%3Cx%3E"),
        ("https://x.org/ok?a=1&b=%20", "https://x.org/ok?a=1&b=%20"),
        ("javascript:alert(1)", ""),
        ("/relative/path", ""),
        ("http://user:pw@x.org/", ""),
        ("ftp://x.org/file", ""),
    ],
)
def test_links_become_valid_uris_or_nothing(url: str, expected: str) -> None:
    from aggregator.publish.formatting import web_iri

    assert web_iri(url) == expected


def test_feeds_loaded_one_at_a_time_from_headlines_give_the_same_files(tmp_path: Path) -> None:
    """publish_outputs(load=...): the feeds come as headlines and each is read whole just before it is
    rendered; every file must be what passing the whole articles gives."""
    from aggregator.publish import publish_outputs

    whole = feeds_of(make_articles())
    output = replace(OUTPUT, formats=("atom", "rss", "json"))
    publish_outputs(output, tmp_path / "whole", whole, CATEGORIES)
    # as Store.headlines_of gives them: summary and content only where the title is empty
    headlines = [(spec, [replace(a, enclosures=(), tags=(), authors=()) if not a.title else
                         replace(a, summary="", content_html="", enclosures=(), tags=(), authors=())
                         for a in articles]) for spec, articles in whole]
    loaded: list[str] = []

    def load(spec: FeedSpec) -> list[Article]:
        # a feed's files are written before the next feed is read: memory holds one feed's bytes
        assert all((tmp_path / "loaded" / f"{slug}.{fmt}").exists() for slug in loaded for fmt in output.formats)
        loaded.append(spec.slug)
        return list(dict(whole)[spec])

    publish_outputs(output, tmp_path / "loaded", headlines, CATEGORIES, load=load, current={"tech"})
    assert sorted(loaded) == ["all", "finance"]  # "tech" is current: not read again
    (tmp_path / "loaded" / "tech.atom").unlink(missing_ok=True)
    files = {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "loaded").iterdir()} == {
        name: data for name, data in files.items() if not name.startswith("tech.")}




def test_a_slug_with_a_trailing_newline_is_never_published(tmp_path: Path) -> None:
    """The publish layer's own slug check matches the whole slug ("$" would accept "news\\n")."""
    from aggregator.publish import FeedSpec, publish_outputs

    report = publish_outputs(OUTPUT, tmp_path, [(FeedSpec("news\n", "News", ""), [])], {})
    assert any("unsafe slug" in w for w in report.warnings)
    assert not any("\n" in p.name for p in tmp_path.iterdir())
