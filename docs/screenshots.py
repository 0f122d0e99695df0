"""Re-draw the README's screenshots of a category page and the status page (docs/*.png).

Run from the repository: .venv/bin/python docs/screenshots.py (needs /usr/bin/chromium). Thirty days of
runs, one every two days, are simulated over a loopback server that serves real corpus feeds a few
more items at a time (so the charts have a history), one of them failing from day 20 on; their images
are served from the same loopback server as generated SVGs, so the pages show what a reader would see
without touching the internet. Nothing here is a test: tests/test_publish_chromium.py is.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from aggregator.cli import main  # noqa: E402

CORPUS = ROOT / "tests" / "corpus" / "feeds"
FEEDS = {  # path in the corpus: (category, name)
    "feedjira/TechCrunch.xml": ("tech", "TechCrunch"),
    "rsparser/russcox.atom": ("tech", "research!rsc"),
    "rsparser/DaringFireball.atom": ("tech", "Daring Fireball"),
    "rsparser/dcrainmaker.xml": ("sport", "DC Rainmaker"),
    "node-feedparser/wapowellness.xml": ("sport", "Wellness"),
}
FAILING = "node-feedparser/wapowellness.xml"
START = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
DAYS, STEP = 30, 2
# an image's address: any src= (raw or escaped inside content, relative ones too), or an absolute
# URL of an image file (media:thumbnail, media:content, enclosures)
SRC = re.compile(rb"(src=(?:\"|&quot;|&#34;))([^\"&<>\s]+)", re.IGNORECASE)
IMAGE = re.compile(rb"https?://[^\s\"'<>&]+?\.(?:jpe?g|png|gif|webp)", re.IGNORECASE)


class Site:
    """What the loopback server serves on the simulated day `day`."""

    day = 0
    port = 0

    @classmethod
    def feed(cls, name: str) -> tuple[int, bytes]:
        if name == FAILING and cls.day >= 20:
            return 503, b"down for maintenance"
        root = etree.fromstring((CORPUS / name).read_bytes().lstrip())
        items = [e for e in root.iter() if etree.QName(e).localname in ("item", "entry")]
        keep = max(1, round(len(items) * (cls.day + STEP) / (DAYS + STEP)))
        for item in items[: len(items) - keep]:  # newest first in these feeds: the later days get them
            item.getparent().remove(item)
        body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
        body = SRC.sub(lambda m: m.group(1) + cls.picture_url(m.group(2)), body)
        return 200, IMAGE.sub(lambda m: cls.picture_url(m.group(0)), body)

    @classmethod
    def picture_url(cls, url: bytes) -> bytes:
        return f"http://127.0.0.1:{cls.port}/img/{_digest(url)}.svg".encode()


def _digest(url: bytes) -> str:
    return hashlib.sha256(url).hexdigest()[:12]


def picture(name: str) -> bytes:
    """A landscape of two colours picked from the name: a stand-in photo."""
    h = hashlib.sha256(name.encode()).digest()
    sky, land = (f"hsl({h[0] * 360 // 256},55%,{55 + h[1] % 20}%)", f"hsl({h[2] * 360 // 256},45%,{30 + h[3] % 20}%)")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 160 120"><rect width="160" height="120" fill="{sky}"/>'
            f'<circle cx="{40 + h[4] % 80}" cy="35" r="14" fill="#fff6" /><path d="M0 90 Q40 {50 + h[5] % 30} 80 85 T160 80 V120 H0Z" '
            f'fill="{land}"/></svg>').encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        path = self.path.lstrip("/")
        if path.startswith("img/"):
            status, body, kind = 200, picture(path), "image/svg+xml"
        else:
            (status, body), kind = Site.feed(path), "application/xml"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def chromium(profile: Path, *args: str) -> None:
    subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--no-first-run", "--disable-sync", "--disable-component-update", f"--user-data-dir={profile}",
                    *args], check=True, capture_output=True, timeout=120)


def main_() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Site.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        sources = "\n".join(f"  - {{url: 'http://127.0.0.1:{Site.port}/{path}', category: {category}, name: '{name}'}}"
                            for path, (category, name) in FEEDS.items())
        (work / "feeds.yaml").write_text(
            "output: {dir: out, formats: [atom, rss, json], title: My news}\nstate: state.db\n"
            "categories:\n  tech: {title: Tech, subtitle: Software and the companies that make it}\n"
            "  sport: {title: Sport and health}\nsources:\n" + sources + "\n", encoding="utf-8")
        config = str(work / "feeds.yaml")
        for day in range(0, DAYS, STEP):
            Site.day = day
            main(["run", "-c", config, "--force", "-q", "--no-progress"], clock=lambda d=day: START + timedelta(days=d))
        now = START + timedelta(days=DAYS - STEP, hours=3)
        main(["sources", "-c", config, "--html", str(work / "status.html")], clock=lambda: now)
        docs = ROOT / "docs"
        chromium(work / "profile", f"--screenshot={docs / 'category-page.png'}", "--window-size=900,1000",
                 (work / "out" / "tech.html").as_uri())
        chromium(work / "profile", f"--screenshot={docs / 'category-page-phone.png'}", "--window-size=390,844",
                 (work / "out" / "sport.html").as_uri())
        chromium(work / "profile", f"--screenshot={docs / 'status-page.png'}", "--window-size=900,1000",
                 (work / "status.html").as_uri())
    server.shutdown()


if __name__ == "__main__":
    main_()
