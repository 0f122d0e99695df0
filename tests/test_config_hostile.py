"""Configs written or fed by someone else (issue 20, items 5, 7, 8, 11; issue 19's host spellings): every
one ends in exit 2 with file:line and what is wrong, never a traceback, a hang or a leaked secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import load_config
from conftest import RecordingServer, Route
from test_config import laughs, write

HEAD = """\
categories:
  news: {title: News}
sources:
  - {url: "https://example.org/feed.xml", category: news}
"""


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`aggregator check` on the file: (exit code, stderr); asserts there is no traceback."""
    code = main(["check", "--config", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


# --- YAML the loader must refuse (items 7 and 8; more cases in test_config.BROKEN) ----------------


def test_a_refused_value_is_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(write(tmp_path, HEAD + "state: !!python/name:os.system\nfetch: !!set {interval}\n"), capsys)
    assert code == 2
    assert err.splitlines()[1:] == [
        f"  {tmp_path}/feeds.yaml:5: state: YAML tag !!python/name:os.system is not allowed: a config holds only "
        "strings, numbers, booleans, null, lists and mappings",
        f"  {tmp_path}/feeds.yaml:6: fetch: YAML tag !!set is not allowed: a config holds only "
        "strings, numbers, booleans, null, lists and mappings"]


def test_alias_expansion_through_an_include_is_capped_over_the_whole_load(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # two files, each under the budget alone (9^5 = 59,049 copies), over it together
    write(tmp_path, "sources: []\n" + laughs(5, "x"), "conf.d/a.yaml")
    write(tmp_path, "sources: []\n" + laughs(5, "y"), "conf.d/b.yaml")
    code, err = check(write(tmp_path, HEAD + "include: conf.d\n"), capsys)
    assert code == 2, err
    assert re.search(r"conf.d/b.yaml:2: YAML aliases copy more than 100,000 values", err), err


def test_aliases_within_the_budget_still_work(tmp_path: Path) -> None:
    text = """\
categories:
  news: {title: News, headers: &auth {Authorization: "Bearer ${TOKEN}"}}
sources:
  - {url: "https://a.example/rss", category: news, filters: &rules [{drop: {title: sponsored}}], headers: *auth}
  - {url: "https://b.example/rss", category: news, filters: *rules}
"""
    config = load_config(write(tmp_path, text), env={"TOKEN": "t"})
    assert [tuple(r.body for r in s.filters) for s in config.sources] == [({"drop": {"title": "sponsored"}},)] * 2
    assert dict(config.sources[0].headers) == {"Authorization": "Bearer t"}


# --- import-opml keeps third-party text literal (item 5) -------------------------------------------

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Feed</title><link>http://example.org/</link>
<item><title>One</title><link>http://example.org/1</link><guid>one</guid></item></channel></rss>"""


class AnyPath(dict[str, Route]):
    """Routes that serve the same feed for every path and query."""

    def get(self, path: str, default: Route | None = None) -> Route:  # type: ignore[override]
        return Route(200, {"Content-Type": "application/rss+xml"}, RSS)


def test_imported_opml_text_never_expands_the_environment(tmp_path: Path, http_server: RecordingServer,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    http_server.routes = AnyPath()
    leak = http_server.url("/feed?leak=${EXAMPLE_TOKEN}")
    write(tmp_path, f"""<opml version="2.0"><body>
  <outline text="Costs $$ ${{UNSET_VARIABLE_HERE}}">
    <outline text="Token ${{EXAMPLE_TOKEN}}" xmlUrl="{leak}"/>
  </outline></body></opml>""", "subs.opml")
    config_path = tmp_path / "feeds.yaml"  # created by the import
    assert main(["import-opml", str(tmp_path / "subs.opml"), "--config", str(config_path)]) == 0
    assert "added 1 sources" in capsys.readouterr().out

    monkeypatch.setenv("EXAMPLE_TOKEN", "s3cret-token")
    monkeypatch.delenv("UNSET_VARIABLE_HERE", raising=False)
    config = load_config(config_path)  # the unset variable does not lock the config out
    (source,) = config.sources
    assert (source.url, source.name) == (leak, "Token ${EXAMPLE_TOKEN}")
    assert [c.title for c in config.categories.values()] == ["Costs $$ ${UNSET_VARIABLE_HERE}"]
    assert main(["run", "--config", str(config_path), "--no-progress"]) == 0
    capsys.readouterr()
    assert http_server.requests, "the source was fetched"
    assert not any("s3cret" in path for path, _ in http_server.requests)
    published = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "feeds").iterdir() if p.is_file())
    assert "One" in published and "s3cret" not in published


def test_dollar_dollar_is_a_literal_dollar(tmp_path: Path) -> None:
    text = HEAD.replace("category: news}", "category: news, name: 'a $$ b $${X} $${NOPE} ${X} $$${X} $$$${X}'}")
    (source,) = load_config(write(tmp_path, text), env={"X": "x"}).sources
    assert source.name == "a $ b ${X} ${NOPE} x $x $${X}"


# --- slugs (item 11) -------------------------------------------------------------------------------


@pytest.mark.parametrize(("slug", "expected"), [
    ('"news\\n"', r"feeds.yaml:3: categories.'news\\n': unsafe category slug"),
    ("x" * 101, r"feeds.yaml:3: categories.x{101}: category slug of 101 characters: at most 100"),
])
def test_unpublishable_slugs_are_refused_at_check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  slug: str, expected: str) -> None:
    code, err = check(write(tmp_path, HEAD.replace("  news: {title: News}\n", f"  news: {{}}\n  {slug}: {{}}\n")),
                      capsys)
    assert code == 2, err
    assert re.search(expected, err), err


def test_a_slug_of_100_characters_is_published(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slug = "x" * 100
    feed = (Path(__file__).resolve().parents[1] / "config" / "samples" / "tenderlovemaking.xml").absolute()
    config = write(tmp_path, f"output: {{dir: out}}\nstate: state.db\ncategories:\n  {slug}: {{title: T}}\n"
                             f"sources:\n  - {{url: '{feed}', category: {slug}}}\n")
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    capsys.readouterr()
    assert (tmp_path / "out" / f"{slug}.atom").is_file()


def test_import_opml_refuses_an_unsafe_category_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, '<opml version="2.0"><body><outline xmlUrl="https://example.org/f"/></body></opml>', "s.opml")
    code = main(["import-opml", str(tmp_path / "s.opml"), "--config", str(tmp_path / "feeds.yaml"), "--category",
                 "news\n"])
    assert code == 2
    assert "--category 'news\\n': unsafe category slug" in capsys.readouterr().err
    assert not (tmp_path / "feeds.yaml").exists()


# --- source URLs (item 11; issue 19's host spellings) ----------------------------------------------

REFUSED_URLS = [
    ("127.1", "http://127.1/x.xml", r"host '127.1' is not four decimal numbers \(inet_aton reads 127.0.0.1\)"),
    ("octal", "http://0177.0.0.1/x.xml", r"host '0177.0.0.1' is not four decimal numbers \(inet_aton reads 127.0.0.1\)"),
    ("hex", "http://0x7f.0.0.1/x.xml", r"host '0x7f.0.0.1' is not four decimal numbers"),
    ("one number", "http://2130706433/x.xml", r"host '2130706433' is not four decimal numbers"),
    ("five parts", "http://1.2.3.4.5/x.xml", r"host '1.2.3.4.5' is not four decimal numbers"),
    ("octet over 255", "http://256.1.1.1/x.xml", r"host '256.1.1.1' is not four decimal numbers"),
    ("trailing dot", "https://example.org./x.xml", r"host 'example.org.' ends with a dot: write 'example.org'"),
    ("empty label", "https://a..example.org/x", r"host 'a..example.org' is not a valid host name"),
    ("percent in host", "https://%41.org/x", r"host '%41.org' is not a valid host name"),
    ("bad punycode", "https://xn--/x", r"host 'xn--' is not a valid host name"),
    ("space in host", "https://exa mple.org/x", r"URL contains a space or control character"),
    ("bad IPv6", "http://[::1/x", r"malformed URL 'http://\[::1/x': Invalid IPv6 URL"),
    ("port too big", "http://example.org:99999/x", r"malformed URL .*: Port out of range"),
    ("port not a number", "http://example.org:abc/x", r"malformed URL .*: Port could not be cast"),
    ("port 0", "http://example.org:0/x", r"port 0 cannot be connected to"),
    ("no host", "http://user@/x", r"URL has no host: 'http://user@/x'"),
    ("no scheme", "example.org/feed.xml",
     r"'example.org/feed.xml' has no scheme: write 'https://example.org/feed.xml' for a URL, "
     r"or './example.org/feed.xml' for a file"),
    ("scheme-relative", "//example.org/feed.xml", r"'//example.org/feed.xml' has no scheme"),
    ("host and port", "localhost:8080/feed", r"expected an http\(s\) URL or a file path, got 'localhost:8080/feed' "
                                          r"\(did you mean 'http://localhost:8080/feed'\?\)"),
]


@pytest.mark.parametrize(("name", "url", "expected"), REFUSED_URLS, ids=[c[0] for c in REFUSED_URLS])
def test_unfetchable_source_urls_are_refused_by_check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      name: str, url: str, expected: str) -> None:
    code, err = check(write(tmp_path, HEAD.replace("https://example.org/feed.xml", url)), capsys)
    assert code == 2, err
    assert re.search(r"feeds.yaml:4: sources\[0\]\.url: " + expected, err), err


