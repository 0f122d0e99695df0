"""Publish stage outputs for people and tools: index.html, Hexo posts, WebSub pings, hostile corpus."""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import feedparser
import pytest
import yaml
from conftest import CORPUS, SEED
from lxml import etree
from test_publish import CATEGORIES, OUTPUT, feeds_of, make_articles

from aggregator.model import Article, Enclosure, FeedMeta, OutputConfig
from aggregator.publish import FeedSpec, publish_outputs
from aggregator.publish.hexo import escape_nunjucks

# --- index.html -------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_index_lists_every_feed_with_autodiscovery(tmp_path: Path) -> None:
    output = replace(OUTPUT, formats=["atom", "rss", "json"])
    hostile = replace(
        make_articles()[0], id="tag:x,2024:h", title="<script>alert(1)</script> & co", updated=None
    )
    publish_outputs(output, tmp_path, feeds_of([*make_articles(), hostile]), CATEGORIES)
    page = parse_page(tmp_path / "index.html")
    discovery = {
        (a["type"], a["href"]) for tag, a in page.tags if tag == "link" and a.get("rel") == "alternate"
    }
    types = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}
    assert discovery == {
        (types[fmt], f"{slug}.{fmt}") for slug in ("finance", "tech", "all") for fmt in types
    }
    assert not [tag for tag, _ in page.tags if tag in ("script", "iframe", "object")]
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in page.tags
    sections = [a["id"] for tag, a in page.tags if tag == "section"]
    assert sections == ["feed-finance", "feed-tech", "feed-all"]
    text = "".join(page.text)
    assert "<script>alert(1)</script> & co" in text  # shown as text, escaped in the markup
    assert "4 entries" in text and "国家移民管理局印发" in text
    assert ("a", {"href": "https://blog.example.com/ep12"}) in page.tags


# --- Hexo posts -------------------------------------------------------------------------------



def front_matter(data: bytes) -> tuple[dict[str, Any], str]:
    text = data.decode("utf-8")
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    loaded = yaml.safe_load(header)
    assert isinstance(loaded, dict)
    return loaded, body


def seed_article() -> Article:
    return Article(
        id="tag:finance.sina.com.cn,2021:doc-ikyamrmz1625467",
        source_url="https://rss.sina.com.cn/roll/finance/hot_roll.xml",
        source_name="新浪财经",
        title="国家移民管理局印发《_十四五_移民管理事业发展规划》",
        link="https://finance.sina.com.cn/china/2021-12-28/doc-ikyamrmz1625467.shtml",
        published=datetime(2021, 12, 28, 3, 46, 53, tzinfo=UTC),
        updated=datetime(2021, 12, 28, 3, 46, 53, tzinfo=UTC),
        content_html="<div><p>近日，国家移民管理局依据……</p></div>",
        feed=FeedMeta(title="新浪财经－国內", link="https://finance.sina.com.cn/"),
    )


def hexo_output(folder: Path, **extra: object) -> OutputConfig:
    return replace(OUTPUT, index=False, hexo={"dir": str(folder), **extra})


def test_hexo_post_matches_the_seed_front_matter(tmp_path: Path) -> None:
    article = seed_article()
    posts = tmp_path / "posts"
    categories = {article.source_url: ["金融"]}
    publish_outputs(
        hexo_output(posts), tmp_path / "feeds", [(FeedSpec("finance", "金融", ""), [article])], categories
    )
    [post] = list(posts.iterdir())
    ours, body = front_matter(post.read_bytes())
    seed, _ = front_matter(SEED.read_bytes().lstrip(b"\n"))  # the seed file opens with a blank line
    # The seed's headimg/thumbnail is a random placeholder; the article has no lead image: omitted.
    expected = {key: value for key, value in seed.items() if key not in ("headimg", "thumbnail")}
    assert list(ours) == list(expected)
    for key, value in expected.items():
        assert ours[key] == value, key
    assert post.read_text(encoding="utf-8").splitlines()[0:2] == [
        "---",
        "title: '国家移民管理局印发《_十四五_移民管理事业发展规划》'",  # quoted, as in the seed post
    ]
    assert "<p>近日，国家移民管理局依据……</p>" in body
    assert post.name.startswith("2021-12-28-") and post.name.endswith(".md")
    assert sorted(p.name for p in (tmp_path / "feeds").iterdir()) == ["finance.atom", "finance.html"]  # no index


def test_hexo_lead_image_fills_headimg_and_thumbnail(tmp_path: Path) -> None:
    article = replace(seed_article(), image="https://n.sinaimg.cn/finance/a.png")
    publish_outputs(
        hexo_output(tmp_path / "p"), tmp_path / "f", [(FeedSpec("finance", "金融", ""), [article])], {}
    )
    [post] = list((tmp_path / "p").iterdir())
    front, _ = front_matter(post.read_bytes())
    assert front["headimg"] == front["thumbnail"] == "https://n.sinaimg.cn/finance/a.png"
    assert list(front) == ["title", "categories", "headimg", "author", "comments", "date", "thumbnail"]
    assert front["categories"][0] == "金融"  # no categories_of entry: the feed's title


