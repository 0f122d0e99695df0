"""Issue 22 item 6: `aggregator why URL_OR_ID` says what happened to an article. Real corpus feeds on a real
loopback server, the real CLI (cli.main with a clock), a real SQLite file: each verdict is reached by running,
then asked about."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, RecordingServer, Route, yaml_config
from lxml import etree

from aggregator.cli import main
from aggregator.model import OutputConfig
from aggregator.why import Standing, cut_reason

KATIE = (CORPUS / "feeds" / "rsparser" / "KatieFloyd.rss").read_bytes()  # 20 items, 12 Jul - 25 Aug 2016
GUARDIAN = (CORPUS / "feeds" / "rss-parser" / "guardian.rss").read_bytes()  # 55 items, Dec 2017 - Jan 2018
RSS = {"Content-Type": "application/rss+xml"}
ATOM = "{http://www.w3.org/2005/Atom}"

Why = Callable[..., tuple[int, Any]]


def _items(feed: bytes) -> list[etree._Element]:
    return etree.fromstring(feed).findall("channel/item")


def _text(item: etree._Element, tag: str) -> str:
    return (item.findtext(tag) or "").strip()


def _newest(feed: bytes) -> etree._Element:
    return max(_items(feed), key=lambda item: parsedate_to_datetime(_text(item, "pubDate")))


def _reshaped(feed: bytes, keep: slice, extra: list[etree._Element] = ()) -> bytes:  # type: ignore[assignment]
    """The real feed with only the items in `keep` (and `extra` ones first)."""
    root = etree.fromstring(feed)
    channel = root.find("channel")
    items = channel.findall("item")
    for item in items:
        channel.remove(item)
    for item in [*extra, *items[keep]]:
        channel.append(item)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _asker(config: Path, capsys: pytest.CaptureFixture[str], at: datetime) -> Why:
    def why(query: str, *, as_json: bool = True, when: datetime = at) -> tuple[int, Any]:
        capsys.readouterr()
        code = main(["why", query, "-c", str(config), *(["--json"] if as_json else [])], clock=lambda: when)
        out = capsys.readouterr().out
        return code, json.loads(out) if as_json else out
    return why


def _run(config: Path, at: datetime, *extra: str) -> None:
    assert main(["run", "-c", str(config), "--no-progress", "-q", *extra], clock=lambda: at) == 0


# --- one run over three real feeds: published, filtered, cross-source duplicate, beyond the limits ----------

NOW = datetime(2018, 2, 1, tzinfo=UTC)
AGE_DAYS = (NOW - datetime(2016, 7, 25, tzinfo=UTC)).days  # Katie's items before 25 Jul 2016 are too old


@pytest.fixture
def three_feeds(tmp_path: Path, http_server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> Why:
    http_server.routes["/katie.rss"] = Route(200, RSS, KATIE)
    http_server.routes["/guardian.rss"] = Route(200, RSS, GUARDIAN)
    http_server.routes["/mirror.rss"] = Route(404, {}, b"")  # the same stories from a second source, later
    config = yaml_config(tmp_path, [
        f"output: {{dir: out, max_entries: 5, max_per_source: 0, max_age: {AGE_DAYS}d}}",
        "state: state/state.db", "retention: 1000d",  # runs prune daily: nothing here is that old
        "categories: {tech: {title: Tech}, news: {title: News}}",
        "sources:",
        f"  - {{url: '{http_server.url('/katie.rss')}', category: tech, name: Katie,",
        "      filters: [{drop: {title: '^Sponsor:'}}]}",
        f"  - {{url: '{http_server.url('/guardian.rss')}', category: news}}",
        f"  - {{url: '{http_server.url('/mirror.rss')}', category: news}}",
    ])
    _run(config, NOW - timedelta(hours=1))
    http_server.routes["/mirror.rss"] = Route(200, RSS, GUARDIAN)
    _run(config, NOW, "--force")
    return _asker(config, capsys, NOW)


def test_published_lists_the_feeds_and_files_that_show_it(three_feeds: Why, tmp_path: Path) -> None:
    newest = _items(KATIE)[0]  # 25 Aug 2016: first in tech.atom; all.atom's 5 are newer Guardian stories
    code, answer = three_feeds(_text(newest, "link"))
    assert code == 0
    assert answer["verdict"] == "published"
    found = answer["findings"][0]
    assert (found["title"], found["source"]["name"]) == (_text(newest, "title"), "Katie")
    feeds = {f["feed"]: f for f in found["feeds"]}
    assert feeds["tech"]["position"] == 1  # the feed and its page to read show it
    assert feeds["tech"]["paths"] == [str(tmp_path / "out" / name) for name in ("tech.atom", "tech.html")]
    assert (feeds["all"]["position"], feeds["all"]["reason"]) == (None, "max_entries")
    # what the files hold agrees
    tech = etree.parse(str(tmp_path / "out" / "tech.atom")).getroot()
    assert tech.find(f"{ATOM}entry/{ATOM}id").text == found["id"]
    all_ids = [e.text for e in etree.parse(str(tmp_path / "out" / "all.atom")).getroot().iter(f"{ATOM}id")]
    assert found["id"] not in all_ids
    code, text = three_feeds(_text(newest, "link"), as_json=False)
    assert text.splitlines()[0] == f"published in tech: {_text(newest, 'title')!r}"
    assert f"tech: entry 1 of 5 in {tmp_path / 'out' / 'tech.atom'}" in text


def test_by_guid_and_by_published_atom_id(three_feeds: Why, tmp_path: Path) -> None:
    tech = etree.parse(str(tmp_path / "out" / "tech.atom")).getroot()
    entry = tech.findall(f"{ATOM}entry")[1]
    atom_id, title = entry.findtext(f"{ATOM}id"), entry.findtext(f"{ATOM}title")
    assert atom_id.startswith("urn:uuid:")  # Katie's guids are not IRIs: the id we publish is derived
    item = next(i for i in _items(KATIE) if _text(i, "title") == title)
    for query in (atom_id, _text(item, "guid")):
        code, answer = three_feeds(query)
        assert (code, answer["verdict"]) == (0, "published"), query
        found = answer["findings"][0]
        assert (found["id"], found["guid"], found["title"]) == (atom_id, _text(item, "guid"), title)
        assert [f["position"] for f in found["feeds"] if f["feed"] == "tech"] == [2]


def test_a_link_is_matched_the_way_the_store_matches_links(three_feeds: Why) -> None:
    link = _text(_newest(GUARDIAN), "link")  # https://www.theguardian.com/...
    variant = link.replace("https://", "http://").replace("www.theguardian.com", "WWW.theguardian.com")
    code, answer = three_feeds(f"{variant}/?utm_source=feed&utm_medium=rss")
    assert code == 0
    assert [f["link"] for f in answer["findings"]] == [link, link]  # both sources' copies


def test_filtered_names_the_rule(three_feeds: Why) -> None:
    sponsor = next(i for i in _items(KATIE) if _text(i, "title").startswith("Sponsor:"))
    code, answer = three_feeds(_text(sponsor, "link"))
    assert (code, answer["verdict"]) == (0, "filtered")
    found = answer["findings"][0]
    assert found["rule"].startswith("drop title /^Sponsor:/")  # and where the rule is written
    assert (found["title"], found["guid"]) == (_text(sponsor, "title"), _text(sponsor, "guid"))
    code, text = three_feeds(_text(sponsor, "guid"), as_json=False)
    assert code == 0 and text.startswith("filtered: dropped by drop title /^Sponsor:/")


def test_cross_source_duplicate_names_the_copy_shown(three_feeds: Why, http_server: RecordingServer,
                                                     tmp_path: Path) -> None:
    link = _text(_newest(GUARDIAN), "link")
    code, answer = three_feeds(link)
    assert (code, answer["verdict"]) == (0, "published")
    shown, copy_ = answer["findings"]
    assert shown["source"]["url"] == http_server.url("/guardian.rss")  # seen there first
    assert (copy_["verdict"], copy_["source"]["url"]) == ("duplicate", http_server.url("/mirror.rss"))
    assert copy_["duplicate_of"]["id"] == shown["id"] == link
    # asked by the id of the copy (derived: the guid was taken), the copy alone answers
    code, answer = three_feeds(copy_["id"])
    assert (code, answer["verdict"]) == (0, "duplicate")
    assert answer["findings"][0]["duplicate_of"] == {"id": link, "source": http_server.url("/guardian.rss"),
                                                    "title": shown["title"]}
    # the second source leaves the config: its copy is still stored, and said to be so
    config = tmp_path / "feeds.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("/mirror.rss", "/gone.rss"), encoding="utf-8")
    code, answer = three_feeds(copy_["id"])
    assert (code, answer["verdict"]) == (0, "source_removed")


def test_beyond_max_entries_and_max_age(three_feeds: Why) -> None:
    by_title = {_text(i, "title"): i for i in _items(KATIE)}
    code, answer = three_feeds(_text(by_title["ScreenCastsOnline Monthly Magazine: Review of Eero"], "link"))
    assert (code, answer["verdict"]) == (0, "beyond_max_entries")  # 1 Aug 2016: 11th newest in tech
    assert {f["feed"]: f["reason"] for f in answer["findings"][0]["feeds"]} == {"tech": "max_entries",
                                                                               "all": "max_entries"}
    code, answer = three_feeds(_text(by_title["Katie's Week in Review: July 17, 2016"], "guid"))
    assert (code, answer["verdict"]) == (0, "beyond_max_age")
    assert "older than output.max_age" in answer["findings"][0]["text"]
    # time is an input: two months past max_age every Guardian story is too old as well, in every feed
    code, answer = three_feeds(_text(_newest(GUARDIAN), "link"), when=NOW + timedelta(days=AGE_DAYS + 60))
    assert {f["verdict"] for f in answer["findings"]} == {"beyond_max_age", "duplicate"}


def test_never_seen_exits_1(three_feeds: Why, tmp_path: Path) -> None:
    code, answer = three_feeds("https://example.org/never-published")
    assert (code, answer) == (1, {"query": "https://example.org/never-published", "verdict": "never_seen",
                                  "findings": []})
    code, text = three_feeds("no-such-guid", as_json=False)
    assert code == 1 and text.startswith("never seen: ")


def test_beyond_max_per_source_agrees_with_the_files(three_feeds: Why, tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("max_per_source: 0,", "max_per_source: 2,"),
                      encoding="utf-8")
    _run(config, NOW)  # the cap changed: every feed is published again
    third, second = _items(KATIE)[2], _items(KATIE)[1]
    tech = (tmp_path / "out" / "tech.atom").read_text(encoding="utf-8")
    assert _text(second, "link") in tech and _text(third, "link") not in tech
    code, answer = three_feeds(_text(third, "link"))
    assert (code, answer["verdict"]) == (0, "beyond_max_per_source")
    assert {f["feed"]: (f["reason"], f["rank"]) for f in answer["findings"][0]["feeds"]} == {
        "tech": ("max_per_source", 3), "all": ("max_per_source", 3)}
    code, answer = three_feeds(_text(second, "link"))
    assert (code, answer["verdict"]) == (0, "published")


def test_cut_reason_has_one_branch_per_limit() -> None:
    output = OutputConfig(max_entries=5, max_age=86400)
    old = NOW - timedelta(days=2)
    assert cut_reason(old, Standing(1, 1), output, NOW) == "max_age"
    assert cut_reason(NOW, None, output, NOW) == "max_age"  # the aged rows no longer hold it
    assert cut_reason(NOW, Standing(6, 1), output, NOW) == "max_entries"
    assert cut_reason(NOW, Standing(5, 5), output, NOW) == ""
    capped = OutputConfig(max_entries=5, max_age=86400, max_per_source=2)
    assert cut_reason(NOW, Standing(3, 3), capped, NOW) == "max_per_source"
    assert cut_reason(NOW, Standing(6, 2), capped, NOW) == "max_entries"
    assert cut_reason(old, Standing(60, 1), OutputConfig(max_entries=0, max_age=0), NOW) == ""  # 0 = no limit


def test_usage_and_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["why"], ["why", " "], ["why", "x", "--no-such-flag"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv
    assert main(["why", "x", "-c", str(tmp_path / "missing.yaml")]) == 2
    # a config whose runs stored nothing yet: nothing was ever seen
    config = yaml_config(tmp_path, ["state: state/state.db", "categories: {a: {title: A}}",
                                    "sources: [{url: 'http://127.0.0.1:9/feed', category: a}]"])
    assert main(["why", "x", "-c", str(config)]) == 1


# --- runs over time: held back, merged re-post, pruned, filter decisions kept like identities ---------------

DAY0 = datetime(2016, 8, 27, tzinfo=UTC)


def _repost_of(item: etree._Element, later: timedelta) -> etree._Element:
    """The item posted again: a new guid and link, the same title, a little later."""
    again = copy.deepcopy(item)
    again.find("guid").text = _text(item, "guid") + "-again"
    again.find("link").text = _text(item, "link") + "?again=1"
    again.find("pubDate").text = format_datetime(datetime(2016, 8, 25, 22, 20, tzinfo=UTC) + later, usegmt=True)
    return again


def test_held_back_merged_and_pruned(tmp_path: Path, http_server: RecordingServer,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    items = _items(KATIE)
    http_server.routes["/katie.rss"] = Route(200, RSS, _reshaped(KATIE, slice(0, 3)))
    config = yaml_config(tmp_path, [
        "output: {dir: out, max_entries: 2}", "state: state/state.db", "burst_threshold: 2",
        "categories: {tech: {title: Tech}}",
        f"sources: [{{url: '{http_server.url('/katie.rss')}', category: tech}}]",
    ])
    _run(config, DAY0)
    # the whole backlog appears (17 older items: a burst) with a re-post of the newest item
    repost = _repost_of(items[0], timedelta(hours=1))
    http_server.routes["/katie.rss"] = Route(200, RSS, _reshaped(KATIE, slice(0, 20), [repost]))
    _run(config, DAY0 + timedelta(hours=1), "--force")
    why = _asker(config, capsys, DAY0 + timedelta(hours=2))

    code, answer = why(_text(items[10], "link"))
    assert (code, answer["verdict"]) == (0, "held")
    assert f"--accept-burst {http_server.url('/katie.rss')}" in answer["findings"][0]["text"]

    code, answer = why(_text(repost, "link"))
    assert (code, answer["verdict"]) == (0, "duplicate")
    found = answer["findings"][0]
    assert found["duplicate_of"]["title"] == _text(items[0], "title") == found["title"]
    assert found["link"] == _text(items[0], "link")  # the entry it was merged into
    code, answer = why(_text(repost, "guid"))
    assert (code, answer["verdict"]) == (0, "duplicate")

    # retention: the third item (in no feed: max_entries 2) loses its body, its identity stays
    pruned_at = DAY0 + timedelta(days=30)
    assert main(["prune", "-c", str(config), "--older-than", "1d"], clock=lambda: pruned_at) == 0
    code, answer = why(_text(items[2], "link"), when=pruned_at)
    assert (code, answer["verdict"]) == (0, "pruned")
    assert answer["findings"][0]["pruned_at"] == pruned_at.isoformat()
    code, text = why(_text(items[2], "guid"), as_json=False, when=pruned_at)
    assert text.startswith(f"pruned on {pruned_at:%Y-%m-%d} 00:00 UTC: retention removed it (its identity is "
                           "remembered, so it will not come back as new)")
    code, answer = why(_text(items[0], "link"), when=pruned_at)  # a feed still shows it: kept whole
    assert answer["verdict"] == "published"


def _filtered_rows(state: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(state) as conn:
        return conn.execute("SELECT id, rule, first_seen, last_seen FROM filtered ORDER BY id").fetchall()


def test_filter_decisions_cost_no_write_when_unchanged_and_go_with_retention(
        tmp_path: Path, http_server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    http_server.routes["/katie.rss"] = Route(200, RSS, KATIE)
    config = yaml_config(tmp_path, [
        "output: {dir: out}", "state: state/state.db", "categories: {tech: {title: Tech}}",
        f"sources: [{{url: '{http_server.url('/katie.rss')}', category: tech,",
        "           filters: [{keep: {title: 'Mac Power Users'}}]}]",
    ])
    _run(config, DAY0)
    state = tmp_path / "state" / "state.db"
    recorded = _filtered_rows(state)
    assert len(recorded) == 20 - 8  # 8 items have Mac Power Users in their title
    why = _asker(config, capsys, DAY0)
    code, answer = why(_text(_items(KATIE)[2], "link"))  # a Week in Review
    assert (code, answer["verdict"]) == (0, "filtered")
    assert answer["findings"][0]["rule"] == "no keep-rule matched"
    assert any("keep rules now: keep title /Mac Power Users/" in d for d in
               why(_text(_items(KATIE)[2], "link"), as_json=False)[1].splitlines())

    # the feed changes (a new item): the dropped items are judged again, and their records stay unwritten
    fresh = _repost_of(_items(KATIE)[0], timedelta(days=1))
    fresh.find("title").text = "Katie's Week In Review: August 28, 2016"
    http_server.routes["/katie.rss"] = Route(200, RSS, _reshaped(KATIE, slice(0, 20), [fresh]))
    _run(config, DAY0 + timedelta(hours=1), "--force")
    after = _filtered_rows(state)
    assert len(after) == len(recorded) + 1 and set(recorded) <= set(after)

    # the feed stops listing the old items: a day after (retention 1d), prune forgets what was dropped
    http_server.routes["/katie.rss"] = Route(200, RSS, _reshaped(KATIE, slice(0, 1), [fresh]))
    _run(config, DAY0 + timedelta(days=2), "--force")
    later = DAY0 + timedelta(days=4)
    assert main(["prune", "-c", str(config), "--older-than", "1d"], clock=lambda: later) == 0
    assert why(_text(_items(KATIE)[2], "link"), when=later)[0] == 1
    code, answer = why(_text(fresh, "link"), when=later)  # still listed: still remembered
    assert (code, answer["verdict"]) == (0, "filtered")
    assert [row[0] for row in _filtered_rows(state)] == [answer["findings"][0]["id"]]
