"""A new source's deep backlog is stored uncleaned and cleaned only when a feed shows it (issue 8:
a cold run cleans what max_entries can show, not every item): outputs must be exactly what
cleaning everything up front gives, before and after max_entries grows."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree
from conftest import CORPUS, RecordingServer, Route

from aggregator.config import load_config
from aggregator.pipeline import RunOptions, run

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FEEDS = ["rss-parser/guardian.rss", "rsparser/atp.rss", "rsparser/expertopinionent.atom"]


def _config(tmp_path: Path, name: str, server: RecordingServer, max_entries: int,
            formats: str = "atom, json") -> Path:
    sources = "".join(f"  - {{url: '{server.url('/' + Path(f).name)}', category: c{i}}}\n"
                      for i, f in enumerate(FEEDS))
    categories = "".join(f"  c{i}: {{title: C{i}}}\n" for i in range(len(FEEDS)))
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"output: {{dir: {tmp_path / name / 'out'}, base_url: 'https://n.example/', max_entries: {max_entries}, "
        f"max_per_source: 0, "
        f"formats: [{formats}]}}\nstate: {tmp_path / name / 'state.db'}\nretention: 36500d\n"
        f"categories:\n{categories}sources:\n{sources}", encoding="utf-8")
    return path


def _outputs(tmp_path: Path, name: str) -> dict[str, bytes]:
    out = tmp_path / name / "out"
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".atom", ".json")}


def _waiting(tmp_path: Path, name: str) -> int:
    with sqlite3.connect(tmp_path / name / "state.db") as conn:
        return int(conn.execute("SELECT count(*) FROM entries WHERE needs_cleaning = 1").fetchone()[0])


def _cleaned_links(tmp_path: Path, name: str) -> list[str]:
    with sqlite3.connect(tmp_path / name / "state.db") as conn:
        return [str(link) for (link,) in conn.execute(
            "SELECT b.link FROM entries e JOIN bodies b ON b.entry = e.key WHERE e.needs_cleaning = 0")]


def _shown_links(tmp_path: Path, name: str) -> set[str]:
    """The links of every entry the Atom feeds show."""
    links: set[str] = set()
    for path in (tmp_path / name / "out").glob("*.atom"):
        for link in etree.parse(str(path)).getroot().iter("{http://www.w3.org/2005/Atom}link"):
            if link.get("rel", "alternate") == "alternate" and link.getparent().tag.endswith("entry"):
                links.add(str(link.get("href")))
    return links


def _stored(tmp_path: Path, name: str) -> list[tuple[object, ...]]:
    """Every stored row of every article (the entry and its body), in key order."""
    with sqlite3.connect(tmp_path / name / "state.db") as conn:
        return list(conn.execute("SELECT * FROM entries e JOIN bodies b ON b.entry = e.key ORDER BY e.key"))


@pytest.fixture
def served(http_server: RecordingServer) -> RecordingServer:
    for feed in FEEDS:
        body = (CORPUS / "feeds" / feed).read_bytes()
        http_server.routes["/" + Path(feed).name] = Route(200, {"Content-Type": "application/xml"}, body)
    return http_server


def test_backlog_waits_and_outputs_equal_cleaning_everything(tmp_path: Path, served: RecordingServer) -> None:
    lazy = load_config(_config(tmp_path, "lazy", served, max_entries=5))
    first = run(lazy, RunOptions(force=True), now=NOW)
    stored = first.new
    assert stored == 55 + 100 + 43  # every item is stored, cleaned or not
    # only what the feeds show is stored cleaned: 5 per category, all.atom's newest 5 among them
    cleaned = _cleaned_links(tmp_path, "lazy")
    assert len(cleaned) == len(set(cleaned)) == 15
    assert set(cleaned) == _shown_links(tmp_path, "lazy")
    assert _waiting(tmp_path, "lazy") == stored - 15

    eager = load_config(_config(tmp_path, "eager", served, max_entries=5))
    run(eager, RunOptions(force=True, explain=True), now=NOW)  # --explain cleans every article now
    assert _waiting(tmp_path, "eager") == 0
    assert _outputs(tmp_path, "lazy") == _outputs(tmp_path, "eager")

    # every article shown: the waiting ones are cleaned on the way out and stored cleaned
    run(load_config(_config(tmp_path, "lazy", served, max_entries=0)), RunOptions(force=True), now=NOW)
    assert _waiting(tmp_path, "lazy") == 0
    assert len(_cleaned_links(tmp_path, "lazy")) == stored
    run(load_config(_config(tmp_path, "eager", served, max_entries=0)), RunOptions(force=True), now=NOW)
    assert _outputs(tmp_path, "lazy") == _outputs(tmp_path, "eager")
    for text in _outputs(tmp_path, "lazy").values():
        assert b"<script" not in text and b'src="/' not in text and b"&lt;script" not in text

    # a second run changes nothing: not a stored row, not an output byte
    rows, outputs = _stored(tmp_path, "lazy"), _outputs(tmp_path, "lazy")
    again = run(load_config(_config(tmp_path, "lazy", served, max_entries=0)), RunOptions(force=True), now=NOW)
    assert (again.new, again.updated) == (0, 0)
    assert _stored(tmp_path, "lazy") == rows and _outputs(tmp_path, "lazy") == outputs


def test_a_known_source_is_always_cleaned_in_full(tmp_path: Path, served: RecordingServer) -> None:
    config = load_config(_config(tmp_path, "s", served, max_entries=5))
    run(config, RunOptions(force=True), now=NOW)
    waiting = _waiting(tmp_path, "s")
    assert waiting > 0
    atp = (CORPUS / "feeds" / FEEDS[1]).read_bytes().replace(b"<item>", b"<item><category>x</category>", 1)
    served.routes["/atp.rss"] = Route(200, {"Content-Type": "application/xml"}, atp)
    run(config, RunOptions(force=True), now=NOW)
    assert _waiting(tmp_path, "s") == waiting  # no new backlog from a source the store knows


def test_many_waiting_articles_are_cleaned_by_the_worker_pool(
        tmp_path: Path, served: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import aggregator.pipeline.deferred_cleaning as deferred_cleaning
    import aggregator.pipeline.workers as workers

    monkeypatch.setattr(deferred_cleaning, "WAITING_POOL_THRESHOLD", 10)
    monkeypatch.setattr(deferred_cleaning, "WAITING_CHUNK", 37)  # read, cleaned and stored in chunks
    run(load_config(_config(tmp_path, "pooled", served, max_entries=0)), RunOptions(force=True), now=NOW)
    run(load_config(_config(tmp_path, "eager", served, max_entries=0)), RunOptions(force=True, explain=True),
        now=NOW)
    assert _waiting(tmp_path, "pooled") == _waiting(tmp_path, "eager") == 0
    assert _outputs(tmp_path, "pooled") == _outputs(tmp_path, "eager")
    # the run's own pool (started to parse) cleans the waiting articles too
    monkeypatch.setattr(workers, "POOL_THRESHOLD", 1)
    summary = run(load_config(_config(tmp_path, "run-pool", served, max_entries=0)), RunOptions(force=True), now=NOW)
    assert summary.publish is not None and "all.atom" in summary.publish.written
    assert _outputs(tmp_path, "run-pool") == _outputs(tmp_path, "eager")


def test_articles_known_only_by_their_content_are_cleaned_at_once(tmp_path: Path, http_server: RecordingServer) -> None:
    """Without guid and link, an article is identified by its cleaned content's hash: it cannot wait."""
    items = "".join(f"<item><title>Story {i}</title><description>&lt;p&gt;Body {i}&lt;/p&gt;</description></item>"
                    for i in range(30))
    with_ids = "".join(f"<item><guid>g{i}</guid><title>Other {i}</title><description>x</description></item>"
                       for i in range(30))
    http_server.routes["/a.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                         f"<rss version='2.0'><channel><title>A</title>{items}</channel></rss>".encode())
    http_server.routes["/b.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                         f"<rss version='2.0'><channel><title>B</title>{with_ids}</channel></rss>".encode())
    path = tmp_path / "c.yaml"
    path.write_text(f"output: {{dir: {tmp_path / 'out'}, max_entries: 3}}\nstate: {tmp_path / 'state.db'}\n"
                    f"categories:\n  a: {{title: A}}\n  b: {{title: B}}\nsources:\n"
                    f"  - {{url: '{http_server.url('/a.xml')}', category: a}}\n"
                    f"  - {{url: '{http_server.url('/b.xml')}', category: b}}\n", encoding="utf-8")
    run(load_config(path), RunOptions(force=True), now=NOW)
    with sqlite3.connect(tmp_path / "state.db") as conn:
        waiting = dict(conn.execute("SELECT source_url, sum(needs_cleaning) FROM entries GROUP BY source_url"))
    assert waiting[http_server.url("/a.xml")] == 0
    assert waiting[http_server.url("/b.xml")] == 30 - 3  # those with a guid wait, but what is shown



@pytest.mark.parametrize("formats", ["atom, json", "atom"])
def test_feeds_left_as_they_are_are_not_rewritten_yet_every_output_equals_a_full_publish(
        tmp_path: Path, served: RecordingServer, formats: str) -> None:
    """Publishing re-renders only feeds whose rows changed (the others are read as headlines, for ordering
    and index.html): every file must be byte-for-byte what a publish from scratch gives."""
    config = load_config(_config(tmp_path, "inc", served, max_entries=5, formats=formats))
    run(config, RunOptions(force=True), now=NOW)
    guardian = "/" + Path(FEEDS[0]).name
    body = served.routes[guardian].body
    # an item the feeds show edited in place and one item added: the first category and all.atom change
    shown = etree.fromstring((tmp_path / "inc" / "out" / "c0.atom").read_bytes())
    shown_title = next(str(t.text).encode() for t in shown.iter("{http://www.w3.org/2005/Atom}title")
                       if t.text and str(t.text).encode() in body)
    edited = body.replace(b"<title>" + shown_title, b"<title>Edited: " + shown_title, 1).replace(
        b"<item>", b"<item><title>A new story</title><link>https://n.example/new</link>"
                   b"<guid>https://n.example/new</guid><pubDate>Thu, 26 Nov 2026 11:00:00 GMT</pubDate></item><item>", 1)
    assert edited != body
    served.routes[guardian] = Route(200, {"Content-Type": "application/xml"}, edited)
    second = run(config, RunOptions(force=True), now=NOW)
    assert second.publish is not None
    # the two changed feeds (c0 and all) and the index are written again; the others are left as they are
    json_files = ["all.json", "c0.json"] if "json" in formats else []
    assert sorted(second.publish.written) == sorted(["all.atom", "all.html", "c0.atom", "c0.html", "index.html",
                                                     *json_files])
    out = tmp_path / "inc" / "out"
    incremental = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}
    assert b"A new story" in incremental["index.html"] and b"A new story" in incremental["c0.atom"]
    assert b"Edited: " + shown_title in incremental["c0.atom"]

    Path(str(config.state) + ".published").unlink()  # no marker: every feed read whole and rendered
    for p in out.iterdir():
        p.unlink()
    run(config, RunOptions(force=True), now=NOW)
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()} == incremental