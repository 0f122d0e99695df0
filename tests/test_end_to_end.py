"""The whole pipeline over real corpus feeds served on loopback: every item published exactly once."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import feedparser
import pytest
from conftest import CORPUS, RecordingServer, Route
from lxml import etree

from aggregator.cli import main
from aggregator.errors import ParseError
from aggregator.parse import parse_feed

CATEGORIES = ("news", "blogs", "podcasts", "zh", "misc")
ATOM = "{http://www.w3.org/2005/Atom}"


def corpus_documents() -> list[Path]:
    with open(CORPUS / "feeds" / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [CORPUS / "feeds" / row["file"] for row in rows] + sorted((CORPUS / "rsshub").glob("*.xml"))


def content_type(path: Path) -> str:
    return "application/feed+json" if path.suffix == ".json" else "application/xml"


def pick_feeds(count: int) -> list[tuple[Path, list[str]]]:
    """Corpus feeds whose items have distinct links and titles (so no dedup rule may merge two of them),
    with the ids the parser gives their items."""
    chosen: list[tuple[Path, list[str]]] = []
    seen_links: set[str] = set()
    for path in corpus_documents():
        try:
            feed = parse_feed(path.read_bytes(), {"content-type": content_type(path)}, f"src:{path.name}", "",
                              f"http://127.0.0.1/{path.name}")
        except ParseError:
            continue
        articles = [a for a in feed.articles if a.title.strip() or a.content_html.strip()]
        links = [a.link for a in articles if a.link]
        titles = [a.title.strip().lower() for a in articles]
        if not articles or len(set(links)) != len(links) or len(set(titles)) != len(titles):
            continue
        if seen_links.intersection(links) or len(articles) > 60:
            continue
        seen_links.update(links)
        chosen.append((path, [a.id for a in articles]))
        if len(chosen) == count:
            break
    return chosen


def expected_ids(path: Path, url: str) -> list[str]:
    """The ids the parser gives the feed's items when fetched from `url` (relative guids resolve against it)."""
    feed = parse_feed(path.read_bytes(), {"content-type": content_type(path)}, url, "", url)
    return [a.id for a in feed.articles if a.title.strip() or a.content_html.strip()]


def write_config(tmp_path: Path, server: RecordingServer, feeds: list[tuple[Path, list[str]]],
                 extra_sources: str = "", state: str = "") -> Path:
    lines = ["output:", f"  dir: {tmp_path / 'out'}", "  base_url: https://news.example.org/feeds/",
             "  max_entries: 0", "  max_per_source: 0", f"state: '{state or tmp_path / 'state.db'}'",
             "fetch: {per_host: 8, concurrency: 16}",
             "categories:"]
    lines += [f"  {slug}: {{title: {slug.title()}}}" for slug in CATEGORIES]
    lines.append("sources:")
    for i, (path, _ids) in enumerate(feeds):  # noqa: B007 (ids are refreshed in place)
        route = f"/{i}/{path.name}"
        server.routes[route] = Route(200, {"Content-Type": content_type(path)}, path.read_bytes())
        _ids[:] = expected_ids(path, server.url(route))
        lines.append(f"  - {{url: '{server.url(route)}', category: {CATEGORIES[i % len(CATEGORIES)]}}}")
    config = tmp_path / "feeds.yaml"
    config.write_text("\n".join(lines) + "\n" + extra_sources, encoding="utf-8")
    return config


def entry_ids(path: Path) -> list[str]:
    root = etree.parse(str(path)).getroot()
    return [e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[Path, list[str]]], int]:
    feeds = pick_feeds(60)
    assert len(feeds) >= 50, f"only {len(feeds)} usable corpus feeds"
    return feeds, sum(len(ids) for _p, ids in feeds)


def test_every_item_is_published_exactly_once_and_reruns_rewrite_nothing(
        tmp_path: Path, http_server: RecordingServer, farm: tuple[list[tuple[Path, list[str]]], int],
        capsys: pytest.CaptureFixture[str], state_location: str) -> None:
    """With the state in SQLite and in PostgreSQL."""
    feeds, total = farm
    config = write_config(tmp_path, http_server, feeds, state=state_location)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    summary = capsys.readouterr().out
    assert f"{len(feeds)} fetched" in summary and " 0 failed" in summary, summary
    out = tmp_path / "out"
    published: dict[str, list[str]] = {slug: entry_ids(out / f"{slug}.atom") for slug in CATEGORIES}
    for i, (path, ids) in enumerate(feeds):
        slug_ids = published[CATEGORIES[i % len(CATEGORIES)]]
        for article_id in ids:
            assert slug_ids.count(article_id) == 1, (path.name, article_id)
    assert sum(len(v) for v in published.values()) == total
    all_ids = entry_ids(out / "all.atom")
    assert len(all_ids) == total and len(set(all_ids)) == total

    # the output parses back with ids, titles and links intact
    for slug in CATEGORIES:
        parsed = feedparser.parse((out / f"{slug}.atom").read_bytes())
        assert not parsed.bozo, (slug, parsed.get("bozo_exception"))
        assert [e.id for e in parsed.entries] == published[slug]
        assert all(e.get("title") for e in parsed.entries)
        hrefs = [link.href for e in parsed.entries for link in e.get("links", [])]
        assert hrefs and all(h.startswith(("http://", "https://")) for h in hrefs)

    # a second run (forced: every source fetched again) rewrites nothing
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir() if p.is_file()}
    assert main(["run", "--config", str(config), "--no-progress", "--force"]) == 0
    capsys.readouterr()
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir() if p.is_file()}
    assert after == before


def test_a_failing_source_costs_no_one_anything(tmp_path: Path, http_server: RecordingServer,
                                                farm: tuple[list[tuple[Path, list[str]]], int],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    feeds = farm[0][:6]
    broken = ("  - {url: '%s', category: news, name: Broken}\n"
              "  - {url: '%s', category: blogs, name: NotAFeed}\n") % (http_server.url("/500"), http_server.url("/html"))
    http_server.routes["/500"] = Route(500, {"Content-Type": "text/plain"}, b"oops")
    http_server.routes["/html"] = Route(200, {"Content-Type": "text/html"},
                                        b"<html><head><title>x</title></head><body>hello</body></html>")
    config = write_config(tmp_path, http_server, feeds, broken)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "failed: Broken" in captured.out and "NotAFeed" in captured.out
    assert http_server.url("/500") in captured.err and "500" in captured.err
    news = entry_ids(tmp_path / "out" / "news.atom")
    assert set(feeds[0][1]) <= set(news)

    # the first source now fails too: its articles stay published
    first_route = f"/0/{feeds[0][0].name}"
    http_server.routes[first_route] = Route(200, {"Content-Type": "application/xml"}, b"<rss><channel><item>")
    assert main(["run", "--config", str(config), "--no-progress", "--force"]) == 0
    capsys.readouterr()
    assert entry_ids(tmp_path / "out" / "news.atom") == news


def test_default_config_runs_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[1]
    config = tmp_path / "config"
    config.mkdir()
    text = (root / "config" / "feeds.yaml").read_text(encoding="utf-8")
    (config / "feeds.yaml").write_text(text, encoding="utf-8")
    os.symlink(root / "config" / "samples", config / "samples")
    assert main(["run", "--config", str(config / "feeds.yaml"), "--no-progress"]) == 0
    assert "4 fetched" in capsys.readouterr().out
    out = tmp_path / "feeds"
    for slug in ("news", "tech", "podcasts", "chinese", "all"):
        assert entry_ids(out / f"{slug}.atom"), slug
    assert (out / "index.html").is_file() and (out / "feeds.opml").is_file()
