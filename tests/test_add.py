"""`aggregator add URL`: a feed or a web page, over a real loopback server serving corpus feeds and real-looking
(and broken) HTML; the config keeps every byte it had, loads, and the next run publishes the new source."""

from __future__ import annotations

import shlex
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from conftest import CORPUS, RecordingServer, Route
from lxml import etree

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.config.append import append_source, text_with_source
from aggregator.config.urls import url_identity
from aggregator.discover import find_feed_links, usual_feed_urls
from aggregator.errors import ConfigError
from aggregator.parse import parse_feed

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
TECHCRUNCH = CORPUS / "feeds" / "feedjira" / "TechCrunch.xml"  # RSS 2.0, "TechCrunch", 20 items
RUANYIFENG = CORPUS / "feeds" / "rodel-reader" / "Atom_ruanyifeng.xml"  # Atom, 阮一峰的网络日志
JSON_FEED = CORPUS / "feeds" / "feedjira" / "json_feed.json"  # JSON Feed, inessential.com
HACKER_NEWS = CORPUS / "feeds" / "feedjira" / "RSSWithComments.xml"  # stands in for a comments feed
TYPEPAD = CORPUS / "feeds" / "feedjira" / "TypePadNews.xml"  # the source already configured

CONFIG = """\
# my feeds — hand-written; these comments, the quoting and the order must survive `add`
output:
  dir: out            # relative to this file
  base_url: "http://localhost/feeds/"
state: 'state/state.db'
fetch: {{user_agent: "add-test/1.0"}}
categories:
  tech: {{title: "Tech"}}   # flow style, quoted
sources:
  - url: "{base}/existing.xml"    # quoted, with a comment
    category: tech
    name: 'Existing'
# - url: http://disabled.example/feed
#   category: tech

# trailing comment after the list
"""


def serve(server: RecordingServer, path: str, file: Path | bytes, content_type: str) -> None:
    body = file if isinstance(file, bytes) else file.read_bytes()
    server.routes[path] = Route(200, {"Content-Type": content_type}, body)


@pytest.fixture
def site(http_server: RecordingServer) -> RecordingServer:
    serve(http_server, "/existing.xml", TYPEPAD, "application/atom+xml")
    return http_server


@pytest.fixture
def config_path(tmp_path: Path, site: RecordingServer) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(CONFIG.format(base=site.base), encoding="utf-8")
    return path


def add(config_path: Path, *args: str) -> int:
    return main(["add", *args, "--config", str(config_path)], clock=lambda: NOW)


def added_lines(before: str, after: str) -> list[str]:
    """The lines `after` has beyond `before`, checking that every byte of `before` is still there in order."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    i = 0
    while i < len(old) and old[i] == new[i]:
        i += 1
    tail = len(old) - i
    assert new[len(new) - tail:] == old[i:], "bytes after the insertion changed"
    return [line.rstrip("\n") for line in new[i:len(new) - tail]]


def new_sources(config_path: Path) -> list[tuple[str, tuple[str, ...], str]]:
    return [(s.url, s.categories, s.name) for s in load_config(config_path).sources[1:]]


# --- a feed, a page, broken pages, usual paths ----------------------------------------------------


def test_a_feed_address_is_added_as_it_is(site: RecordingServer, config_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/feed.xml", TECHCRUNCH, "application/rss+xml")
    before = config_path.read_text(encoding="utf-8")
    assert add(config_path, site.url("/feed.xml")) == 0
    out = capsys.readouterr().out
    assert f"added {site.url('/feed.xml')} to category 'tech'" in out
    assert "TechCrunch" in out and "20 items" in out and "the address is a feed" in out
    assert added_lines(before, config_path.read_text(encoding="utf-8")) == [
        f"  - url: {site.url('/feed.xml')}", "    category: tech"]
    assert new_sources(config_path) == [(site.url("/feed.xml"), ("tech",), "")]
    agents = {value for _, headers in site.requests for key, value in headers.items() if key.lower() == "user-agent"}
    assert agents == {"add-test/1.0"}  # the run's own client and settings


def test_a_page_with_one_alternate_behind_base_href(site: RecordingServer, config_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/blog/atom.xml", RUANYIFENG, "application/atom+xml")
    serve(site, "/", b"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Blog</title>
<base href="/blog/"><link rel="stylesheet" href="style.css">
<link rel="alternate" type="application/atom+xml; charset=utf-8" title="Atom" href="atom.xml">
</head><body><p>Hello""", "text/html; charset=utf-8")
    assert add(config_path, site.url("/"), "--name", "Ruan $HOME") == 0
    out = capsys.readouterr().out
    assert f"added {site.url('/blog/atom.xml')}" in out and "advertised by the page" in out
    assert "阮一峰的网络日志" in out and "shown as 'Ruan $HOME'" in out
    # a `$` is written as `$$`, so it never reads as ${VAR}; it loads back as the name given
    assert "    name: Ruan $$HOME" in config_path.read_text(encoding="utf-8")
    assert new_sources(config_path) == [(site.url("/blog/atom.xml"), ("tech",), "Ruan $HOME")]


