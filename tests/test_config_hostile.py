"""Configs written or fed by someone else (issue 20, items 5, 7, 8, 11; issue 19's host spellings): every
one ends in exit 2 with file:line and what is wrong, never a traceback, a hang or a leaked secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import load_config
from test_config import laughs, write

HEAD = """\
categories:
  news: {title: News}
sources:
  - {url: "https://example.org/feed.xml", category: news}
"""


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`aggregator check` on the file: (exit code, stderr); asserts there is no traceback."""
    code = main(["check", "--config", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


# --- YAML the loader must refuse (items 7 and 8; more cases in test_config.BROKEN) ----------------


def test_a_refused_value_is_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(write(tmp_path, HEAD + "state: !!python/name:os.system\nfetch: !!set {interval}\n"), capsys)
    assert code == 2
    assert err.splitlines()[1:] == [
        f"  {tmp_path}/feeds.yaml:5: state: YAML tag !!python/name:os.system is not allowed: a config holds only "
        "strings, numbers, booleans, null, lists and mappings",
        f"  {tmp_path}/feeds.yaml:6: fetch: YAML tag !!set is not allowed: a config holds only "
        "strings, numbers, booleans, null, lists and mappings"]


def test_alias_expansion_through_an_include_is_capped_over_the_whole_load(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # two files, each under the budget alone (9^5 = 59,049 copies), over it together
    write(tmp_path, "sources: []\n" + laughs(5, "x"), "conf.d/a.yaml")
    write(tmp_path, "sources: []\n" + laughs(5, "y"), "conf.d/b.yaml")
    code, err = check(write(tmp_path, HEAD + "include: conf.d\n"), capsys)
    assert code == 2, err
    assert re.search(r"conf.d/b.yaml:2: YAML aliases copy more than 100,000 values", err), err


def test_aliases_within_the_budget_still_work(tmp_path: Path) -> None:
    text = """\
categories:
  news: {title: News, headers: &auth {Authorization: "Bearer ${TOKEN}"}}
sources:
  - {url: "https://a.example/rss", category: news, filters: &rules [{drop: {title: sponsored}}], headers: *auth}
  - {url: "https://b.example/rss", category: news, filters: *rules}
"""
    config = load_config(write(tmp_path, text), env={"TOKEN": "t"})
    assert [s.filters for s in config.sources] == [({"drop": {"title": "sponsored"}},)] * 2
    assert dict(config.sources[0].headers) == {"Authorization": "Bearer t"}