def test_hexo_titles_survive_yaml_and_never_collide(tmp_path: Path) -> None:
    title = "He said: \"hi\" # not a comment, 'quoted' {{ x }} - [list]: yes"
    first = replace(seed_article(), title=title, id="tag:x,2024:1")
    second = replace(seed_article(), title=title, id="tag:x,2024:2")
    publish_outputs(
        hexo_output(tmp_path / "p"), tmp_path / "f", [(FeedSpec("finance", "金融", ""), [first, second])], {}
    )
    posts = sorted((tmp_path / "p").iterdir())
    assert len(posts) == 2
    for post in posts:
        front, _ = front_matter(post.read_bytes())
        assert front["title"] == title  # never altered
        assert all(c.isascii() and (c.isalnum() or c in "-.") for c in post.name)


def test_nunjucks_braces_escaped_only_where_read(tmp_path: Path) -> None:
    body = "<p>{{ site.title }} {%raw%} {# c #} {lone} a{b}</p>"
    assert escape_nunjucks(body) == "<p>&#123;{ site.title }} &#123;%raw%} &#123;# c #} {lone} a{b}</p>"
    assert escape_nunjucks("{{{") == "&#123;&#123;{"
    article = replace(seed_article(), content_html=body)
    publish_outputs(
        hexo_output(tmp_path / "p"), tmp_path / "f", [(FeedSpec("finance", "金融", ""), [article])], {}
    )
    [post] = list((tmp_path / "p").iterdir())
    _, written = front_matter(post.read_bytes())
    assert "{{" not in written and "{%" not in written and "{#" not in written


def test_hexo_reruns_rewrite_only_what_changed(tmp_path: Path) -> None:
    posts = tmp_path / "p"
    handwritten = posts / "my-own-post.md"
    posts.mkdir()
    handwritten.write_text("mine")
    keep, change, retire = (
        replace(seed_article(), id=f"tag:x,2024:{n}", title=f"Post {n}") for n in range(3)
    )
    spec = FeedSpec("finance", "金融", "")

    def run(articles: list[Article], **extra: object) -> dict[str, int]:
        publish_outputs(hexo_output(posts, **extra), tmp_path / "f", [(spec, articles)], {})
        return {p.name: p.stat().st_mtime_ns for p in posts.iterdir()}

    before = run([keep, change, retire])
    assert len(before) == 4
    for name in before:  # old mtimes: a rewrite would show
        os.utime(posts / name, ns=(10**9, 10**9))
    same = run([keep, change, retire])
    assert set(same.values()) == {10**9}
    changed = replace(change, content_html="<p>updated body</p>")
    after = run([keep, changed, retire])
    assert [name for name, mtime in after.items() if mtime != 10**9] == [n for n in after if "post-1" in n]
    renamed = run([keep, replace(changed, title="Post one, renamed")])
    assert len(renamed) == 4
    assert not [n for n in renamed if "post-1-" in n]  # the renamed post replaced the old file
    assert [n for n in renamed if "post-one-renamed" in n]
    assert [n for n in renamed if "post-2" in n]  # retired article: kept without prune
    pruned = run([keep], prune=True)
    assert sorted(pruned) == sorted(["my-own-post.md", *[n for n in renamed if "post-0" in n]])


# --- WebSub -----------------------------------------------------------------------------------


class _Hub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.status = status
        self.pings: list[dict[str, list[str]]] = []


class _HubHandler(BaseHTTPRequestHandler):
    server: _Hub

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        assert self.headers.get("Content-Type") == "application/x-www-form-urlencoded"
        self.server.pings.append(parse_qs(body.decode()))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(params=[204])
