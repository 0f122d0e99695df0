"""The same story once (publish/similar.py): real corpus stories told by two sources merge into one entry with
related links; generic titles, other stories, other sources' re-posts and copies more than 48 h apart do not."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from conftest import CORPUS, RecordingServer, Route, yaml_config
from lxml import etree

from aggregator.cli import main
from aggregator.clean import clean_article
from aggregator.config import config_schema, load_config
from aggregator.errors import ConfigError
from aggregator.model import Article, CleanConfig
from aggregator.parse import parse_feed
from aggregator.pipeline import RunOptions, run
from aggregator.publish.similar import (
    WINDOW_S,
    is_generic_title,
    merge_similar,
    similar_groups,
)
from aggregator.text import title_key

T0 = datetime(2022, 8, 2, 21, 45, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"


def corpus_articles(name: str) -> list[Article]:
    """The cleaned articles of a corpus feed (real titles and text), as source A."""
    path = CORPUS / "rsshub" / name
    parsed = parse_feed(path.read_bytes(), {}, "https://a.example/" + name, "Paper A")
    return [clean_article(article, CleanConfig()) for article in parsed.articles]


def full_width(text: str) -> str:
    """ASCII letters, digits and punctuation as their full-width forms (U+FF01-U+FF5E), spaces as U+3000."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