def test_a_page_with_several_feeds_adds_the_main_one_and_lists_the_others(
        site: RecordingServer, config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/comments/feed/", HACKER_NEWS, "application/rss+xml")
    serve(site, "/feed/", TECHCRUNCH, "application/rss+xml")
    serve(site, "/feed.json", JSON_FEED, "application/feed+json")
    serve(site, "/wp-json/wp/v2/pages/2", b'{"id": 2, "title": {"rendered": "About"}}', "application/json")
    serve(site, "/site/", b"""<html><head>
<link rel="alternate" type="application/rss+xml" title="Site &raquo; Comments Feed" href="/comments/feed/">
<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2">
<link rel="alternate" type="application/rss+xml" title="Site &raquo; Feed" href="/feed/">
<link rel="alternate" type="application/feed+json" title="Site JSON" href="../feed.json">
<body><div><a href="/feed/">RSS""", "text/html")
    assert add(config_path, site.url("/site/"), "--category", "tech") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"added {site.url('/feed/')} to category 'tech'")  # not the comments feed
    command = shlex.join(["aggregator", "add", site.url("/comments/feed/"), "--category", "tech",
                          "--config", str(config_path)])
    assert f"    {command}" in out
    assert any(line.strip() == shlex.join(["aggregator", "add", site.url("/feed.json"), "--category", "tech",
                                           "--config", str(config_path)]) for line in out)
    assert not any("wp-json" in line for line in out)  # advertised, fetched, not a feed: not offered
    assert new_sources(config_path) == [(site.url("/feed/"), ("tech",), "")]


