"""Fair feeds (output.max_per_source) and removed categories (ended feeds), issue 22 items 2 and 8:
real corpus feeds served on loopback, driven through the CLI with a clock."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from conftest import CORPUS, RecordingServer, Route, yaml_config
from lxml import etree

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.config.schema import config_schema
from aggregator.errors import ConfigError
from aggregator.model import OutputConfig
from aggregator.parse import parse_feed
from aggregator.publish.ended import ENDED_KEEP_S
from aggregator.publish.selection import select_articles

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
CHATTY = "feeds/rodel-reader/v2ex.xml"  # 50 entries of one forum, all newer than the others
CHATTY_TITLE = feedparser.parse((CORPUS / CHATTY).read_bytes()).feed.title  # atom:source names it so
CALM = ["rsshub/36kr-news.xml", "rsshub/3dm-news.xml", "rsshub/ithome-it.xml", "rsshub/sina-finance.xml"]


def serve(server: RecordingServer, names: list[str]) -> dict[str, str]:
    """Each corpus file served on loopback; name -> its URL."""
    for name in names:
        server.routes["/" + name] = Route(200, {"Content-Type": "application/xml"}, (CORPUS / name).read_bytes())
    return {name: server.url("/" + name) for name in names}


def write_config(folder: Path, output: str, categories: dict[str, list[str]], urls: dict[str, str]) -> Path:
    lines = [f"output: {{dir: out, base_url: 'https://news.example.org/feeds/', {output}}}", "state: state.db",
             "categories:"] + [f"  {slug}: {{title: 'Title of {slug}'}}" for slug in categories] + ["sources:"]
    lines += [f"  - {{url: '{urls[name]}', category: {slug}, name: '{name}'}}"
              for slug, names in categories.items() for name in names]
    return yaml_config(folder, lines)


def run_at(config: Path, when: datetime) -> int:
    return main(["run", "--config", str(config), "--no-progress", "--force"], clock=lambda: when)


def run_said(config: Path, when: datetime, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert run_at(config, when) == 0
    return capsys.readouterr().out


def entries(path: Path) -> list[tuple[str, str]]:
    """(id, source title) of each entry of an Atom file, in order."""
    root = etree.parse(str(path)).getroot()
    return [(e.findtext(f"{ATOM}id") or "", e.findtext(f"{ATOM}source/{ATOM}title") or "")
            for e in root.iter(f"{ATOM}entry")]


def per_source(path: Path) -> Counter[str]:
    return Counter(source for _id, source in entries(path))


# --- item 2: max_per_source -------------------------------------------------------------------


def test_a_chatty_source_gets_its_newest_n_and_the_others_fill_the_feed(
        tmp_path: Path, http_server: RecordingServer) -> None:
    urls = serve(http_server, [CHATTY, *CALM])
    config = write_config(tmp_path, "max_entries: 20, max_per_source: 5, formats: [atom, rss, json]",
                          {"tech": [CHATTY, *CALM]}, urls)
    assert run_at(config, NOW) == 0
    out = tmp_path / "out"
    counts = per_source(out / "tech.atom")
    # the forum's 50 entries are the newest 50: without the cap the feed is all forum (and the store's
    # first window of rows holds nothing else), with it every source is in
    assert sum(counts.values()) == 20 and max(counts.values()) == 5 and len(counts) == 5
    chatty_ids = [i for i, _source in entries(out / "tech.atom")][:5]
    newest = sorted(feedparser.parse((CORPUS / CHATTY).read_bytes()).entries,
                    key=lambda e: (e.updated_parsed, e.published_parsed), reverse=True)[:5]
    assert chatty_ids == [e.id for e in newest]  # its newest five, newest first
    # every format and the index page show the same selection
    rss = etree.parse(str(out / "tech.rss")).getroot()
    assert [i.findtext("guid") for i in rss.iter("item")] == [i for i, _s in entries(out / "tech.atom")]
    feed = json.loads((out / "tech.json").read_text(encoding="utf-8"))
    assert [i["id"] for i in feed["items"]] == [i for i, _s in entries(out / "tech.atom")]
    assert per_source(out / "all.atom") == counts
    assert "20 entries" in (out / "index.html").read_text(encoding="utf-8")

    # changing only the cap re-renders every format (the publish keys hold the output config)
    config.write_text(config.read_text(encoding="utf-8").replace("max_per_source: 5", "max_per_source: 0"),
                      encoding="utf-8")
    http_server.routes.clear()  # nothing new fetched: only the config changed
    assert run_at(config, NOW + timedelta(minutes=1)) == 0
    assert per_source(out / "tech.atom") == {CHATTY_TITLE: 20}
    assert len(json.loads((out / "tech.json").read_text(encoding="utf-8"))["items"]) == 20
    assert all(source == CHATTY_TITLE for _i, source in entries(out / "all.atom"))


def test_the_default_cap_is_ten_and_hexo_posts_are_not_capped(tmp_path: Path, http_server: RecordingServer) -> None:
    urls = serve(http_server, [CHATTY, *CALM])
    config = write_config(tmp_path, "hexo: {dir: posts}", {"tech": [CHATTY, *CALM]}, urls)
    assert load_config(config).output.max_per_source == 10
    assert run_at(config, NOW) == 0
    counts = per_source(tmp_path / "out" / "tech.atom")
    assert counts[CHATTY_TITLE] == 10 and sum(counts.values()) == 10 + 27  # the calm feeds' 27 items all fit in 50
    # a post is a file per article, no window to share: the forum's 50 newest (max_entries) all have one
    posts = list((tmp_path / "posts").glob("*.md"))
    assert sum("v2ex" in p.read_text(encoding="utf-8") for p in posts) == 50
    assert len(posts) == 50  # the newest 50 of the category, as without the cap


def test_select_articles_says_which_limit_left_each_article_out() -> None:
    chatty = parse_feed((CORPUS / CHATTY).read_bytes(), {}, "https://forum.example/feed", "forum").articles
    calm = parse_feed((CORPUS / CALM[0]).read_bytes(), {}, "https://news.example/feed", "news").articles
    candidates = [*chatty, *calm]
    now = max(a.updated or a.published for a in candidates if a.updated or a.published)  # type: ignore[type-var]
    oldest_calm = min(calm, key=lambda a: a.published)  # type: ignore[arg-type,return-value]
    output = OutputConfig(max_entries=8, max_per_source=3, max_age=int((now - oldest_calm.published).total_seconds()) - 1)  # type: ignore[operator]
    selection = select_articles(candidates, output, now)
    assert [a.source_url for a in selection.published].count("https://forum.example/feed") == 3
    assert len(selection.published) == 6  # 3 + 3: the cap, then the limit (not reached)
    cut = {a.id: limit for a, limit in selection.cut}
    assert cut[oldest_calm.id] == "max_age"
    assert Counter(cut.values()) == {"max_age": 1, "max_per_source": len(candidates) - 7}
    assert {a.id for a in selection.published} | set(cut) == {a.id for a in candidates}
    tight = select_articles(candidates, OutputConfig(max_entries=4, max_per_source=3), None)
    assert Counter(limit for _a, limit in tight.cut) == {"max_per_source": len(candidates) - 6, "max_entries": 2}
    assert [a.id for a in tight.published] == [a.id for a in select_articles(candidates, OutputConfig(
        max_entries=4, max_per_source=3), None).published]  # pure: same input, same answer


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "output.max_per_source: expected a non-negative integer, got -1"),
    ("'ten'", "output.max_per_source: expected an integer, got"),
    ("2.5", "output.max_per_source: expected an integer, got"),
])
def test_a_bad_max_per_source_is_a_clear_config_error(tmp_path: Path, value: str, message: str) -> None:
    config = yaml_config(tmp_path, [f"output: {{max_per_source: {value}}}", "categories: {a: {title: A}}",
                                    "sources: [{url: 'https://example.org/feed', category: a}]"])
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert message in str(caught.value)
    assert config_schema()["properties"]["output"]["properties"]["max_per_source"]["minimum"] == 0


# --- item 8: removed categories ------------------------------------------------------------------


def test_a_removed_category_says_it_ended_then_its_files_go(tmp_path: Path, http_server: RecordingServer,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    urls = serve(http_server, [CHATTY, *CALM])
    categories = {"forum": [CHATTY], "news": CALM}
    config = write_config(tmp_path, "formats: [atom, rss, json]", categories, urls)
    assert run_at(config, NOW) == 0
    out = tmp_path / "out"
    (out / "notes.atom").write_text("mine", encoding="utf-8")  # files aggregator did not write stay
    (out / "forum.txt").write_text("mine too", encoding="utf-8")

    broken = config.read_text(encoding="utf-8").replace("categories:", "categories: [")
    config.write_text(broken, encoding="utf-8")
    assert run_at(config, NOW + timedelta(hours=1)) == 2  # a config that fails to load ends nothing
    assert len(entries(out / "forum.atom")) == 10

    config = write_config(tmp_path, "formats: [atom, rss, json]", {"news": CALM}, urls)
    ended_at = NOW + timedelta(hours=2)
    assert run_at(config, ended_at) == 0
    [(entry_id, _source)] = entries(out / "forum.atom")
    assert entry_id == "https://news.example.org/feeds/forum.atom#ended"
    parsed = feedparser.parse((out / "forum.atom").read_bytes())
    assert parsed.feed.title == "Title of forum" and parsed.entries[0].title == "This feed has ended"
    assert "https://news.example.org/feeds/" in parsed.entries[0].summary
    assert feedparser.parse((out / "forum.rss").read_bytes()).entries[0].title == "This feed has ended"
    assert json.loads((out / "forum.json").read_text(encoding="utf-8"))["items"][0]["id"] == entry_id
    assert "This feed has ended" in (out / "forum.html").read_text(encoding="utf-8")  # its page says so too
    assert "forum" not in (out / "index.html").read_text(encoding="utf-8")
    assert "forum" not in (out / "feeds.opml").read_text(encoding="utf-8")
    assert CHATTY_TITLE not in per_source(out / "all.atom")
    ended_bytes = (out / "forum.atom").read_bytes()

    assert run_at(config, ended_at + timedelta(days=29)) == 0  # the same bytes run after run
    assert (out / "forum.atom").read_bytes() == ended_bytes
    said = run_said(config, ended_at + timedelta(seconds=ENDED_KEEP_S), capsys)
    assert "removed (ended 30 days ago): forum.atom, forum.rss, forum.json, forum.html" in said
    assert not [p for p in ("forum.atom", "forum.rss", "forum.json", "forum.html") if (out / p).exists()]
    assert (out / "notes.atom").read_text(encoding="utf-8") == "mine"
    assert (out / "forum.txt").read_text(encoding="utf-8") == "mine too"
    assert {p.name for p in out.iterdir()} == {f"{slug}.{ext}" for slug in ("news", "all")
                                               for ext in ("atom", "rss", "json", "html")} | {
        "index.html", "feeds.opml", "notes.atom", "forum.txt"}


def test_a_category_whose_last_source_went_ends_and_comes_back_whole(
        tmp_path: Path, http_server: RecordingServer) -> None:
    urls = serve(http_server, [CHATTY, *CALM])
    assert run_at(write_config(tmp_path, "", {"forum": [CHATTY], "news": CALM}, urls), NOW) == 0
    out = tmp_path / "out"
    before = (out / "forum.atom").read_bytes()
    config = write_config(tmp_path, "", {"forum": [], "news": CALM}, urls)  # the category stays, empty
    assert run_at(config, NOW + timedelta(days=1)) == 0
    assert [i for i, _s in entries(out / "forum.atom")] == ["https://news.example.org/feeds/forum.atom#ended"]
    # put back within the grace period: the feed is whole again (the state kept its articles)
    assert run_at(write_config(tmp_path, "", {"forum": [CHATTY], "news": CALM}, urls),
                  NOW + timedelta(days=2)) == 0
    assert (out / "forum.atom").read_bytes() == before
    assert run_at(write_config(tmp_path, "", {"forum": [CHATTY], "news": CALM}, urls),
                  NOW + timedelta(days=40)) == 0
    assert (out / "forum.atom").read_bytes() == before  # no longer ended: nothing is removed


def test_a_category_whose_sources_all_fail_keeps_its_feed(tmp_path: Path, http_server: RecordingServer) -> None:
    urls = serve(http_server, [CHATTY, *CALM])
    config = write_config(tmp_path, "", {"forum": [CHATTY], "news": CALM}, urls)
    assert run_at(config, NOW) == 0
    before = (tmp_path / "out" / "forum.atom").read_bytes()
    http_server.routes["/" + CHATTY] = Route(500, {}, b"down")
    run_at(config, NOW + timedelta(days=40))
    assert (tmp_path / "out" / "forum.atom").read_bytes() == before


def test_the_stores_capped_window_is_what_select_articles_publishes(
        tmp_path: Path, http_server: RecordingServer) -> None:
    """The store reads a window of rows, leaving a source out once it has its cap; the result must be
    exactly select_articles over every article (a copy of the forum under a second URL makes every
    one of its links a cross-source copy the store drops, so a source can fall short of its cap)."""
    from aggregator.pipeline.publishing import feed_specs
    from aggregator.store import Store

    names = [CHATTY, *CALM, "rsshub/gamersky-today.xml", "rsshub/idaily-today.xml", "feeds/feedjira/CRE.xml"]
    urls = serve(http_server, names)
    urls["copy"] = http_server.url("/copy/v2ex.xml")
    http_server.routes["/copy/v2ex.xml"] = Route(200, {}, (CORPUS / CHATTY).read_bytes())
    config = write_config(tmp_path, "", {"tech": [*names, "copy"]}, urls)
    assert run_at(config, NOW) == 0
    loaded = load_config(config)
    [(_spec, sources), _all] = feed_specs(loaded)
    with Store.open(loaded.state) as store:
        everything = store.articles_for(sources, now=NOW)
        # one of the two copies of each forum link is kept (the same run saw both: the URL decides)
        assert len([a for a in everything if a.source_url in (urls["copy"], urls[CHATTY])]) == 50
        for limit in (1, 5, 20, 50, 0):
            for cap in (0, 1, 3, 10, 60):
                window = [r.id for r in store.feed_rows(sources, limit=limit, per_source=cap, now=NOW)]
                expected = select_articles(everything, OutputConfig(max_entries=limit, max_per_source=cap), None)
                assert window == [a.id for a in expected.published], (limit, cap)


def test_an_ended_feed_is_not_written_into_another_output_folder(
        tmp_path: Path, http_server: RecordingServer) -> None:
    urls = serve(http_server, [CHATTY, *CALM])
    assert run_at(write_config(tmp_path, "", {"forum": [CHATTY], "news": CALM}, urls), NOW) == 0
    moved = write_config(tmp_path, "", {"news": CALM}, urls)
    moved.write_text(moved.read_text(encoding="utf-8").replace("dir: out", "dir: elsewhere"), encoding="utf-8")
    assert run_at(moved, NOW + timedelta(days=1)) == 0
    assert not (tmp_path / "elsewhere" / "forum.atom").exists()
    assert len(entries(tmp_path / "out" / "forum.atom")) == 10  # the old folder is left as it was


def test_a_marker_naming_other_files_removes_nothing(tmp_path: Path, http_server: RecordingServer) -> None:
    """The marker beside the state is a file like any other: an ended record that names anything but
    the slug's own feed files (edited, or corrupt) is ignored, never acted on."""
    urls = serve(http_server, CALM)
    config = write_config(tmp_path, "", {"news": CALM}, urls)
    assert run_at(config, NOW) == 0
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    (tmp_path / "out" / "notes.txt").write_text("mine", encoding="utf-8")
    marker = tmp_path / "state.db.published"
    head, body = marker.read_text(encoding="utf-8").splitlines()
    records = {"notes": {"title": "x", "since": "2000-01-01T00:00:00+00:00", "files": ["notes.txt"]},
               "up": {"title": "x", "since": "2000-01-01T00:00:00+00:00", "files": ["../notes.txt"]},
               "../out": {"title": "x", "since": "2000-01-01T00:00:00+00:00", "files": ["../out.atom"]},
               "news": {"title": "x", "since": "2000-01-01T00:00:00+00:00", "files": ["index.html"]}}
    marker.write_text(json.dumps({**json.loads(head), "due": "2000-01-01T00:00:00+00:00"}) + "\n"
                      + json.dumps({**json.loads(body), "ended": records}) + "\n", encoding="utf-8")
    assert run_at(config, NOW + timedelta(days=1)) == 0
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "out" / "notes.txt").exists()
    assert (tmp_path / "out" / "index.html").exists() and len(entries(tmp_path / "out" / "news.atom")) == 27


def test_retention_keeps_what_uncapped_hexo_posts_show(tmp_path: Path, http_server: RecordingServer) -> None:
    """Retention keeps the articles a feed shows, whatever their age; with Hexo posts those include
    what the cap leaves out of the feeds, or the first pruning would take a busy source's posts away."""
    urls = serve(http_server, [CHATTY, *CALM])
    config = write_config(tmp_path, "max_per_source: 3, hexo: {dir: posts, prune: true}", {"tech": [CHATTY, *CALM]},
                          urls)
    config.write_text(config.read_text(encoding="utf-8") + "retention: 7d\n", encoding="utf-8")
    assert run_at(config, NOW) == 0  # every corpus article is older than 7 days; the run prunes once
    assert len(list((tmp_path / "posts").glob("*.md"))) == 50
    with sqlite3.connect(tmp_path / "state.db") as db:
        kept = dict(db.execute("SELECT source_url, count(*) FROM entries WHERE status = 'published' "
                               "GROUP BY source_url").fetchall())
    # the forum's 50 (its posts) and the feed's 3 of each calm source; the calm sources' others are pruned
    assert kept == {urls[CHATTY]: 50, **{urls[name]: 3 for name in CALM}}
