"""<slug>.html pages and the `sources --html` status page: escaping of hostile feeds, byte stability,
the same entries as the Atom feed, the output.html switch, and a whole run over a loopback server."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
from conftest import CORPUS, RecordingServer, Route, yaml_config
from test_publish import CATEGORIES, OUTPUT, feeds_of, make_articles
from test_publish_outputs import HOSTILE_FILES, articles_of

from aggregator.cli import main
from aggregator.model import Article
from aggregator.publish import FeedSpec, publish_outputs
from aggregator.publish.pages import render_page
from aggregator.status_page import CHART_DAYS, render_status_page, source_statuses

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SAFE_URL = re.compile(r"^(https?://|[a-z0-9_-]+\.(atom|rss|json|html)$)")


class Dom(HTMLParser):
    """Every start tag with its attributes, the text, and the <style> and CSP contents."""

    def __init__(self, page: bytes) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.chunks: list[str] = []
        self.style = ""
        self._in: list[str] = []
        self.feed(page.decode("utf-8"))
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "style":
            self.style += data
        else:
            self.chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.chunks).split())

    def policy(self) -> str:
        [meta] = [a for t, a in self.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        return meta["content"]


def assert_nothing_runs(page: bytes) -> Dom:
    """No script element, no event handler, no URL but http(s) and our own files, a CSP that forbids
    scripts and allows the page's own stylesheet by its hash."""
    dom = Dom(page)
    assert not [t for t, _ in dom.tags if t in ("script", "iframe", "object", "embed", "form", "base")]
    for tag, attrs in dom.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name in ("href", "src"):
            if name in attrs:
                assert SAFE_URL.match(attrs[name]), (tag, attrs)
    policy = dom.policy()
    assert policy.startswith("default-src 'none';") and "script-src" not in policy and "unsafe" not in policy
    digest = base64.b64encode(hashlib.sha256(dom.style.encode("utf-8")).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    return dom


# --- category pages --------------------------------------------------------------------------


def test_hostile_feeds_give_pages_where_nothing_runs() -> None:
    """The hostile corpus, converted raw (not cleaned): titles holding <script> and onerror=, links
    with javascript: and data: schemes, markup in summaries. All of it is text on the page."""
    seen_titles = ""
    for path in HOSTILE_FILES:
        articles = articles_of(path)
        page = render_page(FeedSpec("x", path.stem, "<b onmouseover=alert(1)>sub</b>"), articles, OUTPUT)
        dom = assert_nothing_runs(page)
        seen_titles += dom.text
    assert "<script>alert(1)</script>Title" in seen_titles  # shown, as text
    assert "<img src=x onerror=alert(1)>" in seen_titles
    assert "<b onmouseover=alert(1)>sub</b>" in seen_titles


def test_links_with_other_schemes_are_left_out() -> None:
    [path] = [p for p in HOSTILE_FILES if p.name == "item_link_schemes.xml"]
    dom = Dom(render_page(FeedSpec("x", "x", ""), articles_of(path), OUTPUT))
    links = {a["href"] for t, a in dom.tags if t == "a"}
    assert "https://feed.example/ok" in links
    assert not [link for link in links if "script" in link or link.startswith(("data:", "file:"))]
    assert {"js", "data", "file", "vb", "spaces", "ok"} <= set(dom.text.split())  # titles stay, unlinked


def test_page_shows_each_entry_like_the_atom_feed(tmp_path: Path) -> None:
    output = replace(OUTPUT, formats=["atom", "rss", "json"])
    publish_outputs(output, tmp_path, feeds_of(make_articles()), CATEGORIES)
    for slug in ("finance", "tech", "all"):
        atom = feedparser.parse((tmp_path / f"{slug}.atom").read_bytes())
        dom = assert_nothing_runs((tmp_path / f"{slug}.html").read_bytes())
        assert len([t for t, _ in dom.tags if t == "article"]) == len(atom.entries) > 0
        places = [dom.text.index(" ".join(entry.title.split())) for entry in atom.entries]
        assert places == sorted(places)  # the same entries in the same order
        alternates = {a["href"]: a["type"] for t, a in dom.tags if t == "link" and a.get("rel") == "alternate"}
        assert alternates == {f"{slug}.atom": "application/atom+xml", f"{slug}.rss": "application/rss+xml",
                              f"{slug}.json": "application/feed+json"}
        assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in dom.tags
    page = (tmp_path / "finance.html").read_text(encoding="utf-8")
    assert '<img class="lead" src="https://news.example.org/img/a1.png"' in page
    assert "近日，国家移民管理局印发规划。" in page and "新浪财经" in page
    index = Dom((tmp_path / "index.html").read_bytes())
    assert {a["href"] for t, a in index.tags if t == "a" and a.get("type") == "text/html"} == {
        "finance.html", "tech.html", "all.html"}


def test_pages_are_byte_stable_and_say_no_time_but_the_entries(tmp_path: Path) -> None:
    articles = make_articles()
    publish_outputs(OUTPUT, tmp_path / "a", feeds_of(articles), CATEGORIES, now=NOW)
    publish_outputs(OUTPUT, tmp_path / "b", feeds_of(list(reversed(articles))), CATEGORIES,
                    now=NOW + timedelta(days=3))
    for slug in ("finance", "tech", "all"):
        assert (tmp_path / "a" / f"{slug}.html").read_bytes() == (tmp_path / "b" / f"{slug}.html").read_bytes()
    assert "2026" not in (tmp_path / "a" / "all.html").read_text(encoding="utf-8")


def test_output_html_false_writes_no_pages(tmp_path: Path) -> None:
    report = publish_outputs(replace(OUTPUT, html=False), tmp_path, feeds_of(make_articles()), CATEGORIES)
    assert not [name for name in report.written if name.endswith(".html") and name != "index.html"]
    index = Dom((tmp_path / "index.html").read_bytes())
    assert not [a for t, a in index.tags if t == "a" and re.fullmatch(r"[a-z]+\.html", a["href"])]
    assert sorted(p.name for p in tmp_path.glob("*.html")) == ["index.html"]


def test_an_article_without_summary_shows_its_lead_paragraph() -> None:
    article = Article(id="tag:x,2026:1", source_url="https://a.example/feed", source_name="A", title="T",
                      link="https://a.example/1", updated=NOW,
                      content_html="<p>Lead &amp; paragraph.</p><p>Second.</p>")
    dom = Dom(render_page(FeedSpec("x", "X", ""), [article], OUTPUT))
    assert "Lead & paragraph. Second." in dom.text


# --- status page -----------------------------------------------------------------------------


def row(name: str, url: str, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {"name": name, "url": url, "category": "news", "status": 200,
                               "last_success": (NOW - timedelta(hours=1)).isoformat(), "last_error": "",
                               "failures": 0, "items": 3, "next_due": (NOW + timedelta(minutes=30)).isoformat(),
                               "moved_to": "", "flags": []}
    return base | extra


def test_status_page_puts_failing_and_stale_first_and_escapes_everything() -> None:
    rows = [
        row("fine", "https://a.example/feed"),
        row("old", "https://b.example/feed", last_success=(NOW - timedelta(days=3)).isoformat()),
        row("<script>document.title='x'</script>", "https://u:secretpw@c.example/feed?token=abcdef123",
            failures=4, flags=["failing"], status=503,
            last_error="HTTP 503 from https://u:secretpw@c.example/feed?token=abcdef123 <img src=x onerror=alert(1)>\n"
                       "second line of the error"),
        row("held", "https://d.example/feed", flags=["redirected"], moved_to="https://d.example/new"),
    ]
    today = (NOW.date() - datetime(1970, 1, 1).date()).days
    per_day = {"https://a.example/feed": {today: 4, today - 29: 2, today - 30: 99}}
    statuses = source_statuses(rows, per_day, {"https://d.example/feed": 7}, NOW, 2 * 86400)
    assert [s.states for s in statuses] == [("failing",), ("stale",), ("ok",), ("held back", "redirected")]
    assert statuses[2].per_day[-1] == 4 and statuses[2].per_day[0] == 2 and sum(statuses[2].per_day) == 6
    assert len(statuses[2].per_day) == CHART_DAYS
    page = render_status_page(statuses, NOW)
    dom = assert_nothing_runs(page)
    assert "img-src" not in dom.policy()  # nothing at all is loaded from elsewhere
    assert "<script>document.title='x'</script>" in dom.text
    assert "onerror=alert(1)> second line of the error" in dom.text  # the error in full
    assert b"secretpw" not in page and b"abcdef123" not in page  # credentials in URLs stay private
    assert dom.text.index("failing") < dom.text.index("stale") < dom.text.index("fine")
    bars = [a for t, a in dom.tags if t == "rect"]
    assert len(bars) == 4 * CHART_DAYS
    assert "6 articles in 30 days, at most 4 a day" in dom.text and "7 held back" in dom.text
    assert render_status_page(statuses, NOW) == page  # byte-stable for the same rows and now


# --- a whole run ----------------------------------------------------------------------------

FEEDS = ("rsshub/36kr-news.xml", "rsshub/bjp-apod.xml", "feeds/gitblog/feed.xml")


def test_run_then_sources_html_over_a_loopback_server(tmp_path: Path, http_server: RecordingServer,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for name in FEEDS:
        http_server.routes["/" + name] = Route(200, {"Content-Type": "application/xml"},
                                               (CORPUS / name).read_bytes())
    lines = ["output: {dir: out, formats: [atom, json]}", "state: state.db", "categories:",
             "  cn: {title: 中文}", "  blogs: {title: Blogs}", "sources:"]
    lines += [f"  - {{url: '{http_server.url('/' + name)}', category: {'cn' if 'rsshub' in name else 'blogs'}}}"
              for name in FEEDS]
    lines.append(f"  - {{url: '{http_server.url('/missing.xml')}', category: blogs, name: Missing}}")
    config = yaml_config(tmp_path, lines)
    assert main(["run", "--config", str(config), "--no-progress"], clock=lambda: NOW) == 0
    out = tmp_path / "out"
    for slug in ("cn", "blogs", "all"):
        page = (out / f"{slug}.html").read_bytes()
        dom = assert_nothing_runs(page)
        for entry in feedparser.parse((out / f"{slug}.atom").read_bytes()).entries:
            assert " ".join(entry.title.split()) in dom.text
        assert {a["href"] for t, a in dom.tags if t == "link" and a.get("rel") == "alternate"} == {
            f"{slug}.atom", f"{slug}.json"}
    assert b'<img class="lead"' in (out / "cn.html").read_bytes()
    mtime = (out / "cn.html").stat().st_mtime_ns
    assert main(["run", "--config", str(config), "--no-progress", "--force"], clock=lambda: NOW + timedelta(hours=1)) == 0
    assert (out / "cn.html").stat().st_mtime_ns == mtime  # unchanged bytes: not rewritten
    capsys.readouterr()

    status = tmp_path / "status.html"
    later = NOW + timedelta(days=1)
    assert main(["sources", "--config", str(config), "--html", str(status)], clock=lambda: later) == 0
    assert f"{status}: status page of 4 sources written" in capsys.readouterr().out
    page = status.read_bytes()
    dom = assert_nothing_runs(page)
    assert dom.text.index("Missing") < dom.text.index("36kr") and "HTTP 404" in dom.text
    stored = sum(len(feedparser.parse((CORPUS / name).read_bytes()).entries) for name in FEEDS)
    totals = [int(m) for m in re.findall(r"(\d+) articles in 30 days", dom.text)]
    assert sum(totals) == stored  # each article counted once, on the day it was first seen
    assert main(["sources", "--config", str(config), "--html", str(status)], clock=lambda: later) == 0
    assert status.read_bytes() == page