def half_width(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def copy_of(article: Article, source: str, **changes: object) -> Article:
    """The same story as another source publishes it: its own id, link and source."""
    return replace(article, id=f"https://{source}.example/{article.id[-12:]}", source_url=f"https://{source}.example/feed",
                   source_name=f"Paper {source.upper()}", link=f"https://{source}.example/story/{abs(hash(article.id))}",
                   **changes)


@pytest.fixture(scope="module")
def story() -> Article:
    """A real 3DM item with full text: '15.36TB！希捷发布创纪录SSD：独家主控'."""
    found = [a for a in corpus_articles("3dm-news.xml") if a.title.startswith("15.36TB")]
    assert found and len(found[0].summary) > 100
    return replace(found[0], published=T0, updated=T0, first_seen=T0)


def test_title_key_fast_path_for_ascii_agrees_with_the_unicode_rule() -> None:
    slow = re.compile(r"[\W_]+")
    titles = [a.title for name in ("36kr-news.xml", "3dm-news.xml") for a in corpus_articles(name)]
    titles += ["Wi-Fi 7: what's new?", "C++ 20_released", "  Spaces\tand\nlines ", "İstanbul", "Straße", "ＡＢＣ"]
    for title in titles:
        assert title_key(title) == slow.sub("", unicodedata.normalize("NFKC", title).casefold()), title


def test_width_variants_punctuation_and_spacing_merge(story: Article) -> None:
    """Full-width letters, digits and punctuation, another lead's spacing: one story, kept as first seen."""
    other = copy_of(story, "b", title=full_width(story.title), summary="　" + full_width(story.summary[:150]),
                    published=T0 + timedelta(hours=3), updated=T0 + timedelta(hours=3),
                    first_seen=T0 + timedelta(hours=3))
    assert other.title == "１５．３６ＴＢ！希捷发布创纪录ＳＳＤ：独家主控"
    merged = merge_similar([other, story])
    assert len(merged) == 1
    assert merged[0].id == story.id and merged[0].related == ((other.link, "Paper B"),)
    spaced = copy_of(story, "c", title=half_width(story.title).replace("！", "! ").replace("：", ": "))
    assert [g.merged for g in similar_groups([story, spaced])] == [(spaced,)]


def test_other_stories_of_the_corpus_never_merge() -> None:
    """Two real feeds' worth of different stories from two sources: nothing merges."""
    a = corpus_articles("3dm-news.xml")
    b = [copy_of(x, "b") for x in corpus_articles("36kr-news.xml")]
    assert similar_groups(a + b) == []


def test_the_same_title_with_another_lead_is_another_story(story: Article) -> None:
    other_lead = corpus_articles("36kr-news.xml")[4].summary  # a real lead of another story
    assert len(other_lead) > 100
    assert similar_groups([story, copy_of(story, "b", summary=other_lead)]) == []


def test_a_lead_too_short_or_only_the_title_is_no_evidence(story: Article) -> None:
    bare = replace(story, summary=story.title)
    assert similar_groups([bare, copy_of(bare, "b")]) == []
    short = replace(story, summary=story.summary[:20])
    assert similar_groups([short, copy_of(short, "b")]) == []


def test_one_sources_own_copies_are_not_merged(story: Article) -> None:
    again = replace(story, id=story.id + "-2", link=story.link + "?again")
    assert similar_groups([story, again]) == []


@pytest.mark.parametrize(("apart", "merged"), [
    (timedelta(seconds=WINDOW_S), True),
    (-timedelta(seconds=WINDOW_S), True),
    (timedelta(seconds=WINDOW_S + 1), False),
    (-timedelta(seconds=WINDOW_S + 1), False),
])
def test_the_48_hour_window_edges(story: Article, apart: timedelta, merged: bool) -> None:
    other = copy_of(story, "b", published=T0 + apart, updated=T0 + apart, first_seen=T0 + abs(apart))
    assert bool(similar_groups([story, other])) is merged
    assert WINDOW_S == 48 * 3600


@pytest.mark.parametrize("title", [
    "Weekly update", "Daily digest", "每日精选", "Links for today", "2026-12-07", "Dec 7, 2026", "Issue #42",
    "Python Weekly - Issue 500", "Newsletter No. 12", "周一早报", "每日精选 2026年12月7日", "36氪日报 第123期",
    "今日要闻", "本周周报", "Weekend reading", "Monday links", "Roundup: week 49", "12", "Obama dies",
])
def test_generic_titles_never_merge_even_with_the_same_lead(story: Article, title: str) -> None:
    assert is_generic_title(title)
    digest = replace(story, title=title)
    assert similar_groups([digest, copy_of(digest, "b")]) == []


def test_a_title_generic_in_one_spelling_is_generic_in_all(story: Article) -> None:
    """One key, two spellings: "Weekly update" (generic) and "WeeklyUpdate"; either order, no merge."""
    spaced, joined = replace(story, title="Weekly update"), copy_of(story, "b", title="WeeklyUpdate")
    assert similar_groups([spaced, joined]) == similar_groups([joined, spaced]) == []


@pytest.mark.parametrize("title", [
    "15.36TB！希捷发布创纪录SSD：独家主控", "36氪早报｜苹果发布新一代芯片", "Fed raises rates by a quarter point",
    "Apple releases iOS 19", "国家移民管理局印发《“十四五”移民管理事业发展规划》",
])
def test_story_titles_are_not_generic(title: str) -> None:
    assert not is_generic_title(title)


def test_the_copy_seen_first_stays_kept_when_an_earlier_dated_copy_arrives(story: Article) -> None:
    """No flapping: a copy first seen later never displaces the published one, whatever its date."""
    later = copy_of(story, "b", published=T0 - timedelta(hours=5), updated=T0 - timedelta(hours=5),
                    first_seen=T0 + timedelta(hours=1))
    assert [g.kept.id for g in similar_groups([later, story])] == [story.id]
    # seen in the same run: the earliest published, then the source URL
    same_run = replace(later, first_seen=T0)
    assert [g.kept.id for g in similar_groups([story, same_run])] == [same_run.id]
    tied = copy_of(story, "0", first_seen=T0)
    assert [g.kept.source_url for g in similar_groups([story, tied])] == ["https://0.example/feed"]


def test_three_sources_one_entry_in_order(story: Article) -> None:
    b = copy_of(story, "b", first_seen=T0 + timedelta(minutes=5))
    c = copy_of(story, "c", first_seen=T0 + timedelta(minutes=1))
    other = corpus_articles("36kr-news.xml")[0]
    merged = merge_similar([b, other, story, c])
    assert [a.id for a in merged] == [other.id, story.id]
    assert [name for _link, name in merged[1].related] == ["Paper C", "Paper B"]


# --- end to end: two papers syndicate one story under different links --------------------------------


def rss(items: list[tuple[str, str, str, datetime]]) -> bytes:
    body = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>{when:%a, %d %b %Y %H:%M:%S} +0000</pubDate><description><![CDATA[{lead}]]></description></item>"
        for title, link, lead, when in items)
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>feed</title>' \
           f"<link>https://x.example/</link><description>d</description>{body}</channel></rss>".encode()


def atom_problems(data: bytes) -> list[str]:
    """What RFC 4287 requires of a feed and its entries that this document lacks; feedparser's complaint."""
    root = etree.fromstring(data)
    problems = [] if root.tag == ATOM + "feed" else ["root is not atom:feed"]
    for name in ("id", "title", "updated"):
        if len(root.findall(ATOM + name)) != 1:
            problems.append(f"feed needs one {name}")
    for entry in root.findall(ATOM + "entry"):
        for name in ("id", "title", "updated"):
            if len(entry.findall(ATOM + name)) != 1:
                problems.append(f"entry needs one {name}")
        if not entry.findall(ATOM + "author") and not root.findall(ATOM + "author"):
            problems.append("entry without author")
        links = entry.findall(ATOM + "link")
        if any(not link.get("href") for link in links):
            problems.append("link without href")
        if len([link for link in links if link.get("rel", "alternate") == "alternate"]) > 1:
            problems.append("two alternate links")
    if feedparser.parse(data).bozo:
        problems.append("feedparser: not well-formed")
    return problems


def entries(path: Path) -> list[etree._Element]:
    return etree.fromstring(path.read_bytes()).findall(ATOM + "entry")


