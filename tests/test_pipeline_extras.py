"""Issue 9 end to end over loopback: filters, full text for teaser feeds, time-zone correction."""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import lxml.html
import pytest
from conftest import CORPUS, RecordingServer, Route
from lxml import etree

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.pipeline import RunOptions, run
from aggregator.publish import PublishReport

ATOM = "{http://www.w3.org/2005/Atom}"
PAGES = Path(__file__).parent / "data" / "fulltext"


def rss(items: list[tuple[str, str, str, str]], title: str = "Test feed") -> bytes:
    """items: (guid, title, link, description HTML) ; pubDate omitted unless in the guid tuple."""
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>{link}</link>"
        f"<description><![CDATA[{d}]]></description></item>" for g, t, link, d in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>https://example.org/</link>{body}</channel></rss>").encode()


def config_file(tmp_path: Path, sources: str, extra: str = "") -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(f"""\
output: {{dir: {tmp_path / 'out'}, base_url: 'https://news.example.org/feeds/', max_entries: 0}}
state: {tmp_path / 'state.db'}
categories:
  news: {{title: News}}
{extra}sources:
{sources}""", encoding="utf-8")
    return path


def entries(path: Path) -> list[etree._Element]:
    return list(etree.parse(str(path)).getroot().iter(f"{ATOM}entry"))


def titles(path: Path) -> list[str]:
    return [e.findtext(f"{ATOM}title") or "" for e in entries(path)]