def test_hosts_that_can_be_fetched_still_load(tmp_path: Path) -> None:
    urls = ["http://127.0.0.1:8080/a", "http://[::1]:80/a", "https://例え.jp/a", "https://ex_ample.org/a",
            "https://user:pw@example.org/a", "http://10.0.0.1/a", "https://example.org:/a"]
    text = "categories: {news: {}}\nsources:\n" + "".join(f"  - {{url: '{u}', category: news}}\n" for u in urls)
    assert [s.url for s in load_config(write(tmp_path, text)).sources] == urls


def test_scheme_less_local_paths_still_load(tmp_path: Path) -> None:
    write(tmp_path, "<rss/>", "example.org/feed.xml")  # a folder named like a host, and the file exists
    values = ["samples/feed.xml", "feed.xml", "./example.org/x.xml", "example.org/feed.xml", "/srv/x.xml"]
    text = "categories: {news: {}}\nsources:\n" + "".join(f"  - {{url: '{v}', category: news}}\n" for v in values)
    assert [s.url for s in load_config(write(tmp_path, text)).sources] == [
        str(tmp_path / "samples/feed.xml"), str(tmp_path / "feed.xml"), str(tmp_path / "example.org/x.xml"),
        str(tmp_path / "example.org/feed.xml"), "/srv/x.xml"]


