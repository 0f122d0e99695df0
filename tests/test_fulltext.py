"""Full text: real article pages served on loopback, fetched with httpx, main content extracted."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import lxml.html
import pytest
from conftest import RecordingServer, Route

from aggregator.fulltext import MIN_TEXT_CHARS, extract_main_content
from aggregator.text import collapse_whitespace

PAGES = Path(__file__).parent / "data" / "fulltext"


def text_of(fragment: str) -> str:
    return collapse_whitespace(lxml.html.fromstring(fragment).text_content())


# file, original URL, article text that must be found, boilerplate that must not
# (segments from trafilatura's tests/evaldata.json, plus some read off the pages).
CASES = [
    (
        "creativecommons.org.html",
        "https://creativecommons.org/about/",
        ["With a network of", "Our work is to build", "Our work spans a variety"],
        ["Connect with Creative Commons", "Honoring Our Friend", "In this section", "Except where otherwise"],
    ),
    (
        "en.wikipedia.org.tsne.html",
        "https://en.wikipedia.org/wiki/T-distributed_stochastic_neighbor_embedding",
        ["Given a set of high-dimensional objects", "Herein a heavy-tailed Student t-distribution"],
        ["Categories:", "Conditional random field", "Privacy policy", "Personal tools"],
    ),
    (
        "flowfx.de.tmux.html",
        "https://flowfx.de/blog/copy-paste-from-tmux-to-system-clipboard/",
        ["or the first time in many years", "As usual, StackOverflow", "set-option -s set"],
        ["Next post", "All content is licensed", "Powered by Nikola"],
    ),
    (
        "wikimediafoundation.org.turkey.html",
        (
            "https://wikimediafoundation.org/news/2020/01/15/"
            "access-to-wikipedia-restored-in-turkey-after-more-than-two-and-a-half-years/"
        ),
        ["19th birthday", "Constitutional Court of Turkey", "We will keep this statement updated"],
        ["Read further in the pursuit of knowledge", "Stay up-to-date on our work.", "Photo credits"],
    ),
]


def serve(
    server: RecordingServer, name: str, body: bytes, content_type: str = "text/html; charset=utf-8"
) -> str:
    path = "/" + name
    server.routes[path] = Route(200, {"Content-Type": content_type}, body)
    return server.url(path)


@pytest.mark.parametrize(("name", "original_url", "article", "boilerplate"), CASES, ids=[c[0] for c in CASES])
def test_real_page_over_loopback(
    http_server: RecordingServer, name: str, original_url: str, article: list[str], boilerplate: list[str]
) -> None:
    url = serve(http_server, name, (PAGES / name).read_bytes())
    with httpx.Client() as client:
        response = client.get(url)
    assert response.status_code == 200
    fragment = extract_main_content(response.content, original_url)
    assert fragment is not None
    text = text_of(fragment)
    for segment in article:
        assert segment in text, segment
    for segment in boilerplate:
        assert segment not in text, segment
    assert "<script" not in fragment and "<nav" not in fragment and "<html" not in fragment
    assert http_server.requests[0][0] == "/" + name


def test_links_are_absolute_against_the_page_url() -> None:
    # The Wikipedia page links "/wiki/Machine_learning"; the feed needs absolute URLs.
    page = (PAGES / "en.wikipedia.org.tsne.html").read_bytes()
    assert b'href="/wiki/Machine_learning"' in page
    fragment = extract_main_content(page, CASES[1][1])
    assert fragment is not None
    hrefs = lxml.html.fromstring(fragment).xpath("//a/@href")
    assert "https://en.wikipedia.org/wiki/Machine_learning" in hrefs
    assert not [h for h in hrefs if h.startswith("/wiki/")]


def test_str_and_bytes_give_the_same_content() -> None:
    page = (PAGES / "wikimediafoundation.org.turkey.html").read_bytes()
    url = CASES[3][1]
    assert extract_main_content(page.decode("utf-8"), url) == extract_main_content(page, url)


def test_legacy_encoding_from_meta_charset(http_server: RecordingServer) -> None:
    # The same real page re-encoded as windows-1252 and declared so: the text still comes out right.
    page = (PAGES / "wikimediafoundation.org.turkey.html").read_text("utf-8")
    assert 'charset="UTF-8"' in page or "charset=UTF-8" in page
    legacy = page.replace('charset="UTF-8"', 'charset="windows-1252"').replace(
        "charset=UTF-8", "charset=windows-1252"
    )
    body = legacy.encode("cp1252", errors="xmlcharrefreplace")
    url = serve(http_server, "legacy.html", body, "text/html")
    with httpx.Client() as client:
        content = client.get(url).content
    fragment = extract_main_content(content, CASES[3][1])
    assert fragment is not None
    assert "Today, on Wikipedia’s 19th birthday" in text_of(fragment)


@pytest.mark.parametrize(
    "page",
    [
        b"",
        b"   \n",
        b"\x00\x01\x02 not html at all \xff\xfe",
        b"<html><head><title>404</title></head><body><h1>Not Found</h1></body></html>",
        # A real page's navigation only: links, no article text.
        (
            b"<html><body><nav><ul><li><a href='/'>Home</a></li><li><a href='/about'>About</a></li>"
            b"<li><a href='/blog'>Blog</a></li></ul></nav><footer>All content is licensed CC BY</footer>"
            b"</body></html>"
        ),
    ],
    ids=["empty", "blank", "binary", "404", "nav-only"],
)
def test_no_article_gives_none(page: bytes) -> None:
    assert extract_main_content(page, "https://example.org/x") is None


def test_teaser_sized_result_gives_none() -> None:
    # Below MIN_TEXT_CHARS the extractor found a stub, not an article: the caller keeps the feed's teaser.
    sentence = "A short real sentence about tmux and the clipboard. "
    short = f"<html><body><article><p>{sentence * 2}</p></article></body></html>"
    long = f"<html><body><article><p>{sentence * 10}</p></article></body></html>"
    assert len(sentence * 2) < MIN_TEXT_CHARS < len(sentence * 10)
    assert extract_main_content(short, "https://example.org/a") is None
    fragment = extract_main_content(long, "https://example.org/a")
    assert fragment is not None and sentence.strip() in text_of(fragment)


@pytest.mark.parametrize("absent", ["trafilatura", "lxml_html_clean"])
@pytest.mark.parametrize("command", ["check", "run"])
def test_full_text_without_the_extra_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], absent: str,
                                                       command: str) -> None:
    """Without the fulltext extra a full_text source is refused up front (exit 2, naming the extra),
    never a run that keeps teasers with only a warning."""
    from aggregator.cli import main

    monkeypatch.setitem(sys.modules, absent, None)  # what an install without the extra looks like to import
    feed = tmp_path / "feed.xml"
    feed.write_text("<rss version='2.0'><channel><title>t</title></channel></rss>", encoding="utf-8")
    config = tmp_path / "feeds.yaml"
    config.write_text(f"""\
output: {{dir: {tmp_path / 'out'}}}
state: {tmp_path / 'state.db'}
categories:
  news: {{title: News}}
sources:
  - {{url: {feed}, category: news}}
  - {{url: {feed}.2, category: news, full_text: true}}
""", encoding="utf-8")
    assert main([command, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert ":7: sources[1].full_text: full_text needs the fulltext extra" in err
    assert "pip install 'aggregator[fulltext]'" in err and absent in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "state.db").exists()
