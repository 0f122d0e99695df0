"""Issue 20 on the publish side, end to end over loopback with the real CLI: what outputs may say about
a source (no query string or userinfo), text published exactly as the feed meant it (escaped once, no
bidi controls, Hexo scalars kept strings, full titles for filters), and the render version that makes
an upgrade render everything again."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RecordingServer, Route
from lxml import etree

from aggregator.cli import main

ATOM = "{http://www.w3.org/2005/Atom}"
RSS_TYPE = {"Content-Type": "application/rss+xml"}


def rss(items: str, title: str = "Private feed", head: str = "") -> bytes:
    return (f'{head}<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>{title}</title><link>https://example.org/</link><description>d</description>"
            f"{items}</channel></rss>").encode()


def item(n: int, title: str, extra: str = "") -> str:
    return (f"<item><guid>https://example.org/{n}</guid><title>{title}</title><link>https://example.org/{n}</link>"
            f"<pubDate>Tue, 28 Dec 2021 03:4{n % 10}:53 GMT</pubDate><description>body {n}</description>{extra}</item>")


def write_config(tmp_path: Path, sources: str, output: str = "", extra: str = "") -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(f"""\
output:
  dir: {tmp_path / 'out'}
  base_url: 'https://news.example.org/feeds/'
  max_entries: 0
  formats: [atom, rss, json]
{output}state: {tmp_path / 'state.db'}
categories:
  news: {{title: News}}
{extra}sources:
{sources}""", encoding="utf-8")
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["run", "--config", str(config), "--no-progress", "--force", *flags]) == 0
    return capsys.readouterr().out


def entries(path: Path) -> list[etree._Element]:
    return list(etree.parse(str(path)).getroot().iter(f"{ATOM}entry"))


def test_a_render_version_bump_renders_every_entry_again(tmp_path: Path, http_server: RecordingServer,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Outputs are cached on versions (the publish key and the feed digests): a change to
    the rendered bytes must reach files written by older code, so RENDER_VERSION is in every key."""
    import aggregator.publish as publish

    rendered: list[str] = []
    real_atom = publish._RENDERERS["atom"]

    def counting_atom(spec, articles, *args, **kwargs):  # type: ignore[no-untyped-def]
        rendered.extend(f"{spec.slug}:{a.id}" for a in articles)
        return real_atom(spec, articles, *args, **kwargs)

    monkeypatch.setitem(publish._RENDERERS, "atom", counting_atom)
    http_server.routes["/f.xml"] = Route(200, RSS_TYPE, rss(item(1, "One") + item(2, "Two")))
    config = write_config(tmp_path, f"  - {{url: '{http_server.url('/f.xml')}', category: news}}\n",
                          output=f"  hexo: {{dir: {tmp_path / 'posts'}}}\n")
    run(config, capsys)
    assert len(rendered) == 4  # two entries in news.atom and in all.atom
    rendered.clear()
    run(config, capsys)
    assert rendered == []  # nothing changed: nothing rendered
    posts = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "posts").iterdir()}
    (tmp_path / "posts" / next(iter(posts))).write_text("stale, as an older version wrote it\n", encoding="utf-8")
    monkeypatch.setattr(publish, "RENDER_VERSION", publish.RENDER_VERSION + 1)
    run(config, capsys)
    assert len(rendered) == 4  # every entry rendered again, none copied from the old files
    assert all("stale" not in p.read_text(encoding="utf-8") for p in (tmp_path / "posts").iterdir())