def test_upper_case_schemes_are_fetched_over_http(tmp_path: Path, http_server: RecordingServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    http_server.routes["/a.xml"] = http_server.routes["/b.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                                                         RSS)
    upper, mixed = http_server.url("/a.xml").replace("http:", "HTTP:"), http_server.url("/b.xml").replace("http:", "Http:")
    config = write(tmp_path, f"output: {{dir: out}}\nstate: state.db\ncategories: {{news: {{}}}}\nsources:\n"
                             f"  - {{url: '{upper}', category: news}}\n  - {{url: '{mixed}', category: news}}\n")
    assert [s.url for s in load_config(config).sources] == [http_server.url("/a.xml"), http_server.url("/b.xml")]
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    assert "2 fetched" in capsys.readouterr().out
    assert sorted(path for path, _ in http_server.requests) == ["/a.xml", "/b.xml"]


def test_the_same_url_in_two_spellings_of_its_scheme_is_a_duplicate(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(write(tmp_path, HEAD + '  - {url: "HTTPS://example.org/feed.xml", category: news}\n'), capsys)
    assert code == 2 and re.search(r"feeds.yaml:5: sources\[1\]\.url: duplicate URL", err), err


def test_a_malformed_url_never_reaches_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, "output: {dir: out}\nstate: state.db\nfetch: {http_backend: httpx}\n"
                             + HEAD.replace("https://example.org/feed.xml", "http://0177.0.0.1/x.xml"))
    assert main(["run", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "host '0177.0.0.1' is not four decimal numbers" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.yaml"]  # nothing fetched or written


def test_import_opml_skips_urls_that_check_would_refuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, '<opml version="2.0"><body><outline xmlUrl="http://127.1/x"/><outline xmlUrl="HTTPS://a.org/f"/>'
                    '<outline xmlUrl="https://a.org./g"/></body></opml>', "s.opml")
    config_path = tmp_path / "feeds.yaml"
    assert main(["import-opml", str(tmp_path / "s.opml"), "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "added 1 sources, skipped 2" in out
    assert "skipped: host '127.1' is not four decimal numbers" in out and "skipped: host 'a.org.' ends with" in out
    assert [s.url for s in load_config(config_path).sources] == ["https://a.org/f"]


def test_base_url_scheme_is_case_insensitive(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, HEAD + "output: {base_url: 'HTTPS://news.example.org/feeds'}\n"))
    assert config.output.base_url == "https://news.example.org/feeds/"