def test_filters_drop_and_keep_with_counts(tmp_path: Path, http_server: RecordingServer,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    items = [(f"https://example.org/{i}", title, f"https://example.org/{i}", f"<p>{body}</p>")
             for i, (title, body) in enumerate([
                 ("Python 3.14 released", "A long story about Python."),
                 ("Sponsored: buy our stuff", "Python python python."),
                 ("Rust news", "Memory safety."),
                 ("Gardening tips", "Tomatoes."),
             ])]
    http_server.routes["/f.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(items))
    sources = f"""\
  - url: {http_server.url('/f.xml')}
    category: news
    filters:
      - keep: {{content: "(?i)python|memory"}}
"""
    config = config_file(tmp_path, sources, extra="filters:\n  - drop: {title: '^Sponsored'}\n")
    assert main(["run", "--config", str(config), "--no-progress", "--dry-run", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "filtered by drop title /^Sponsored/" in out and "'Sponsored: buy our stuff'" in out
    assert "no keep-rule matched" in out and "'Gardening tips'" in out
    assert "news.atom new: Python 3.14 released" in out
    assert not (tmp_path / "out").exists()  # dry run wrote nothing

    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "filtered: " in out and "1 by drop title /^Sponsored/" in out
    assert sorted(titles(tmp_path / "out" / "news.atom")) == ["Python 3.14 released", "Rust news"]


def test_full_text_replaces_teasers_and_retries_failures_a_bounded_number_of_times(
        tmp_path: Path, http_server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    page = (PAGES / "flowfx.de.tmux.html").read_bytes()
    http_server.routes["/post/tmux"] = Route(200, {"Content-Type": "text/html; charset=utf-8"}, page)
    items = [
        ("a1", "Copy paste from tmux", http_server.url("/post/tmux"), "<p>Teaser only…</p>"),
        ("a2", "Missing page", http_server.url("/post/missing"), "<p>Second teaser stays.</p>"),
        ("a3", "Late page", http_server.url("/post/late"), "<p>Third teaser, replaced later.</p>"),
    ]
    http_server.routes["/teasers.xml"] = Route(200, {"Content-Type": "application/rss+xml", "ETag": '"v1"'},
                                               rss(items))
    sources = f"  - {{url: '{http_server.url('/teasers.xml')}', category: news, full_text: true}}\n"
    config = config_file(tmp_path, sources)

    def contents() -> dict[str, str]:
        return {e.findtext(f"{ATOM}title") or "": e.findtext(f"{ATOM}content") or ""
                for e in entries(tmp_path / "out" / "news.atom")}

    def page_requests() -> dict[str, int]:
        paths = [path for path, _h in http_server.requests if path.startswith("/post/")]
        return {name: paths.count("/post/" + name) for name in ("tmux", "missing", "late")}

    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "full text of " + http_server.url("/post/missing") in err and "attempt 1 of 3" in err
    by_title = contents()
    text = " ".join(lxml.html.fromstring(by_title["Copy paste from tmux"]).text_content().split())
    assert "As usual, StackOverflow" in text and "set-option -s set" in text
    assert "Teaser only" not in by_title["Copy paste from tmux"]
    assert "<script" not in by_title["Copy paste from tmux"]
    assert "Second teaser stays." in by_title["Missing page"]
    assert "Third teaser" in by_title["Late page"]
    assert page_requests() == {"tmux": 1, "missing": 1, "late": 1}

    # the late page appears; the feed itself answers 304 (its ETag is unchanged) and is read again anyway
    http_server.routes["/post/late"] = Route(200, {"Content-Type": "text/html; charset=utf-8"},
                                             (PAGES / "wikimediafoundation.org.turkey.html").read_bytes())
    assert main(["run", "--config", str(config), "--no-progress", "--force"]) == 0
    err = capsys.readouterr().err
    assert "attempt 2 of 3" in err
    assert page_requests() == {"tmux": 1, "missing": 2, "late": 2}  # a page once extracted is never fetched again
    by_title = contents()
    assert "19th birthday" in by_title["Late page"] and "Third teaser" not in by_title["Late page"]
    assert "Second teaser stays." in by_title["Missing page"]

    assert main(["run", "--config", str(config), "--no-progress", "--force"]) == 0
    assert "gave up after 3 attempts" in capsys.readouterr().err
    assert main(["run", "--config", str(config), "--no-progress", "--force"]) == 0
    capsys.readouterr()
    assert page_requests() == {"tmux": 1, "missing": 3, "late": 2}  # bounded: three attempts in all
    by_title = contents()
    assert "19th birthday" in by_title["Late page"]  # reading the feed again kept the full texts it had
    assert "set-option -s set" in lxml.html.fromstring(by_title["Copy paste from tmux"]).text_content()


def shifted_feed(real: list[tuple[str, datetime]], shift: timedelta, host: str = "zh.example") -> bytes:
    """A Chinese feed whose stated dates are local time (UTC+8) labelled GMT when shift is 8 h."""
    body = "".join(
        f"<item><guid>https://{host}/{i}</guid><title>{title}</title><link>https://{host}/{i}</link>"
        f"<pubDate>{format_datetime(when + shift, usegmt=True)}</pubDate></item>"
        for i, (title, when) in enumerate(real))
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>中文</title>'
            f"<link>https://zh.example/</link>{body}</channel></rss>").encode()


def chinese_titles() -> list[str]:
    root = etree.parse(str(CORPUS / "rsshub" / "sina-finance.xml")).getroot()
    found = [t.text or "" for t in root.iter("title")][1:]
    root = etree.parse(str(CORPUS / "rsshub" / "36kr-news.xml")).getroot()
    return found + [t.text or "" for t in root.iter("title")][1:]


def test_time_zone_offset_is_detected_and_corrected(tmp_path: Path, http_server: RecordingServer) -> None:
    names = chinese_titles()
    assert len(names) >= 12
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    sources = (f"  - {{url: '{http_server.url('/plus8.xml')}', category: news, name: plus8}}\n"
               f"  - {{url: '{http_server.url('/right.xml')}', category: news, name: right}}\n")
    config = load_config(config_file(tmp_path, sources))
    real: list[tuple[str, datetime]] = []
    for step in range(10):  # a run every 30 minutes; a fresh article appears 5 minutes before each run
        now = start + step * timedelta(minutes=30)
        real.append((names[step], now - timedelta(minutes=5)))
        http_server.routes["/plus8.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                                 shifted_feed(real, timedelta(hours=8)))
        http_server.routes["/right.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                                 shifted_feed([(f"ok {t}", w) for t, w in real], timedelta(0), "right.example"))
        summary = run(config, RunOptions(force=True), now=now)
        assert not summary.failures
        # the samples went to the state (the detection below works from them), not kept on the reports
        assert all(not report.date_state for report in summary.sources)

    published = {e.findtext(f"{ATOM}title"): datetime.fromisoformat(e.findtext(f"{ATOM}published") or "")
                 for e in entries(tmp_path / "out" / "news.atom")}
    for title, when in real:
        assert published[f"ok {title}"] == when  # a correct source is never touched
    # once enough samples agree, the +8 h source's dates are its true times; before that, the
    # future-dated ones were pinned to their first-seen time: never in the future, never "now" at render
    for step, (title, when) in enumerate(real):
        seen = start + step * timedelta(minutes=30)
        assert when <= published[title] <= seen, (step, published[title])
    assert [published[t] for t, _w in real[6:]] == [w for _t, w in real[6:]]


def test_sources_reports_the_offset(tmp_path: Path, http_server: RecordingServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    test_time_zone_offset_is_detected_and_corrected(tmp_path, http_server)
    capsys.readouterr()
    assert main(["sources", "--config", str(tmp_path / "feeds.yaml"), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["plus8"]["tz_offset_s"] == 8 * 3600 and "tz-corrected" in rows["plus8"]["flags"]
    assert rows["right"]["tz_offset_s"] == 0 and "tz-corrected" not in rows["right"]["flags"]


def test_prune_keeps_what_feeds_show_and_pruned_items_never_return(
        tmp_path: Path, http_server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    old = [(f"https://old.example/{i}", f"Old story {i}", f"https://old.example/{i}", "<p>old</p>") for i in range(5)]
    body = rss(old).replace(b"</title><link>", b"</title><link>")
    dated = body.replace(b"<description>", b"<pubDate>Mon, 01 Jan 2024 10:00:00 GMT</pubDate><description>")
    http_server.routes["/old.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, dated)
    config = config_file(tmp_path, f"  - {{url: '{http_server.url('/old.xml')}', category: news}}\n")
    config.write_text(config.read_text(encoding="utf-8").replace("max_entries: 0", "max_entries: 2"), encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    shown = titles(tmp_path / "out" / "news.atom")
    assert len(shown) == 2
    capsys.readouterr()
    with sqlite3.connect(tmp_path / "state.db") as db:  # the run pruned (daily) the 3 bodies no feed shows
        assert db.execute("SELECT count(*) FROM bodies").fetchone() == (2,)
    assert main(["prune", "--config", str(config), "--older-than", "30d"]) == 0
    assert "pruned 0 rows" in capsys.readouterr().out
    assert main(["run", "--config", str(config), "--no-progress", "--force"]) == 0
    assert "0 new" in capsys.readouterr().out  # pruned articles are still recognised
    assert titles(tmp_path / "out" / "news.atom") == shown


def test_unchanged_items_are_not_stored_again(tmp_path: Path, http_server: RecordingServer) -> None:
    def stored() -> dict[str, tuple[object, ...]]:
        """Per stored article: its hashes, when it last changed, and the cleaned title and content."""
        with sqlite3.connect(tmp_path / "state.db") as conn:
            return {str(row[0]): row[1:] for row in conn.execute(
                "SELECT e.id, e.raw_hash, e.content_hash, e.meta_hash, e.updated, b.title, b.content_html"
                " FROM entries e JOIN bodies b ON b.entry = e.key")}

    items = [(f"https://s.example/{i}", f"Story {i}", f"https://s.example/{i}", f"<p>body {i}</p>") for i in range(4)]
    http_server.routes["/s.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(items))
    config = load_config(config_file(tmp_path, f"  - {{url: '{http_server.url('/s.xml')}', category: news}}\n"))
    first = run(config, RunOptions(force=True))
    before = stored()
    assert first.new == len(before) == 4
    second = run(config, RunOptions(force=True))
    assert (second.new, second.updated) == (0, 0) and stored() == before  # nothing stored again
    items[2] = (items[2][0], "Story 2 (corrected)", items[2][2], items[2][3])
    http_server.routes["/s.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(items))
    third = run(config, RunOptions(force=True))
    after = stored()
    assert (third.new, third.updated) == (0, 1)
    changed = [key for key in before if after[key] != before[key]]
    assert [after[key][4] for key in changed] == ["Story 2 (corrected)"]  # only that article, cleaned anew
    assert "Story 2 (corrected)" in titles(tmp_path / "out" / "news.atom")


def test_publishing_is_skipped_only_while_nothing_changed(tmp_path: Path, http_server: RecordingServer) -> None:
    items = [(f"https://p.example/{i}", f"Post {i}", f"https://p.example/{i}", "<p>x</p>") for i in range(3)]
    http_server.routes["/p.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(items))
    path = config_file(tmp_path, f"  - {{url: '{http_server.url('/p.xml')}', category: news}}\n")
    first = run(load_config(path), RunOptions(force=True))
    assert first.publish is not None and "news.atom" in first.publish.written
    quiet = run(load_config(path), RunOptions(force=True))
    assert quiet.publish is not None and (quiet.publish.written, quiet.publish.unchanged) == ((), ())
    # a config change that shapes the output (a new title) renders again
    path.write_text(path.read_text(encoding="utf-8").replace("title: News", "title: Nachrichten"), encoding="utf-8")
    retitled = run(load_config(path), RunOptions(force=True))
    assert retitled.publish is not None and "news.atom" in retitled.publish.written
    # so does a missing output, and a new article
    for name in ("all.atom", "news.atom", "index.html"):
        (tmp_path / "out" / name).unlink()
        again = run(load_config(path), RunOptions(force=True)).publish
        assert again is not None and name in again.written, name
    items.append(("https://p.example/9", "Post 9", "https://p.example/9", "<p>y</p>"))
    http_server.routes["/p.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(items))
    fresh = run(load_config(path), RunOptions(force=True))
    assert fresh.publish is not None and "news.atom" in fresh.publish.written
    assert "Post 9" in titles(tmp_path / "out" / "news.atom")


def test_only_feeds_whose_articles_changed_are_rendered(tmp_path: Path, http_server: RecordingServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import aggregator.publish as publish

    rendered: list[str] = []
    real_atom = publish._RENDERERS["atom"]

    def counting_atom(spec, *args, **kwargs):  # type: ignore[no-untyped-def]
        rendered.append(spec.slug)
        return real_atom(spec, *args, **kwargs)

    monkeypatch.setitem(publish._RENDERERS, "atom", counting_atom)
    a = [(f"https://a.example/{i}", f"A {i}", f"https://a.example/{i}", "<p>a</p>") for i in range(2)]
    b = [(f"https://b.example/{i}", f"B {i}", f"https://b.example/{i}", "<p>b</p>") for i in range(2)]
    http_server.routes["/a.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(a))
    http_server.routes["/b.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(b))
    path = config_file(tmp_path, f"  - {{url: '{http_server.url('/a.xml')}', category: news}}\n"
                                 f"  - {{url: '{http_server.url('/b.xml')}', category: other}}\n",
                       extra="  other: {title: Other}\n")
    run(load_config(path), RunOptions(force=True))
    assert sorted(rendered) == ["all", "news", "other"]
    rendered.clear()
    b.append(("https://b.example/9", "B 9", "https://b.example/9", "<p>new</p>"))
    http_server.routes["/b.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(b))
    summary = run(load_config(path), RunOptions(force=True))
    assert sorted(rendered) == ["all", "other"]  # news.atom's articles did not change
    assert summary.publish is not None and "news.atom" in summary.publish.unchanged
    assert "B 9" in titles(tmp_path / "out" / "other.atom")


def test_a_bug_while_handling_one_source_costs_only_that_source(
        tmp_path: Path, http_server: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import aggregator.timezones as timezones

    real = timezones.correct_dates

    def broken_for_one(articles, *args, **kwargs):  # type: ignore[no-untyped-def]
        if articles and "bad.example" in articles[0].link:
            raise RuntimeError("simulated bug")
        return real(articles, *args, **kwargs)

    monkeypatch.setattr(timezones, "correct_dates", broken_for_one)
    good = [("https://good.example/1", "Good one", "https://good.example/1", "<p>g</p>")]
    bad = [("https://bad.example/1", "Bad one", "https://bad.example/1", "<p>b</p>")]
    http_server.routes["/good.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(good))
    http_server.routes["/bad.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(bad))
    path = config_file(tmp_path, f"  - {{url: '{http_server.url('/good.xml')}', category: news}}\n"
                                 f"  - {{url: '{http_server.url('/bad.xml')}', category: news}}\n")
    summary = run(load_config(path), RunOptions(force=True))
    (failure,) = summary.failures
    assert failure.source.url.endswith("/bad.xml") and "simulated bug" in failure.error
    assert titles(tmp_path / "out" / "news.atom") == ["Good one"]


@pytest.mark.parametrize("changed", [True, False])
def test_an_unusable_state_stops_the_run_with_its_own_error(
        tmp_path: Path, http_server: RecordingServer, monkeypatch: pytest.MonkeyPatch, changed: bool) -> None:
    """A StateError while storing stops the whole run as a StateError (the CLI's clear message), both
    for a parsed source and for one that answered with nothing new (handled inside the fetch tasks)."""
    import aggregator.pipeline.ingest as ingest
    from aggregator.errors import StateError
    from aggregator.store import Store

    items = [("https://s.example/1", "One", "https://s.example/1", "<p>1</p>")]
    http_server.routes["/s.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(items))
    path = config_file(tmp_path, f"  - {{url: '{http_server.url('/s.xml')}', category: news}}\n")
    run(load_config(path), RunOptions(force=True))
    if changed:
        items.append(("https://s.example/2", "Two", "https://s.example/2", "<p>2</p>"))
        http_server.routes["/s.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(items))

    def full(self: Store, states: object, due_at: object = None) -> None:
        raise StateError(f"state {self.path}: database or disk is full")

    monkeypatch.setattr(ingest, "STATE_BATCH", 1)
    monkeypatch.setattr(Store, "save_source_states", full)
    with pytest.raises(StateError, match="disk is full"):
        run(load_config(path), RunOptions(force=True))


def test_fetching_waits_while_fetched_bodies_wait_for_the_workers(
        tmp_path: Path, http_server: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backpressure: with room for one waiting body, bodies never pile up (a cold start of thousands of
    sources used to hold every body until the workers got to it), and every source is still done."""
    import aggregator.pipeline.ingest as ingest

    most = [0]
    real_arrived = ingest.Backlog.arrived

    def arrived(self: ingest.Backlog, source: object, size: int) -> None:
        real_arrived(self, source, size)  # type: ignore[arg-type]
        most[0] = max(most[0], self.waiting)

    monkeypatch.setattr(ingest, "MAX_WAITING_BYTES", 1)
    monkeypatch.setattr(ingest.Backlog, "arrived", arrived)
    lines = ""
    for n in range(12):
        items = [(f"https://b{n}.example/{i}", f"Story {n}-{i}", f"https://b{n}.example/{i}", "<p>x</p>" * 50)
                 for i in range(20)]
        http_server.routes[f"/{n}.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(items))
        lines += f"  - {{url: '{http_server.url(f'/{n}.xml')}', category: news}}\n"
    path = config_file(tmp_path, lines, extra="fetch: {concurrency: 4, per_host: 4}\n")
    summary = run(load_config(path), RunOptions(force=True))
    assert not summary.failures and sum(r.new for r in summary.sources) == 12 * 20
    body = len(zlib.compress(rss(items), 1))
    assert 0 < most[0] <= body  # one body waits at a time (every fetch after it held back)


def test_hashes_made_in_the_worker_are_the_stores_own_and_ignore_dates() -> None:
    """The store trusts hashes computed where the article was cleaned: they must be exactly its own,
    also after the run corrects the articles' dates (time-zone fixes happen in the run's process)."""
    import zlib
    from dataclasses import replace

    from aggregator.model import CleanConfig, Source
    from aggregator.store.dedup import article_hashes
    from aggregator.worker_jobs import BodyJob, process_body

    body = (CORPUS / "feeds" / "rss-parser" / "guardian.rss").read_bytes()
    source = Source(url="https://example.org/feed", categories=("news",))
    processed = process_body(BodyJob(zlib.compress(body), {}, source, source.url, CleanConfig(), (),
                                     datetime(2026, 11, 26, tzinfo=UTC)))
    assert processed.feed is not None and len(processed.hashes) == len(processed.feed.articles) > 40
    for article in processed.feed.articles:
        shifted = replace(article, published=article.published and article.published - timedelta(hours=8),
                          updated=datetime(2020, 1, 1, tzinfo=UTC))
        assert processed.hashes[article.fingerprint] == article_hashes(shifted)


def _own_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def test_workers_yield_the_cpu_to_the_run() -> None:
    """The run's own process is the critical path: its workers run nicer."""
    from aggregator.pipeline.workers import POOL_THRESHOLD, make_executor
    from aggregator.worker_jobs import WORKER_NICENESS

    expected = min(_own_priority() + WORKER_NICENESS, 19)
    executor = make_executor(POOL_THRESHOLD, 1)
    assert executor is not None
    with executor:
        assert executor.submit(_own_priority).result(timeout=60) == expected
    assert _own_priority() < expected  # the run itself is left as it was


def test_a_feed_without_entries_follows_a_config_change(tmp_path: Path, http_server: RecordingServer) -> None:
    """Feeds are rendered again only when their digest changes: an empty feed's digest must still
    hold the config, or a renamed category would keep its old title."""
    http_server.routes["/a.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                         rss([("https://a.example/1", "A 1", "https://a.example/1", "<p>a</p>")]))
    http_server.routes["/quiet.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss([]))
    source = (f"  - {{url: '{http_server.url('/a.xml')}', category: news}}\n"
              f"  - {{url: '{http_server.url('/quiet.xml')}', category: empty}}\n")  # a source without items
    run(load_config(config_file(tmp_path, source, extra="  empty: {title: Quiet corner}\n")), RunOptions(force=True))
    assert b"Quiet corner" in (tmp_path / "out" / "empty.atom").read_bytes()
    second = run(load_config(config_file(tmp_path, source, extra="  empty: {title: Loud corner}\n")),
                 RunOptions(force=True))
    assert second.publish is not None and "empty.atom" in second.publish.written
    assert b"Loud corner" in (tmp_path / "out" / "empty.atom").read_bytes()


def test_the_marker_key_is_one_line_and_a_one_line_marker_still_reads(
        tmp_path: Path, http_server: RecordingServer) -> None:
    """Whether to publish at all is decided from the marker's first line (its key alone): a no-op run
    never parses the per-feed records. A marker written as one line (before the split) still reads:
    a feed whose rows did not change is still not rendered again."""
    a = [("https://a.example/1", "A 1", "https://a.example/1", "<p>a</p>")]
    b = [("https://b.example/1", "B 1", "https://b.example/1", "<p>b</p>")]
    http_server.routes["/a.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(a))
    http_server.routes["/b.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(b))
    path = config_file(tmp_path, f"  - {{url: '{http_server.url('/a.xml')}', category: news}}\n"
                                 f"  - {{url: '{http_server.url('/b.xml')}', category: other}}\n",
                       extra="  other: {title: Other}\n")
    config = load_config(path)
    run(config, RunOptions(force=True))
    marker = Path(str(config.state) + ".published")
    head, body = marker.read_text(encoding="utf-8").splitlines()
    assert list(json.loads(head)) == ["key"] and set(json.loads(body)) == {"feeds", "titles", "ended", "folder"}
    marker.write_text(json.dumps({**json.loads(head), **json.loads(body)}), encoding="utf-8")
    assert run(config, RunOptions(force=True)).publish == PublishReport((), (), ())  # nothing changed

    a.append(("https://a.example/2", "A 2", "https://a.example/2", "<p>a2</p>"))
    http_server.routes["/a.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, rss(a))
    other = (tmp_path / "out" / "other.atom").stat()
    report = run(config, RunOptions(force=True)).publish
    assert report is not None and "news.atom" in report.written and "all.atom" in report.written
    assert "other.atom" in report.unchanged
    left = (tmp_path / "out" / "other.atom").stat()  # not written again: the same file, untouched
    assert (left.st_ino, left.st_mtime_ns) == (other.st_ino, other.st_mtime_ns)