def test_no_output_file_holds_a_source_urls_credentials(tmp_path: Path, http_server: RecordingServer,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20.6: a private feed's token (query) and userinfo reach the server but no published file:
    not the entries' atom:source id and self link, not RSS <source>, not a name defaulting to the URL's
    host, not the feed's own id or link echoing the fetched URL. A public source keeps its self link."""
    secret, userinfo = "SECRET7d0c", "alice:hunter22"
    # an Atom feed without a title (its name falls back to the URL's host, userinfo and all) whose own
    # id and alternate link echo the tokenized URL, as generators of private feeds do
    private_atom = (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                    f"<id>{http_server.url('/private.atom')}?key={secret}</id>"
                    f'<link rel="alternate" href="https://example.org/home?lang=en&amp;k={secret}"/>'
                    "<updated>2024-01-01T00:00:00Z</updated>"
                    "<entry><id>https://example.org/a1</id><title>Private one</title>"
                    '<link href="https://example.org/a1"/><updated>2024-01-01T00:00:00Z</updated>'
                    "<content type=\"html\">&lt;p&gt;a&lt;/p&gt;</content></entry></feed>").encode()
    http_server.routes[f"/private.atom?key={secret}"] = Route(200, {"Content-Type": "application/atom+xml"},
                                                              private_atom)
    http_server.routes[f"/private.rss?token={secret}&x=1"] = Route(200, RSS_TYPE, rss(item(2, "Private two")))
    http_server.routes["/public.rss"] = Route(200, RSS_TYPE, rss(item(3, "Public three"), title="Public"))
    # a query that is no credential still stays out of the outputs, but the title holding its value stays
    http_server.routes["/q.rss?format=feed"] = Route(200, RSS_TYPE, rss(item(4, "Queried four"), title="Our feed"))
    authority = f"{userinfo}@127.0.0.1:{http_server.server_address[1]}"
    config = write_config(tmp_path, f"""\
  - {{url: 'http://{authority}/private.atom?key={secret}', category: news}}
  - {{url: 'http://{authority}/private.rss?token={secret}&x=1', category: news}}
  - {{url: '{http_server.url('/public.rss')}', category: news}}
  - {{url: '{http_server.url('/q.rss?format=feed')}', category: news}}
""", output=f"  hexo: {{dir: {tmp_path / 'out' / 'posts'}}}\n")
    assert "4 new" in run(config, capsys)
    assert {path for path, _headers in http_server.requests} >= {f"/private.atom?key={secret}",
                                                                  f"/private.rss?token={secret}&x=1"}
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"news.atom", "news.rss", "news.json", "all.atom", "index.html",
                                       "feeds.opml"} and len(list((tmp_path / "out" / "posts").iterdir())) == 4
    for path in files:
        data = path.read_bytes()
        for needle in (secret, userinfo, "hunter22", "alice"):
            assert needle.encode() not in data, (path.name, needle)
    sources = {e.findtext(f"{ATOM}title"): e.find(f"{ATOM}source") for e in entries(tmp_path / "out" / "news.atom")}
    assert set(sources) == {"Private one", "Private two", "Public three", "Queried four"}
    private_one = sources["Private one"]
    assert private_one.findtext(f"{ATOM}id", "").startswith("urn:uuid:")  # its own id echoed the token
    assert private_one.findtext(f"{ATOM}title") == f"127.0.0.1:{http_server.server_address[1]}"  # host only
    assert sources["Private two"].find(f"{ATOM}link[@rel='self']") is None
    assert private_one.find(f"{ATOM}link[@rel='alternate']") is None  # it held the token as ?k=
    assert sources["Public three"].find(f"{ATOM}link[@rel='self']").get("href") == http_server.url("/public.rss")
    assert sources["Queried four"].find(f"{ATOM}link[@rel='self']") is None
    assert sources["Queried four"].findtext(f"{ATOM}title") == "Our feed"
    assert b"format=feed" not in (tmp_path / "out" / "news.atom").read_bytes()
    rss_sources = etree.parse(str(tmp_path / "out" / "news.rss")).getroot().findall("channel/item/source")
    assert [s.get("url") for s in rss_sources] == [http_server.url("/public.rss")]


# Titles that YAML 1.1 (PyYAML) or 1.2 (js-yaml, which Hexo uses; ruamel here) reads as another type.
NOT_STRINGS = ["1e3", "0o17", "0x1F", "0b101", "1_000", "+12", "-.5e-3", ".inf", "-.Inf", ".NaN", "12:30:00",
               "yes", "No", "on", "OFF", "true", "y", "~", "null", "Null", "2024-01-01", "2024-01-01 10:00:00"]


