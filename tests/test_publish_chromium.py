"""index.html in a real browser: headless Chromium (Debian: chromium) dumps the DOM and takes screenshots.
It needs the Debian package; .ci/run installs it, and where it is missing the test reports a skip."""

from __future__ import annotations

import struct
import subprocess
import zlib
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from test_publish import CATEGORIES, OUTPUT, feeds_of, make_articles

from aggregator.publish import publish_outputs

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs chromium chromium-driver (Debian); .ci/run installs it")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM.exists(), "headless Chromium missing: apt-get install chromium chromium-driver"
    profile = tmp_path / "profile"
    result = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """Width, height and number of distinct raw scanline bytes (a blank page has ~2)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    return width, height, len(set(zlib.decompress(b"".join(chunks))))


def test_index_renders_in_headless_chromium(tmp_path: Path) -> None:
    out = tmp_path / "out"
    publish_outputs(
        replace(OUTPUT, formats=["atom", "rss", "json"]), out, feeds_of(make_articles()), CATEGORIES
    )
    url = (out / "index.html").as_uri()
    dom = _Dom()
    dom.feed(chromium(tmp_path, "--dump-dom", url))
    assert [a.get("id") for tag, a in dom.tags if tag == "section"] == [
        "feed-finance",
        "feed-tech",
        "feed-all",
    ]
    alternates = [a for tag, a in dom.tags if tag == "link" and a.get("rel") == "alternate"]
    assert len(alternates) == 9
    assert not [tag for tag, _ in dom.tags if tag == "script"]
    for width, height in ((390, 844), (1280, 800)):  # a phone and a laptop
        shot = tmp_path / f"index-{width}.png"
        chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},{height}", url)
        size_w, size_h, colours = png_size_and_colours(shot)
        assert (size_w, size_h) == (width, height)
        assert colours > 20  # text, borders and buttons drawn, not a blank page


# --- the pages people read and the status page (issue 22) --------------------------------------

HOSTILE_TITLE = "<script>document.title='pwned'</script>Rates rise"
HOSTILE_SUMMARY = "<img src=x onerror=\"document.title='pwned'\"> the central bank moved"


def top_left_pixel(path: Path) -> tuple[int, int, int]:
    """The first pixel: its bytes are the same whatever the scanline's PNG filter (nothing left or above)."""
    data = path.read_bytes()
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        if data[offset + 4 : offset + 8] == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    return raw[1], raw[2], raw[3]


def shoot(tmp_path: Path, url: str, name: str, width: int, height: int) -> Path:
    shot = tmp_path / name
    chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},{height}", url)
    size_w, size_h, colours = png_size_and_colours(shot)
    assert (size_w, size_h) == (width, height)
    assert colours > 20  # text drawn, not a blank page
    assert top_left_pixel(shot) == (0xFB, 0xFB, 0xFD)  # base.css applied: the CSP lets our one stylesheet in
    return shot


def test_category_page_renders_and_no_feed_script_runs(tmp_path: Path) -> None:
    articles = make_articles()
    hostile = replace(articles[0], id="tag:agg.example.net,2024:evil", title=HOSTILE_TITLE,
                      summary=HOSTILE_SUMMARY, link="javascript:document.title='pwned'")
    out = tmp_path / "out"
    publish_outputs(replace(OUTPUT, formats=["atom", "rss", "json"]), out, feeds_of([*articles, hostile]), CATEGORIES)
    url = (out / "finance.html").as_uri()
    dump = chromium(tmp_path, "--dump-dom", url)
    dom = _Dom()
    dom.feed(dump)
    assert "<title>金融 · Example news</title>" in dump  # no script set document.title
    assert "pwned'</script>Rates rise" in dump.replace("&lt;", "<").replace("&gt;", ">")  # shown as text
    assert "国家移民管理局印发" in dump and "the central bank moved" in dump
    assert not [tag for tag, _ in dom.tags if tag in ("script", "iframe")]
    assert not [a for tag, a in dom.tags if any(name.startswith("on") for name in a)]
    assert len([a for tag, a in dom.tags if tag == "link" and a.get("rel") == "alternate"]) == 3
    for width, height in ((390, 844), (1280, 800)):  # a phone and a laptop
        shoot(tmp_path, url, f"finance-{width}.png", width, height)


def test_status_page_renders_and_no_script_runs(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from aggregator.status_page import render_status_page, source_statuses

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    rows = [{"name": "<script>document.title='pwned'</script>Wire", "url": "https://a.example/feed",
             "category": "news", "status": 500, "last_success": "", "failures": 2, "items": 0,
             "last_error": "HTTP 500 <img src=x onerror=\"document.title='pwned'\">", "next_due": "",
             "moved_to": "", "flags": ["failing"]},
            {"name": "Daily", "url": "https://b.example/feed", "category": "news", "status": 200,
             "last_success": now.isoformat(), "failures": 0, "items": 12, "last_error": "",
             "next_due": now.isoformat(), "moved_to": "", "flags": []}]
    today = (now.date() - datetime(1970, 1, 1).date()).days
    statuses = source_statuses(rows, {"https://b.example/feed": {today - d: d % 5 for d in range(30)}}, {}, now, 86400)
    page = tmp_path / "status.html"
    page.write_bytes(render_status_page(statuses, now))
    dump = chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = _Dom()
    dom.feed(dump)
    assert "<title>Sources</title>" in dump
    assert "Daily" in dump and "Wire" in dump and "HTTP 500" in dump
    assert not [tag for tag, _ in dom.tags if tag in ("script", "img")]
    assert len([tag for tag, _ in dom.tags if tag == "rect"]) == 60
    shoot(tmp_path, page.as_uri(), "status.png", 1000, 700)