def test_two_papers_one_story_one_entry_with_a_related_link(tmp_path: Path, http_server: RecordingServer,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    story = next(a for a in corpus_articles("3dm-news.xml") if a.title.startswith("15.36TB"))
    lead, other_lead = story.summary, corpus_articles("36kr-news.xml")[4].summary
    now = datetime(2022, 8, 3, 6, 0, tzinfo=UTC)
    a_items = [(story.title, "https://paper-a.example/2022/08/ssd.html", lead, T0),
               ("三星发布新一代移动固态硬盘T9", "https://paper-a.example/2022/08/t9.html", other_lead, T0)]
    b_own = ("希捷宣布下季度财报日期与电话会议安排", "https://paper-b.example/n/2.html", other_lead[::-1], T0)
    b_copy = (full_width(story.title), "https://paper-b.example/n/1.html", "（3DM）" + lead, T0 - timedelta(hours=2))
    http_server.routes["/a.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(a_items))
    http_server.routes["/b.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss([b_own]))
    lines = ["output: {dir: out, formats: [atom, json]}", "state: state.db", "categories: {tech: {title: Tech}}",
             "sources:", f"  - {{url: '{http_server.url('/a.xml')}', category: tech, name: Paper A}}",
             f"  - {{url: '{http_server.url('/b.xml')}', category: tech, name: Paper B}}"]
    config = yaml_config(tmp_path, lines)
    run(load_config(config), RunOptions(force=True), now=now)
    assert len(entries(tmp_path / "out" / "tech.atom")) == 3

    # Paper B carries the story an hour later, under its own link, dated two hours before Paper A's copy.
    http_server.routes["/b.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss([b_own, b_copy]))
    dry = run(load_config(config), RunOptions(force=True, dry_run=True), now=now + timedelta(hours=1))
    assert dry.changes == {}  # what the feeds would gain: nothing, the copy is merged
    run(load_config(config), RunOptions(force=True), now=now + timedelta(hours=1))
    for feed in ("tech.atom", "all.atom"):
        data = (tmp_path / "out" / feed).read_bytes()
        assert atom_problems(data) == []
        found = entries(tmp_path / "out" / feed)
        assert len(found) == 3
        kept = [e for e in found if e.findtext(ATOM + "title") == story.title]
        assert len(kept) == 1  # Paper A's copy was there first: it stays
        links = {(link.get("rel"), link.get("href"), link.get("title")) for link in kept[0].findall(ATOM + "link")}
        assert links == {("alternate", "https://paper-a.example/2022/08/ssd.html", None),
                         ("related", "https://paper-b.example/n/1.html", "Paper B")}
        parsed = feedparser.parse(data).entries
        assert [link.href for e in parsed for link in e.links if link.rel == "related"] == [
            "https://paper-b.example/n/1.html"]
    item = next(i for i in json.loads((tmp_path / "out" / "tech.json").read_text())["items"]
                if i["title"] == story.title)
    assert item["_aggregator"] == {"related": [{"url": "https://paper-b.example/n/1.html", "title": "Paper B"}]}

    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    run(load_config(config), RunOptions(force=True), now=now + timedelta(hours=2))
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before  # byte-stable

    # `aggregator why` agrees: the copy is the kept entry's related link, in every feed
    capsys.readouterr()
    assert main(["why", "https://paper-b.example/n/1.html", "-c", str(config), "--json"],
                clock=lambda: now + timedelta(hours=2)) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["verdict"] == "duplicate"
    assert {(f["feed"], f["reason"], f["duplicate_of"]["title"]) for f in answer["findings"][0]["feeds"]} == {
        ("tech", "same_story", story.title), ("all", "same_story", story.title)}

    yaml_config(tmp_path, lines[:1] + ["dedup: {similar: false}"] + lines[1:])
    run(load_config(config), RunOptions(force=True), now=now + timedelta(hours=3))
    titles = [e.findtext(ATOM + "title") for e in entries(tmp_path / "out" / "tech.atom")]
    assert len(titles) == 4 and story.title in titles and full_width(story.title) in titles


def test_dedup_config_defaults_on_and_checks_its_values(tmp_path: Path) -> None:
    base = ["categories: {tech: {title: Tech}}", "sources: [{url: 'https://a.example/feed', category: tech}]"]
    assert load_config(yaml_config(tmp_path, base)).dedup.similar is True
    assert load_config(yaml_config(tmp_path, ["dedup: {similar: false}", *base])).dedup.similar is False
    with pytest.raises(ConfigError) as bad:
        load_config(yaml_config(tmp_path, ["dedup: {similar: maybe, simlar: true}", *base]))
    message = str(bad.value)
    assert "dedup.similar: expected true or false" in message and "did you mean 'similar'" in message
    assert config_schema()["properties"]["dedup"]["properties"]["similar"]["type"] == "boolean"
