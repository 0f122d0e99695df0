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
