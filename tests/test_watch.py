"""Runs you can watch (issue 22 item 5): -v and -vv lines, JSON log fields, check --online's exit code, the
sources table (columns, CJK alignment, feed titles as names, ITEMS), filter rules named by file:line, and
global options before or after the subcommand. Real corpus feeds over a loopback server, through cli.main."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.cli import build_parser, main
from aggregator.config import load_config
from aggregator.pipeline.ingest import rules_for
from aggregator.report import SOURCE_COLUMNS, display_width
from conftest import CORPUS, RecordingServer, Route, yaml_config

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
FEEDS = CORPUS / "feeds"
FIREBALL = FEEDS / "rsparser" / "DaringFireball.atom"  # 48 entries from 2017, titled "Daring Fireball"
LUANDUN = FEEDS / "rodel-reader" / "ld.xml"  # 190 items, titled 科技乱炖
V2EX = FEEDS / "rodel-reader" / "v2ex.xml"  # 50 items, titled V2EX
ATOM = {"Content-Type": "application/atom+xml", "ETag": '"fireball-1"'}
RSS = {"Content-Type": "application/rss+xml"}


def clock() -> datetime:
    return NOW


def serve(server: RecordingServer) -> None:
    server.routes["/fireball.atom"] = Route(200, ATOM, FIREBALL.read_bytes())
    server.routes["/ld.xml"] = Route(200, RSS, LUANDUN.read_bytes())
    server.routes["/v2ex.xml"] = Route(200, RSS, V2EX.read_bytes())
    server.routes["/busy.xml"] = Route(503, {"Content-Type": "text/plain"}, b"busy")


def config(tmp_path: Path, server: RecordingServer, *paths: str, extra: tuple[str, ...] = ()) -> Path:
    """A config of the served feeds at `paths`, none with a `name:` (so each is known by its feed title)."""
    serve(server)
    return yaml_config(tmp_path, [
        "output: {dir: out, max_age: 30d}", "state: state/state.db", "fetch: {retries: 0}",
        "categories: {news: {title: News}}",
        *extra, "sources:", *(f"  - {{url: '{server.url(p)}', category: news}}" for p in paths)])


def cli(*argv: str) -> int:
    return main(list(argv), clock=clock)


# --- -v, -vv, --log-format json ---------------------------------------------------------------------


def test_default_verbosity_adds_no_log_lines(tmp_path: Path, http_server: RecordingServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, http_server, "/fireball.atom", "/v2ex.xml")
    assert cli("run", "-c", str(path), "--no-progress") == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # nothing failed: nothing to say beyond the summary
    assert captured.out.startswith("sources: 2 fetched")


def test_v_logs_one_line_per_source_with_its_numbers(tmp_path: Path, http_server: RecordingServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, http_server, "/fireball.atom", "/ld.xml", "/busy.xml")
    assert cli("run", "-c", str(path), "--no-progress", "-v") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if " INFO " in line]
    assert len(lines) == 3, lines
    fireball, luandun, busy = (next(line for line in lines if name in line)
                               for name in ("Daring Fireball:", "科技乱炖:", "/busy.xml:"))
    assert f"fetched, HTTP 200, {FIREBALL.stat().st_size} bytes" in fireball
    assert "; 48 items: 48 new, 0 updated, 0 unchanged" in fireball
    assert "; 190 items: " in luandun and "HTTP 200" in luandun
    assert "failed, HTTP 503" in busy and "error: HTTP 503" in busy
    assert not any(" DEBUG " in line for line in lines)
    # the next run sends the ETag back and is answered 304: every item unchanged
    http_server.routes["/fireball.atom"] = Route(304, ATOM)
    assert cli("run", "-c", str(path), "--no-progress", "--force", "-v") == 0
    again = capsys.readouterr().err
    assert "Daring Fireball: not modified (304), HTTP 304, 0 bytes" in again
    assert "; 48 items: 0 new, 0 updated, 48 unchanged" in again
    sent = [{k.lower(): v for k, v in h.items()} for p, h in http_server.requests if p == "/fireball.atom"]
    assert sent[-1]["if-none-match"] == '"fireball-1"'


def test_vv_says_what_each_stage_decided(tmp_path: Path, http_server: RecordingServer,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, http_server, "/fireball.atom", "/busy.xml",
                  extra=("filters:", "  - drop: {title: '(?i)apple'}"))
    assert cli("-vv", "run", "-c", str(path), "--no-progress") == 0
    err = capsys.readouterr().err
    assert re.search(r"DEBUG Daring Fireball: parse: (fast|feedparser) parser, 48 items, \d+ warnings", err)
    assert re.search(r"DEBUG Daring Fireball: filters: \d+ dropped by drop title /\(\?i\)apple/ \(feeds.yaml:6\)", err)
    assert re.search(r"DEBUG Daring Fireball: filters: filtered by drop title .*: '.*Apple", err)
    assert re.search(r"DEBUG Daring Fireball: store: \d+ new, 0 updated, 0 unchanged", err)
    assert re.search(r"DEBUG /?.*busy.xml: fetch: backing off: 1 failures in a row, next try 2026-12-01T", err)
    assert "DEBUG publish: written news.atom" in err and "DEBUG publish: written all.atom" in err
    http_server.routes["/fireball.atom"] = Route(304, ATOM)
    assert cli("-vv", "run", "-c", str(path), "--no-progress", "--force") == 0
    again = capsys.readouterr().err
    assert "Daring Fireball: fetch: conditional GET answered 304" in again
    assert "DEBUG publish: unchanged news.atom" in again and "DEBUG publish: written" not in again


def test_json_log_lines_carry_the_numbers_as_keys(tmp_path: Path, http_server: RecordingServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, http_server, "/fireball.atom", "/busy.xml")
    assert cli("run", "--log-format", "json", "-vv", "-c", str(path), "--no-progress") == 0
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    sources = {r["url"].rsplit("/", 1)[1]: r for r in records if r.get("event") == "source"}
    fireball = sources["fireball.atom"]
    assert {"time", "level", "message", "source", "url", "status", "bytes", "elapsed_s", "new", "updated",
            "unchanged", "items", "result"} <= set(fireball)
    assert fireball["source"] == "Daring Fireball" and fireball["status"] == 200 and fireball["level"] == "info"
    assert fireball["bytes"] == FIREBALL.stat().st_size and fireball["new"] == fireball["items"] == 48
    assert isinstance(fireball["elapsed_s"], float) and fireball["elapsed_s"] >= 0
    assert sources["busy.xml"]["status"] == 503 and sources["busy.xml"]["result"] == "failed"
    stages = {r["stage"] for r in records if r.get("event") in ("stage", "publish")}
    assert {"parse", "store", "fetch", "publish"} <= stages


# --- check --online --------------------------------------------------------------------------------


def test_check_online_exit_code_says_whether_every_source_worked(tmp_path: Path, http_server: RecordingServer,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    good = config(tmp_path, http_server, "/fireball.atom", "/ld.xml")
    assert cli("check", "--online", "-c", str(good)) == 0
    out = capsys.readouterr().out
    assert "OK    Daring Fireball (" in out and "OK    科技乱炖 (" in out
    bad = config(tmp_path, http_server, "/fireball.atom", "/busy.xml")
    assert cli("check", "--online", "-c", str(bad)) == 1
    captured = capsys.readouterr()
    assert f"FAIL  {http_server.url('/busy.xml')}: HTTP 503" in captured.out
    assert "1 of 2 sources failed" in captured.err
    assert cli("check", "-c", str(bad)) == 0  # offline, only the config is judged


# --- the sources table -------------------------------------------------------------------------------


def test_sources_names_a_source_by_its_feed_title_and_items_counts_the_feed(
        tmp_path: Path, http_server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, http_server, "/fireball.atom", "/ld.xml", "/v2ex.xml")
    assert cli("run", "-c", str(path), "--no-progress") == 0
    capsys.readouterr()
    assert cli("sources", "-c", str(path), "--json") == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"Daring Fireball", "科技乱炖", "V2EX"}
    # ITEMS was the count of published articles: 0 for this feed, whose 48 entries (2017) retention
    # pruned at once as no feed shows them (max_age 30d). It is the feed's own item count now.
    assert rows["Daring Fireball"]["items"] == 48 and rows["Daring Fireball"]["stored"] == 0
    assert rows["科技乱炖"]["items"] == 190 and rows["V2EX"]["items"] == 50


def test_sources_table_keeps_cjk_columns_aligned_and_cuts_nothing(tmp_path: Path, http_server: RecordingServer,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    serve(http_server)
    long_name = "A source whose name is much longer than forty characters, said in full"
    path = yaml_config(tmp_path, [
        "output: {dir: out}", "state: state/state.db", "fetch: {retries: 0}",
        "categories: {news: {title: News}}",
        "sources:",
        f"  - {{url: '{http_server.url('/ld.xml')}', category: news}}",
        f"  - {{url: '{http_server.url('/v2ex.xml')}', category: news, name: 'ｆｕｌｌ　ｗｉｄｔｈ ｖ２ｅｘ'}}",
        f"  - {{url: '{http_server.url('/fireball.atom')}', category: news, name: 'Cafe\u0301 ｺｰﾋｰ'}}",
        f"  - {{url: '{http_server.url('/busy.xml')}', category: news, name: '{long_name}'}}"])
    assert cli("run", "-c", str(path), "--no-progress") == 0
    capsys.readouterr()
    assert cli("sources", "-c", str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], [line for line in lines[1:] if not line.startswith("    error: ")]
    assert header.split() == [c.upper() for c, _text in SOURCE_COLUMNS]
    assert len(rows) == 4
    starts = [header.index(c.upper()) for c, _text in SOURCE_COLUMNS]
    for row in rows:  # each column starts at the same terminal cell in every row
        cells = re.split(r"  +", row)
        assert len(cells) == len(SOURCE_COLUMNS), row
        position = 0
        for cell, start in zip(cells, starts, strict=True):
            at = row.index(cell, position)
            assert display_width(row[:at]) == start, (row, cell)
            position = at + len(cell)
    assert any(row.startswith("科技乱炖 ") for row in rows)
    assert any(row.startswith(long_name + "  ") for row in rows)  # not cut at 40
    error = lines[lines.index(next(r for r in rows if r.startswith(long_name))) + 1]
    assert error == "    error: HTTP 503"
    assert display_width("科技ｺ\u0301a") == 6


def test_sources_help_documents_every_column() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["sources"].format_help()  # type: ignore[union-attr]
    for column, _meaning in SOURCE_COLUMNS:
        assert re.search(rf"^  {column.upper()} +\S", text, flags=re.M), column


def test_only_accepts_a_feed_title(tmp_path: Path, http_server: RecordingServer,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, http_server, "/fireball.atom", "/ld.xml")
    assert cli("run", "-c", str(path), "--no-progress") == 0
    capsys.readouterr()
    before = len(http_server.requests)
    assert cli("run", "-c", str(path), "--no-progress", "--force", "--only", "科技乱炖") == 0
    assert [p for p, _h in http_server.requests[before:]] == ["/ld.xml"]
    assert capsys.readouterr().out.startswith("sources: 0 fetched, 1 not modified, 0 not due")  # same bytes
    assert cli("run", "-c", str(path), "--no-progress", "--only", "No such feed") == 2
    assert "--only No such feed: no source or category by that name" in capsys.readouterr().err


def test_failures_are_named_by_feed_title(tmp_path: Path, http_server: RecordingServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, http_server, "/fireball.atom")
    assert cli("run", "-c", str(path), "--no-progress") == 0
    http_server.routes["/fireball.atom"] = Route(500, {"Content-Type": "text/plain"}, b"down")
    capsys.readouterr()
    assert cli("run", "-c", str(path), "--no-progress", "--force") == 0
    captured = capsys.readouterr()
    assert f"source 'Daring Fireball' ({http_server.url('/fireball.atom')}): HTTP 500" in captured.err
    assert f"failed: Daring Fireball ({http_server.url('/fireball.atom')}): HTTP 500" in captured.out


# --- filter rules by file:line -------------------------------------------------------------------------


def test_filter_hits_name_the_rule_by_file_and_line(tmp_path: Path, http_server: RecordingServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "more.yaml").write_text(
        "sources:\n"
        f"  - url: '{http_server.url('/v2ex.xml')}'\n"
        "    category: news\n"
        "    filters:\n"
        "      - keep: {title: '.'}\n"
        "      - drop: {title: '[?？]'}\n", encoding="utf-8")
    path = config(tmp_path, http_server, "/fireball.atom",
                  extra=("include: conf.d", "filters:", "  - min_length: 1", "  - drop: {title: '(?i)apple'}"))
    loaded = load_config(path)
    fireball, v2ex = loaded.sources[0], loaded.sources[1]
    assert [rule.origin for rule in rules_for(loaded, fireball)] == ["feeds.yaml:7", "feeds.yaml:8"]
    assert [rule.origin for rule in rules_for(loaded, v2ex)] == [
        "feeds.yaml:7", "feeds.yaml:8", "conf.d/more.yaml:5", "conf.d/more.yaml:6"]
    assert cli("run", "-c", str(path), "--no-progress", "--explain") == 0
    out = capsys.readouterr().out
    assert re.search(r"^filtered: .*\d+ by drop title /\(\?i\)apple/ \(feeds.yaml:8\)", out, flags=re.M)
    assert re.search(r"^V2EX: filtered by drop title /\[\?？\]/ \(conf.d/more.yaml:6\): '", out, flags=re.M)
    assert "(source " not in out


# --- global options before or after the subcommand ------------------------------------------------------


def test_global_options_work_before_or_after_the_subcommand(tmp_path: Path, http_server: RecordingServer,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, http_server, "/fireball.atom")
    assert cli("-c", str(path), "-q", "run", "--no-progress") == 0
    assert capsys.readouterr().out == ""  # -q before the subcommand counted
    assert cli("-c", str(path), "sources", "--json") == 0
    before = capsys.readouterr().out
    assert cli("sources", "--json", "-c", str(path)) == 0
    assert capsys.readouterr().out == before and "Daring Fireball" in before
    assert cli("-c", "nowhere.yaml", "sources", "-c", str(path)) == 0  # the later one wins
    capsys.readouterr()
    assert cli("-v", "run", "-c", str(path), "--no-progress", "--force", "--log-format", "json") == 0
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [r["source"] for r in records if r.get("event") == "source"] == ["Daring Fireball"]
    assert cli("--log-format", "json", "-v", "run", "-v", "-c", str(path), "--no-progress", "--force") == 0
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]  # -v -v: debug too
    assert any(r["level"] == "debug" for r in records)