def hub(request: pytest.FixtureRequest) -> Iterator[_Hub]:
    server = _Hub(request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_websub_pings_only_changed_feeds(tmp_path: Path, hub: _Hub) -> None:
    hub_url = f"http://127.0.0.1:{hub.server_address[1]}/hub"
    output = replace(OUTPUT, websub_hub=hub_url, formats=["atom", "json"])
    articles = make_articles()
    report = publish_outputs(output, tmp_path, feeds_of(articles), CATEGORIES)
    assert report.warnings == ()
    pinged = sorted(p["hub.url"][0] for p in hub.pings)
    assert pinged == sorted(
        f"https://agg.example.net/feeds/{slug}.{fmt}"
        for slug in ("finance", "tech", "all")
        for fmt in ("atom", "json")
    )
    assert {p["hub.mode"][0] for p in hub.pings} == {"publish"}
    atom = etree.parse(str(tmp_path / "all.atom")).getroot()
    assert hub_url in [
        link.get("href") for link in atom.findall("{http://www.w3.org/2005/Atom}link[@rel='hub']")
    ]
    assert json.loads((tmp_path / "all.json").read_text())["hubs"][0]["url"] == hub_url
    hub.pings.clear()
    publish_outputs(output, tmp_path, feeds_of(articles), CATEGORIES)
    assert hub.pings == []  # nothing changed, nothing pinged
    newer = replace(articles[1], id="tag:x,2024:new", updated=datetime(2030, 1, 1, tzinfo=UTC))
    publish_outputs(output, tmp_path, feeds_of([*articles, newer]), CATEGORIES)
    assert sorted(p["hub.url"][0] for p in hub.pings) == sorted(
        f"https://agg.example.net/feeds/{slug}.{fmt}" for slug in ("tech", "all") for fmt in ("atom", "json")
    )


@pytest.mark.parametrize("hub", [503], indirect=True)
def test_websub_failure_is_a_warning(tmp_path: Path, hub: _Hub) -> None:
    output = replace(OUTPUT, websub_hub=f"http://127.0.0.1:{hub.server_address[1]}/hub")
    report = publish_outputs(output, tmp_path, feeds_of(make_articles()), CATEGORIES)
    assert "all.atom" in report.written
    assert len(report.warnings) == 3 and all("HTTP 503" in w for w in report.warnings)


# --- the hostile corpus through every output ----------------------------------------------------

HOSTILE = CORPUS / "hostile" / "xml"
# entity_*/xxe_* are refused before parsing (parse stage); feedparser would expand them here.
HOSTILE_FILES = sorted(
    p for p in HOSTILE.iterdir() if p.suffix == ".xml" and not p.name.startswith(("entity_", "xxe_"))
)


def _date(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC) if value else None
    except (OverflowError, ValueError):
        return None


def articles_of(path: Path) -> list[Article]:
    """A deliberately raw conversion (no cleaning): publish must survive whatever text arrives."""
    parsed = feedparser.parse(path.read_bytes())
    source = "http://127.0.0.1:8000/" + path.name
    meta = FeedMeta(
        title=parsed.feed.get("title", ""), link=parsed.feed.get("link", ""), id=parsed.feed.get("id", "")
    )
    result = []
    for index, entry in enumerate(parsed.entries):
        guid = entry.get("id") or entry.get("link") or str(index)
        when = _date(entry.get("updated_parsed")) or datetime(2026, 1, 1, tzinfo=UTC)
        result.append(
            Article(
                id="tag:test,2026:"
                + hashlib.sha256((source + guid).encode("utf-8", "surrogatepass")).hexdigest(),
                source_url=source,
                source_name=path.stem,
                original_id=entry.get("id", ""),
                title=entry.get("title", ""),
                link=entry.get("link", ""),
                authors=tuple(a.get("name", "") for a in entry.get("authors", [])),
                published=_date(entry.get("published_parsed")),
                updated=when,
                summary=entry.get("summary", ""),
                content_html=(entry.get("content") or [{}])[0].get("value", ""),
                tags=tuple(t.get("term") or "" for t in entry.get("tags", [])),
                enclosures=tuple(
                    Enclosure(e.get("href", ""), e.get("type", "")) for e in entry.get("enclosures", [])
                ),
                feed=meta,
            )
        )
    return result


def test_hostile_corpus_outputs_stay_well_formed(tmp_path: Path) -> None:
    feeds: list[tuple[FeedSpec, list[Article]]] = []
    every: list[Article] = []
    for path in HOSTILE_FILES:
        articles = articles_of(path)
        slug = path.stem.replace(".", "-").lower()
        feeds.append((FeedSpec(slug, path.stem, path.name), articles))
        every.extend(articles)
    feeds.append((FeedSpec("all", "Everything", ""), every))
    assert len(every) > 50
    output = replace(
        OUTPUT, formats=["atom", "rss", "json"], max_entries=0, max_per_source=0, hexo={"dir": str(tmp_path / "posts")}
    )
    report = publish_outputs(output, tmp_path / "out", feeds, {})
    assert report.warnings == ()
    for spec, articles in feeds:
        for fmt in ("atom", "rss"):
            data = (tmp_path / "out" / f"{spec.slug}.{fmt}").read_bytes()
            etree.fromstring(data)
            parsed = feedparser.parse(data)
            assert not parsed.bozo, (spec.slug, fmt, parsed.get("bozo_exception"))
            ids = [e.id for e in parsed.entries]
            assert len(ids) == len(set(ids)) == len({a.id for a in articles})
            assert all(len(e.title) <= 1000 for e in parsed.entries)
            assert all(len(e.get("tags", [])) <= 20 for e in parsed.entries)
        json.loads((tmp_path / "out" / f"{spec.slug}.json").read_bytes())
    for post in (tmp_path / "posts").iterdir():
        front_matter(post.read_bytes())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"{spec.slug}.{fmt}" for spec, _ in feeds for fmt in ("atom", "rss", "json", "html")]
        + ["index.html", "feeds.opml"]
    )
    etree.parse(str(tmp_path / "out" / "feeds.opml"))
    again = publish_outputs(output, tmp_path / "out", feeds, {})
    assert again.written == ()
