"""Every hostile document through the whole pipeline, over loopback, under a memory limit.

Each document replaces a source that earlier served good items; the run must finish, reject or
repair each as its manifest says, keep the earlier items, publish the good source, fetch nothing
on the XXE listener, and leave every output well-formed.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from conftest import CORPUS, RecordingServer, Route, _RecordingHandler

HOSTILE = CORPUS / "hostile" / "xml"
MANIFEST = json.loads((HOSTILE / "manifest.json").read_text(encoding="utf-8"))
CASES = [case for case in MANIFEST["files"] if (HOSTILE / case["file"]).exists()]
ATOM = "{http://www.w3.org/2005/Atom}"
MEMORY_LIMIT = 3 << 30  # address space per process: the entity bombs would need far more


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", name.lower())


def good_feed(name: str) -> bytes:
    items = "".join(f"<item><guid>https://earlier.example/{name}/{i}</guid><title>earlier {name} {i}</title>"
                    f"<link>https://earlier.example/{name}/{i}</link><description>fine</description>"
                    f"<pubDate>Mon, 0{i + 1} Jan 2024 10:00:00 GMT</pubDate></item>" for i in range(2))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>'
            f"<link>https://earlier.example/</link>{items}</channel></rss>").encode()


def content_type(name: str) -> str:
    return {"json": "application/feed+json", "html": "text/html"}.get(name.rsplit(".", 1)[-1], "application/xml")


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.fixture
def xxe_listener() -> RecordingServer:
    """A listener on the port the XXE documents point at: it must receive nothing."""
    server = RecordingServer.__new__(RecordingServer)
    ThreadingHTTPServer.__init__(server, ("127.0.0.1", MANIFEST["loopback_port"]), _RecordingHandler)
    server.routes, server.requests, server.lock = {}, [], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_hostile_documents_through_the_whole_pipeline(tmp_path: Path, http_server: RecordingServer,
                                                      xxe_listener: RecordingServer) -> None:
    lines = ["output:", f"  dir: {tmp_path / 'out'}", "  base_url: https://news.example.org/feeds/",
             "  max_entries: 0", "  max_per_source: 0", "  formats: [atom, rss, json]", f"state: {tmp_path / 'state.db'}",
             "fetch: {per_host: 16, concurrency: 16, retries: 0}", "categories:", "  good: {title: Good}"]
    lines += [f"  {slug(case['file'])}: {{title: '{case['file']}'}}" for case in CASES]
    lines.append("sources:")
    good = CORPUS / "feeds" / "feedjira" / "TenderLovemaking.xml"
    http_server.routes["/good.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, good.read_bytes())
    lines.append(f"  - {{url: '{http_server.url('/good.xml')}', category: good, name: good}}")
    for case in CASES:
        route = f"/h/{case['file']}"
        http_server.routes[route] = Route(200, {"Content-Type": "application/rss+xml"}, good_feed(slug(case["file"])))
        lines.append(f"  - {{url: '{http_server.url(route)}', category: {slug(case['file'])}, name: '{case['file']}'}}")
    config = tmp_path / "feeds.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "aggregator.cli", "run", "--config", str(config), "--no-progress", "--force"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr

    for case in CASES:  # now every source turns hostile
        http_server.routes[f"/h/{case['file']}"] = Route(200, {"Content-Type": content_type(case["file"])},
                                                         (HOSTILE / case["file"]).read_bytes())
    second = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                            preexec_fn=limit_memory)
    assert second.returncode == 0, second.stderr[-3000:]
    report = second.stdout + second.stderr
    assert "Traceback" not in report
    assert xxe_listener.requests == []

    out = tmp_path / "out"
    everything = b"".join(p.read_bytes() for p in out.iterdir() if p.is_file())
    assert b"root:x:0:0" not in everything and b"lollollol" not in everything
    for path in sorted(out.glob("*.atom")):
        root = etree.parse(str(path)).getroot()  # well-formed
        ids = [e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")]
        assert len(ids) == len(set(ids)), path.name
        assert not feedparser.parse(path.read_bytes()).bozo, path.name
    assert len(etree.parse(str(out / "good.atom")).getroot().findall(f"{ATOM}entry")) >= 10

    failures = {line.split("failed: ", 1)[1].split(" (", 1)[0] for line in second.stdout.splitlines()
                if line.strip().startswith("failed: ")}
    for case in CASES:
        name, expect = case["file"], case["expect"]
        titles = [e.findtext(f"{ATOM}title") or "" for e in
                  etree.parse(str(out / f"{slug(name)}.atom")).getroot().iter(f"{ATOM}entry")]
        earlier = [t for t in titles if t.startswith("earlier ")]
        assert len(earlier) == 2, (name, "earlier items lost")
        if expect == "reject_source":
            assert name in failures, (name, "should be rejected")
            assert re.search(rf"source '{re.escape(name)}' \(http://127\.0\.0\.1:\d+/h/{re.escape(name)}\): \S",
                             second.stderr), name
        elif expect in ("accept", "clean", "skip_item"):
            assert name not in failures, (name, "should be accepted")
            assert len(titles) > len(earlier), (name, "no new item published")
        else:  # reject_or_recover: refused, or only complete items published
            assert name in failures or len(titles) >= len(earlier), name