def test_broken_html_with_feed_links_only_in_the_body(site: RecordingServer, config_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/news/rss.xml", TECHCRUNCH, "text/xml")
    serve(site, "/news/index.html", b"""<html><head><title>News</title><meta charset=latin1></head>
<body><table><tr><td><div class=nav><a href='/about'>About</a> <a href=/sitemap.xml>Map
<p>Subscribe: <a href="rss.xml" title="News RSS"><img src=rss.png>RSS</a><a href="mailto:x@y">mail
<a href="rss.xml#latest">again</a><a href="/news/feed.xml">Dead feed link</a>
</td></tr></body>""", "text/html")
    assert add(config_path, site.url("/news/index.html")) == 0
    out = capsys.readouterr().out
    assert f"added {site.url('/news/rss.xml')}" in out and "linked from the page" in out
    assert not any(path == "/sitemap.xml" for path, _ in site.requests)  # not feed-like: never fetched


def test_a_page_without_links_whose_site_has_a_usual_feed_path(site: RecordingServer, config_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/feed", TYPEPAD.parent.joinpath("FeedjiraBlog.xml"), "application/atom+xml")
    serve(site, "/home", b"<html><body><h1>Welcome</h1><p>No feed links here.", "text/html")
    assert add(config_path, site.url("/home")) == 0
    out = capsys.readouterr().out
    assert f"added {site.url('/feed')}" in out and "at a usual path" in out
    assert new_sources(config_path) == [(site.url("/feed"), ("tech",), "")]


# --- refusals: exit 2, one line naming the URL, the config untouched ----------------------------------


def refused(config_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    before = config_path.read_bytes()
    assert add(config_path, *args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert config_path.read_bytes() == before
    assert not list(config_path.parent.glob(".*tmp"))
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aggregator: ")
    return lines[0]


def test_nothing_found_exits_2_naming_the_url(site: RecordingServer, config_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/page", b"<html><head><link rel=alternate type=application/rss+xml href=/gone.xml>"
                         b"<body><a href=/broken.rss>feed</a>", "text/html")
    serve(site, "/broken.rss", b"<html><body>Not a feed after all</body></html>", "application/rss+xml")
    line = refused(config_path, capsys, site.url("/page"))
    assert site.url("/page") in line and "no feed found" in line
    paths = {path for path, _ in site.requests}
    assert {"/gone.xml", "/broken.rss", "/feed", "/rss.xml", "/atom.xml", "/index.xml"} <= paths


def test_an_unreachable_or_refused_address_exits_2(site: RecordingServer, config_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert "cannot fetch: HTTP 404" in refused(config_path, capsys, site.url("/nothing-here"))
    assert "not an http(s) address" in refused(config_path, capsys, "ftp://example.org/feed")
    # the private-address guard is the run's: a config that forbids loopback cannot add from it either
    text = config_path.read_text(encoding="utf-8").replace(
        'fetch: {user_agent: "add-test/1.0"}', "fetch: {allow_private_addresses: false}")
    config_path.write_text(text, encoding="utf-8")
    serve(site, "/feed.xml", TECHCRUNCH, "application/rss+xml")
    line = refused(config_path, capsys, site.url("/feed.xml"))
    assert "cannot fetch" in line and "127.0.0.1" in line


@pytest.mark.parametrize("spelling", ["{base}/existing.xml", "{BASE}/existing.xml#top", "{https}/existing.xml"])
def test_an_address_already_configured_is_refused_before_any_fetch(
        site: RecordingServer, config_path: Path, capsys: pytest.CaptureFixture[str], spelling: str) -> None:
    url = spelling.format(base=site.base, BASE=site.base.upper(), https=site.base.replace("http:", "https:"))
    line = refused(config_path, capsys, url)
    assert url in line and "already configured as source 'Existing'" in line
    assert site.requests == []


def test_a_page_whose_feed_is_already_configured_is_refused(site: RecordingServer, config_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/", f'<link rel="alternate" type="application/atom+xml" href="{site.base.upper()}/existing.xml">'
          .encode(), "text/html")
    line = refused(config_path, capsys, site.url("/"))
    assert site.url("/") in line and "already configured" in line and "Existing" in line


def test_category_rules(site: RecordingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/feed.xml", TECHCRUNCH, "application/rss+xml")
    path = tmp_path / "feeds.yaml"
    path.write_text("categories:\n  tech: {}\n  news: {}\n  cn: {}\n", encoding="utf-8")
    line = refused(path, capsys, site.url("/feed.xml"))
    assert site.url("/feed.xml") in line and "choose one with --category (tech, news, cn)" in line
    line = refused(path, capsys, site.url("/feed.xml"), "--category", "Tech News")
    assert site.url("/feed.xml") in line and "unsafe category slug" in line
    line = refused(path, capsys, site.url("/feed.xml"), "--category", "nwes")
    assert site.url("/feed.xml") in line and "no such category" in line and "did you mean 'news'" in line and "configured: tech, news, cn" in line
    assert site.requests == []  # settled before anything is fetched
    assert add(path, site.url("/feed.xml"), "--category", "news") == 0
    # the config had no sources list: one is started at its end
    assert path.read_text(encoding="utf-8") == ("categories:\n  tech: {}\n  news: {}\n  cn: {}\n"
                                                f"sources:\n  - url: {site.url('/feed.xml')}\n    category: news\n")


def test_includes_stay_unchanged_and_the_main_file_gets_the_source(
        site: RecordingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/feed.xml", TECHCRUNCH, "application/rss+xml")
    (tmp_path / "conf.d").mkdir()
    include = tmp_path / "conf.d" / "more.yaml"
    include.write_text("sources:\n  - url: ${BASE}/existing.xml\n    category: tech\n", encoding="utf-8")
    path = tmp_path / "feeds.yaml"
    path.write_text("categories: {tech: {}}\ninclude: conf.d\nsources: []  # all in conf.d\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BASE", site.base)
        line = refused(path, capsys, site.url("/existing.xml"))  # configured in the include
        assert "already configured" in line
        assert add(path, site.url("/feed.xml")) == 0
    assert "include files are unchanged" in capsys.readouterr().out
    assert include.read_text(encoding="utf-8").startswith("sources:\n  - url: ${BASE}")
    assert path.read_text(encoding="utf-8") == ("categories: {tech: {}}\ninclude: conf.d\nsources: [{url: '"
                                                f"{site.url('/feed.xml')}', category: tech}}]  # all in conf.d\n")


# --- the result loads and runs ------------------------------------------------------------------


def test_the_added_source_is_published_by_the_next_run(site: RecordingServer, config_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/feed.xml", TECHCRUNCH, "application/rss+xml")
    serve(site, "/", b'<link rel="alternate" type="application/rss+xml" href="/feed.xml">', "text/html")
    before = config_path.read_text(encoding="utf-8")
    assert add(config_path, site.url("/")) == 0
    lines = added_lines(before, config_path.read_text(encoding="utf-8"))
    assert lines == [f"  - url: {site.url('/feed.xml')}", "    category: tech"]
    assert main(["run", "--config", str(config_path), "--no-progress", "-q"], clock=lambda: NOW) == 0
    published = etree.parse(str(config_path.parent / "out" / "tech.atom"))
    titles = [e.findtext("{http://www.w3.org/2005/Atom}title") for e in published.iter("{http://www.w3.org/2005/Atom}entry")]
    techcrunch = parse_feed(TECHCRUNCH.read_bytes(), {}, site.url("/feed.xml"), "")
    ours = [t for t in titles if t in {a.title for a in techcrunch.articles}]
    assert len(ours) == min(10, len(techcrunch.articles))  # output.max_per_source's default


# --- the pure parts ----------------------------------------------------------------------------


def test_discovery_reads_broken_pages_like_a_browser() -> None:
    page = b"""<html><head><title>x</title><base href="https://cdn.example/blog/">
<link rel="alternate feed" type="application/rss+xml" href="feed/"><link rel="feed" href="/all.atom">
<link rel="alternate" type="text/html" hreflang="fr" href="/fr/"><link rel=alternate type=application/json href=/api>
<body><a href="javascript:void(0)">rss</a><a href="../x.rss">X<a href="https://other.example/feed">o</a>
<a href="/feeds/news">n</a><a href="feed://podcast.example/rss">pod</a><a href="/?feed=rss2">wp</a><a href="/index.xml#top">i</a><a href=/post/rss-tips>p"""
    links = find_feed_links(page, "https://example.org/blog/post")
    assert [c.url for c in links.advertised] == ["https://cdn.example/blog/feed/", "https://cdn.example/all.atom",
                                                 "https://cdn.example/api"]
    # feed-like links, same site first (the base's host is not the page's: other hosts keep document order)
    assert [c.url for c in links.linked] == ["https://cdn.example/x.rss", "https://other.example/feed",
                                             "https://cdn.example/feeds/news", "http://podcast.example/rss",
                                             "https://cdn.example/?feed=rss2",
                                             "https://cdn.example/index.xml"]
    blogroll = b"""<ul><li><a href="https://friend.example/feed/">Friend</a>
<li><a href="/subscribe" type="application/atom+xml">Our Atom feed</a></ul>"""
    assert [(c.url, c.title) for c in find_feed_links(blogroll, "https://example.org/").linked] == [
        ("https://example.org/subscribe", "Our Atom feed"), ("https://friend.example/feed/", "Friend")]
    assert find_feed_links(b"", "https://example.org/").advertised == ()
    assert find_feed_links(TECHCRUNCH.read_bytes(), "https://example.org/") is not None  # XML: no error
    usual = [c.url for c in usual_feed_urls("https://example.org/blog/post")]
    assert usual[:2] == ["https://example.org/blog/feed", "https://example.org/blog/feed/"]
    assert "https://example.org/rss.xml" in usual and len(usual) == len(set(usual))


@pytest.mark.parametrize("text", [
    "categories: {a: {}}\nsources:\n- url: x\n  category: a",  # no final newline, dash at column 0
    "categories: {a: {}}\nsources:\n    -   url: x   # spaced\n        category: a\n\n# done\n",
    "categories: {a: {}}\nsources:\n  - url: x\n    category: a\n    name: |\n      multi\n\nstate: s.db\n",
    "categories: {a: {}}\nsources: [ {url: x, category: a}, ]\n",
    "categories: {a: {}}\nsources:   # none yet\nstate: s.db\n",
    "categories: {a: {}}\nsources: ~\n",
    "categories: {a: {}}\r\nsources:\r\n  - url: x\r\n    category: a\r\n# end\r\n",
])
def test_appending_keeps_every_byte_and_yields_the_entry(text: str) -> None:
    entry = {"url": "https://example.org/a,b?x=1", "category": "123", "name": "新浪 'x': y"}
    result = text_with_source(text, entry)
    assert yaml.safe_load(result)["sources"][-1] == entry
    # everything that was there is still there, in order (an insertion, nothing rewritten)
    rest = iter(result)
    assert all(ch in rest for ch in text.replace(" ~", ""))  # a null list (`~`) is the one thing replaced
    assert ("\r\n" in text) == ("\n" not in result.replace("\r\n", ""))  # one kind of line end


def test_an_append_that_would_not_load_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(CONFIG.format(base="http://127.0.0.1:9"), encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        append_source(path, "http://127.0.0.1:9/new.xml", "no-such-category")
    assert "not changed" in str(info.value) and "undefined category 'no-such-category'" in str(info.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["feeds.yaml"]


def test_the_config_keeps_its_permissions(site: RecordingServer, config_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    serve(site, "/feed.xml", TECHCRUNCH, "application/rss+xml")
    config_path.chmod(0o600)  # it may hold tokens
    assert add(config_path, site.url("/feed.xml")) == 0
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_url_identity_equates_spellings_of_one_address() -> None:
    assert url_identity("HTTPS://Example.ORG:443/feed#x") == url_identity("http://example.org/feed")
    assert url_identity("https://example.org") == url_identity("https://example.org/")
    assert url_identity("https://example.org/feed") != url_identity("https://example.org/feed?page=2")
    assert url_identity("https://bücher.example/f") == url_identity("https://xn--bcher-kva.example/f")