def test_hexo_front_matter_keeps_every_title_a_string(tmp_path: Path, http_server: RecordingServer,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20.11: `title: 1e3` was a number to Hexo. Every string from a feed is quoted, so both YAML
    versions read back exactly the title (and author and categories) the feed gave."""
    import yaml
    from ruamel.yaml import YAML

    extra = "<dc:creator>0o17</dc:creator>"
    http_server.routes["/n.xml"] = Route(200, RSS_TYPE, rss("".join(
        item(n, title, extra) for n, title in enumerate(NOT_STRINGS)), title="2024"))
    config = write_config(tmp_path, f"  - {{url: '{http_server.url('/n.xml')}', category: news}}\n",
                          output=f"  hexo: {{dir: {tmp_path / 'posts'}}}\n")
    run(config, capsys)
    posts = sorted((tmp_path / "posts").iterdir())
    assert len(posts) == len(NOT_STRINGS)
    yaml12 = YAML(typ="safe", pure=True)
    titles = set()
    for post in posts:
        header = post.read_text(encoding="utf-8").split("---\n")[1]
        for front in (yaml.safe_load(header), yaml12.load(header)):
            assert isinstance(front["title"], str), (post.name, front["title"])
            assert front["author"] == "0o17" and front["categories"] == ["News", "2024"], post.name
            titles.add(front["title"])
    assert titles == set(NOT_STRINGS)


def test_removing_tracking_parameters_leaves_every_other_byte(tmp_path: Path, http_server: RecordingServer,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20.11: the rest of the query was parsed and re-encoded (`;` -> `%3B`, `%20` -> `+`, `~` ->
    `%7E`), which changes what some servers read. Only the tracking parameters go, in the item's link
    and in links inside its content."""
    link = "https://example.org/view.php?id=1;sess=2&amp;utm_source=rss&amp;q=a%20b+c&amp;p=%7E/x&amp;fbclid=Z"
    kept = "https://example.org/view.php?id=1;sess=2&q=a%20b+c&p=%7E/x"
    body = f'&lt;p&gt;&lt;a href="{link.replace("view", "other")}"&gt;more&lt;/a&gt;&lt;/p&gt;'
    http_server.routes["/t.xml"] = Route(200, RSS_TYPE, rss(
        f"<item><guid>g1</guid><title>T</title><link>{link}</link><description>{body}</description></item>"))
    config = write_config(tmp_path, f"  - {{url: '{http_server.url('/t.xml')}', category: news}}\n")
    run(config, capsys)
    [entry] = entries(tmp_path / "out" / "news.atom")
    assert entry.find(f"{ATOM}link[@rel='alternate']").get("href") == kept
    href = kept.replace("view", "other").replace("&", "&amp;")  # the content is HTML
    assert f'href="{href}"' in entry.findtext(f"{ATOM}content", "")
    assert etree.parse(str(tmp_path / "out" / "news.rss")).findtext("channel/item/link") == kept


BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_bidi_override_controls_never_reach_an_output(tmp_path: Path, http_server: RecordingServer,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20.11: "invoice\\u202egpj.exe" shows as "invoiceexe.jpg" in index.html and in readers. The
    embedding, override and isolate controls go from titles, authors, tags and source names in every
    format; the marks right-to-left text needs (U+200E, U+200F, U+061C) stay."""
    extra = ("<dc:creator>Eve \u202bevil\u202c</dc:creator><category>\u2067tag\u2069</category>"
             "<category>\u202dLRO</category>")
    http_server.routes["/b.xml"] = Route(200, RSS_TYPE, rss(
        item(1, "invoice\u202egpj.exe", extra) + item(2, "\u05e9\u05dc\u05d5\u05dd 2024\u200f!"),
        title="Feed \u2066name\u2069"))
    config = write_config(tmp_path, f"  - {{url: '{http_server.url('/b.xml')}', category: news}}\n",
                          output=f"  hexo: {{dir: {tmp_path / 'out' / 'posts'}}}\n")
    run(config, capsys)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) == 12  # atom, rss, json, html for news and all; index.html, feeds.opml; two posts
    for path in files:
        data = path.read_text(encoding="utf-8")
        assert not set(data) & set(BIDI_CONTROLS), path.name
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert ">invoicegpj.exe</a>" in page and "\u05e9\u05dc\u05d5\u05dd 2024\u200f!" in page
    assert ">invoicegpj.exe</a>" in (tmp_path / "out" / "news.html").read_text(encoding="utf-8")
    atom = (tmp_path / "out" / "news.atom").read_text(encoding="utf-8")
    assert "<name>Eve evil</name>" in atom and 'term="tag"' in atom and "<title>Feed name</title>" in atom


def test_authors_and_tags_are_escaped_exactly_once(tmp_path: Path, http_server: RecordingServer,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20.11: a feed that is not well-formed is read by feedparser's loose parser, which leaves
    `&lt;` and `&amp;` in author names and tags: published, readers showed `&lt;img` and `Society &amp;
    Culture`. Loose or strict, the same item publishes the same text, escaped once in every format."""
    import json

    import yaml
    from conftest import CORPUS

    extra = ("<dc:creator>&lt;img src=x&gt; Bob &amp; Al</dc:creator>"
             "<category>Society &amp; Culture</category><category>&lt;b&gt;bold&lt;/b&gt;</category>")
    strict = rss(item(1, "Strict", extra), title="Strict")
    loose = rss(item(2, "Loose", extra), title="Loose", head="\n")  # a blank line before <?xml: not XML
    real = CORPUS / "feeds" / "rss-parser" / "itunes-missing-image.rss"  # loose too; "Society &amp; Culture"
    http_server.routes.update({"/s.xml": Route(200, RSS_TYPE, strict), "/l.xml": Route(200, RSS_TYPE, loose),
                               "/r.xml": Route(200, RSS_TYPE, real.read_bytes())})
    config = write_config(tmp_path, "".join(f"  - {{url: '{http_server.url(p)}', category: news}}\n"
                                            for p in ("/s.xml", "/l.xml", "/r.xml")),
                          output=f"  hexo: {{dir: {tmp_path / 'posts'}}}\n")
    out = run(config, capsys)
    assert "3 fetched" in out and "0 failed" in out
    expected_author, expected_tags = "<img src=x> Bob & Al", ["News", "Society & Culture", "<b>bold</b>"]
    by_title = {e.findtext(f"{ATOM}title"): e for e in entries(tmp_path / "out" / "news.atom")}
    for title in ("Strict", "Loose"):
        entry = by_title[title]
        assert entry.findtext(f"{ATOM}author/{ATOM}name") == expected_author, title
        assert [c.get("term") for c in entry.findall(f"{ATOM}category")] == expected_tags, title
    real_terms = {c.get("term") for e in by_title.values() for c in e.findall(f"{ATOM}category")}
    assert "Society & Culture" in real_terms and not any("&" in t and " & " not in t for t in real_terms)
    channel = etree.parse(str(tmp_path / "out" / "news.rss")).getroot().find("channel")
    for rss_item in channel.findall("item"):
        if rss_item.findtext("title") in ("Strict", "Loose"):
            assert rss_item.findtext("{http://purl.org/dc/elements/1.1/}creator") == expected_author
            assert [c.text for c in rss_item.findall("category")] == expected_tags
    items = json.loads((tmp_path / "out" / "news.json").read_text(encoding="utf-8"))["items"]
    for json_item in items:
        if json_item["title"] in ("Strict", "Loose"):
            assert json_item["authors"] == [{"name": expected_author}] and json_item["tags"] == expected_tags
    for post in (tmp_path / "posts").iterdir():
        front = yaml.safe_load(post.read_text(encoding="utf-8").split("---\n")[1])
        if front["title"] in ("Strict", "Loose"):
            assert front["author"] == expected_author
    atom = (tmp_path / "out" / "news.atom").read_text(encoding="utf-8")
    assert atom.count("<name>&lt;img src=x&gt; Bob &amp; Al</name>") == 2  # XML's own escaping, once
    assert atom.count('term="Society &amp; Culture"') >= 3  # the real feed's items and ours


def test_filters_see_the_whole_title_and_outputs_cut_it(tmp_path: Path, http_server: RecordingServer,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20.11: titles were cut to 1,000 characters when parsed, so a rule anchored at the end never
    saw the end. Parsing keeps the title whole; outputs cut it (1,000 characters with the ellipsis)."""
    http_server.routes["/l.xml"] = Route(200, RSS_TYPE, rss(  # 1,500 characters, then the tell
        item(1, "word " * 300 + "[sponsored]") + item(2, "text " * 300 + "[news]")
        + item(3, "Short [sponsored] not at the end")))
    config = write_config(tmp_path, f"  - {{url: '{http_server.url('/l.xml')}', category: news}}\n",
                          extra="filters:\n  - drop: {title: '\\[sponsored\\]$'}\n")
    out = run(config, capsys)
    assert "2 new" in out, out
    titles = [e.findtext(f"{ATOM}title") or "" for e in entries(tmp_path / "out" / "news.atom")]
    assert sorted(len(t) for t in titles) == [32, 1000]
    assert any(t.startswith("text text") and t.endswith("…") for t in titles)


def test_an_item_known_by_its_content_keeps_its_id_with_a_whole_title() -> None:
    """Without guid or link an item's id comes from its title and content: ids given while titles were
    cut to 1,000 characters must stay, or such items would come back as new after the upgrade."""
    from aggregator.ids import make_article_id
    from aggregator.parse import parse_feed

    title = "x" * 999 + "yz"
    [article] = parse_feed(rss(f"<item><title>{title}</title><description>body</description></item>"),
                           {"content-type": "application/rss+xml"}, "https://s.example/f", "").articles
    assert article.title == title
    assert article.id == make_article_id("https://s.example/f", "", "", title[:1000], "body")
