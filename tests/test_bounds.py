"""What one source or one pattern may cost a run (issue 20, items 3 and 9): caps on what a source adds
to the state, time budgets for user patterns, and `run_deadline` over the whole run. Real CLI, real
SQLite, feeds served over loopback."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import RecordingServer, Route, yaml_config

from aggregator import patterns
from aggregator.clean import clean_html
from aggregator.clean.rules import compile_rule
from aggregator.cli import main
from aggregator.config import load_config


def undated_feed(ids: range, note: str = "") -> bytes:
    items = "".join(f"<item><guid isPermaLink='false'>id-{i}</guid><title>Item number {i}</title>"
                    f"<description>Body {i}</description></item>" for i in ids)
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>flood</title><link>http://f.example/</link>"
            f"<description>{note}</description>{items}</channel></rss>").encode()


def write_config(tmp_path: Path, server: RecordingServer, *, fetch: str = "", clean: str = "",
                 filters: str = "") -> Path:
    lines = ["output: {dir: out, max_entries: 0}", "state: state/state.db",
             f"fetch: {{retries: 0{', ' + fetch if fetch else ''}}}",
             "categories: {news: {title: News}}", "sources:",
             f"  - {{url: '{server.url('/flood.xml')}', category: news, name: flood{filters}}}",
             f"  - {{url: '{server.url('/calm.xml')}', category: news, name: calm}}"]
    if clean:
        lines.insert(3, f"clean: {{{clean}}}")
    return yaml_config(tmp_path, lines)


def stored(tmp_path: Path, source_url: str) -> list[str]:
    with sqlite3.connect(tmp_path / "state" / "state.db") as conn:
        rows = conn.execute("SELECT b.title FROM entries e JOIN bodies b ON b.entry = e.key "
                            "WHERE e.source_url = ? ORDER BY e.key", (source_url,)).fetchall()
    return [r[0] for r in rows]


def run(config: Path, *extra: str) -> int:
    return main(["run", "--config", str(config), "--no-progress", "--force", *extra])


# --- item 3: what one source may add -------------------------------------------------------------


def test_a_flooding_source_is_capped_per_fetch_and_in_all_keeping_the_first_in_document_order(
        tmp_path: Path, http_server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    flood, calm = http_server.url("/flood.xml"), http_server.url("/calm.xml")
    http_server.routes["/calm.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, undated_feed(range(900, 908)))
    http_server.routes["/flood.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, undated_feed(range(30)))
    config = write_config(tmp_path, http_server, fetch="max_new_per_fetch: 10, max_items_per_source: 45")

    assert run(config) == 0
    assert stored(tmp_path, flood) == [f"Item number {i}" for i in range(10)]  # the first ten, as listed
    assert len(stored(tmp_path, calm)) == 8  # under the caps: another source is not touched
    bite = [w for w in capsys.readouterr().err.splitlines() if "more than this source may add" in w]
    assert len(bite) == 1 and f"WARNING source 'flood' ({flood}): 30 new items" in bite[0]
    assert "stored the first 10 in document order, left out 20" in bite[0]
    assert "fetch.max_new_per_fetch" in bite[0]

    # The same items again (a changed channel, so the feed is parsed): the left-out ones were not
    # remembered as known, so the next ten come in now.
    http_server.routes["/flood.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                             undated_feed(range(30), note="again"))
    assert run(config) == 0
    assert stored(tmp_path, flood) == [f"Item number {i}" for i in range(20)]

    # ten a fetch until 45 in all: then only the first 5 of a fetch, then none
    for first in (100, 200, 300, 400):
        http_server.routes["/flood.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                                 undated_feed(range(first, first + 60)))
        assert run(config) == 0
        if first == 100:
            capsys.readouterr()
            assert run(config) == 0  # the same body again is not even parsed
    titles = stored(tmp_path, flood)
    assert len(titles) == 45 and titles[20:30] == [f"Item number {i}" for i in range(100, 110)]
    assert titles[40:] == [f"Item number {i}" for i in range(300, 305)]
    err = capsys.readouterr().err
    bites = [line for line in err.splitlines() if "more than this source may add" in line]
    assert "stored the first 5" in bites[-2] and "45 in all, 40 stored (fetch.max_items_per_source)" in bites[-2]
    assert "stored the first 0" in bites[-1] and "left out 60" in bites[-1]
    assert "source 'calm'" not in err


def test_new_keys_have_defaults_a_schema_and_a_readme_line(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("categories: {news: {title: News}}\nsources: []\n", encoding="utf-8")
    config = load_config(str(path))
    assert (config.fetch.max_new_per_fetch, config.fetch.max_items_per_source) == (1000, 20000)
    assert (config.clean.regex_search_timeout, config.clean.regex_pattern_budget,
            config.clean.regex_run_budget) == (0.25, 2, 10)
    assert main(["check", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)["properties"]
    assert {"max_new_per_fetch", "max_items_per_source"} <= set(schema["fetch"]["properties"])
    assert {"regex_search_timeout", "regex_pattern_budget", "regex_run_budget"} <= set(schema["clean"]["properties"])
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for key in ("max_new_per_fetch", "max_items_per_source", "regex_search_timeout", "regex_pattern_budget",
                "regex_run_budget"):
        assert re.search(rf"^\| `{key}` \| [^|]+ \|", readme, re.MULTILINE), key


# --- item 9: patterns that hang, and the run deadline ---------------------------------------------


HOSTILE = "(a|aa)+(?=b)"  # a look-around: RE2 refuses it, so it runs on `regex`, where it backtracks


def test_a_hostile_filter_is_disabled_for_the_run_and_the_run_finishes(
        tmp_path: Path, http_server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    items = "".join(f"<item><guid>h-{i}</guid><title>{'a' * 40} item {i * 7919 % 1000003}</title></item>"
                    for i in range(400))  # titles unlike each other, so none folds into another
    http_server.routes["/flood.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                             f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>"
                                             .encode())
    http_server.routes["/calm.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, undated_feed(range(5)))
    config = write_config(tmp_path, http_server,
                          clean="regex_search_timeout: 0.01s, regex_pattern_budget: 0.05s, regex_run_budget: 1s",
                          filters=f", filters: [{{drop: {{title: '{HOSTILE}'}}}}]")
    assert run(config) == 0
    out, err = capsys.readouterr()
    assert "405 new" in out  # the disabled drop rule dropped nothing; every source finished
    disabled = [line for line in err.splitlines() if "disabled for the rest of this run" in line]
    assert len(disabled) == 1 and f"WARNING source 'flood' ({http_server.url('/flood.xml')}): " in disabled[0]
    assert repr(HOSTILE) in disabled[0]


def test_a_user_drop_text_pattern_runs_within_the_budgets() -> None:
    ticks = itertools.count()
    patterns.start_run("drop_text", patterns.Budget(search_s=0.01, pattern_s=1.0, run_s=5.0),
                       lambda: next(ticks) * 0.25)
    rule = {"hosts": ["*"], "drop_text": [HOSTILE, r"^Sponsored\s+by"]}
    compiled = compile_rule(rule)
    assert [p.engine for p in compiled.drop_text] == ["regex", "regex"]  # \s keeps Python's Unicode meaning
    # (the fake clock charges every search 0.25 s: the honest pattern, searched first, still has budget)
    body = "<p>Sponsored\u3000by X</p>" + "".join(f"<p>{'a' * 40}</p>" for i in range(50)) + "<p>kept</p>"
    cleaned = clean_html(body, "https://x.example/", host_rules=[compiled])
    assert "kept" in cleaned and ("a" * 40) in cleaned and "Sponsored" not in cleaned
    assert HOSTILE in patterns.ledger().disabled  # and so the page is cleaned in bounded time
    assert any(repr(HOSTILE) in n for n in patterns.take_notices())


def test_run_deadline_bounds_the_whole_run(tmp_path: Path, http_server: RecordingServer,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A source still in work when the deadline passes is reported unfinished and left as it was (so the
    next run takes it up); what is done is published, and the run exits 0."""
    items = "".join(f"<item><guid>h-{i}</guid><title>{'a' * 40}</title></item>" for i in range(200))
    http_server.routes["/flood.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                             f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>"
                                             .encode())
    http_server.routes["/calm.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, undated_feed(range(5)))
    # the filter keeps its searches going for 5 s of budget, the run may take 2 s
    config = write_config(tmp_path, http_server, fetch="run_deadline: 2s",
                          clean="regex_search_timeout: 0.25s, regex_pattern_budget: 5s, regex_run_budget: 5s",
                          filters=f", filters: [{{drop: {{title: '{HOSTILE}'}}}}]")
    assert run(config) == 0
    out, err = capsys.readouterr()
    assert any("ERROR source 'flood'" in e and "not finished: run deadline (2 s) reached" in e
               for e in err.splitlines())
    news = (tmp_path / "out" / "news.atom").read_text(encoding="utf-8")
    assert news.count("<entry>") == 5 and "Item number 4" in news  # what was done is published
    assert "1 failed" in out
    with sqlite3.connect(tmp_path / "state" / "state.db") as conn:
        (state,) = conn.execute("SELECT state FROM sources WHERE url = ?", (http_server.url("/flood.xml"),)).fetchone()
    assert not json.loads(state).get("last_success")  # not advanced: the next run fetches and processes it


def test_a_pattern_disabled_in_several_worker_processes_is_told_once(
        tmp_path: Path, http_server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    from aggregator.pipeline import POOL_THRESHOLD

    lines = ["output: {dir: out, max_entries: 0}", "state: state/state.db",
             "clean: {regex_search_timeout: 0.01s, regex_pattern_budget: 0.03s}",
             f"filters: [{{drop: {{content: '{HOSTILE}'}}}}]", "categories: {news: {title: News}}", "sources:"]
    for n in range(POOL_THRESHOLD + 2):  # enough sources for the worker processes, each with its own ledger
        items = "".join(f"<item><guid>{n}-{i}</guid><title>Story {n} {i}</title><description>{'a' * 300}"
                        "</description></item>" for i in range(40))
        http_server.routes[f"/{n}.xml"] = Route(200, {"Content-Type": "application/rss+xml"},
                                                f"<rss version='2.0'><channel><title>t{n}</title>{items}"
                                                "</channel></rss>".encode())
        lines.append(f"  - {{url: '{http_server.url(f'/{n}.xml')}', category: news, name: s{n}}}")
    assert run(yaml_config(tmp_path, lines), "--workers", "2") == 0
    out, err = capsys.readouterr()
    assert f"{40 * (POOL_THRESHOLD + 2)} new" in out
    assert len([line for line in err.splitlines() if "disabled for the rest of this run" in line]) == 1
