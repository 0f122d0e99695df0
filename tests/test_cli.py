"""The CLI: every command has help with an example and is documented; OPML in and out."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from aggregator import __version__
from aggregator.cli import build_parser, main
from aggregator.config import load_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_help_with_an_example_and_is_documented() -> None:
    commands = subcommands()
    assert set(commands) >= {"run", "check", "sources", "import-opml", "export-opml", "prune"}
    for name, parser in commands.items():
        text = parser.format_help()
        assert "Example: aggregator " + name in text, name
        assert f"`aggregator {name}" in README, f"{name} is not documented in README.md"
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag not in ("--help", "--config", "--verbose", "--quiet",
                                                          "--log-format"):
                    assert flag in README, f"{name} {flag} is not documented in README.md"


def test_global_flags_are_documented() -> None:
    for flag in ("--version", "-v/--verbose", "-q/--quiet", "--log-format", "--config"):
        assert flag in README, flag


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["run", "--no-such-flag"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_console_script_runs_help() -> None:
    result = subprocess.run([sys.executable, "-m", "aggregator.cli", "run", "--help"], capture_output=True,
                            text=True, check=False, cwd=ROOT)
    assert result.returncode == 0 and "--dry-run" in result.stdout


OPML = """<?xml version="1.0"?>
<opml version="2.0"><head><title>mine</title></head><body>
  <outline text="Tech News">
    <outline text="Deeper"><outline text="LWN" xmlUrl="https://lwn.net/headlines/rss"/></outline>
    <outline text="HN" title="Hacker News" xmlUrl="https://news.ycombinator.com/rss"/>
  </outline>
  <outline text="财经">
    <outline text="Sina" xmlUrl="https://rsshub.example/sina/finance"/>
    <outline text="again" xmlUrl="https://lwn.net/headlines/rss"/>
  </outline>
  <outline text="Loose" xmlUrl="https://example.org/feed"/>
  <outline text="junk" xmlUrl="javascript:alert(1)"/>
  <outline text="no url"/>
</body></opml>
"""


def test_import_opml_creates_a_valid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "subs.opml").write_text(OPML, encoding="utf-8")
    config_path = tmp_path / "conf" / "feeds.yaml"
    assert main(["import-opml", str(tmp_path / "subs.opml"), "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "added 4 sources, skipped 2" in out
    config = load_config(config_path)
    by_url = {s.url: s for s in config.sources}
    assert set(by_url) == {"https://lwn.net/headlines/rss", "https://news.ycombinator.com/rss",
                           "https://rsshub.example/sina/finance", "https://example.org/feed"}
    assert config.categories[by_url["https://lwn.net/headlines/rss"].categories[0]].title == "Tech News"
    sina_slug = by_url["https://rsshub.example/sina/finance"].categories[0]
    assert re.fullmatch(r"[a-z0-9_-]+", sina_slug) and config.categories[sina_slug].title == "财经"
    assert by_url["https://example.org/feed"].categories == ("imported",)
    assert by_url["https://news.ycombinator.com/rss"].name == "Hacker News"


def test_import_opml_keeps_comments_and_skips_known(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text("# my precious comment\ncategories:\n  tech: {title: Tech News}  # inline\n"
                           "sources:\n  - url: https://lwn.net/headlines/rss  # keep me\n    category: tech\n",
                           encoding="utf-8")
    (tmp_path / "subs.opml").write_text(OPML, encoding="utf-8")
    assert main(["import-opml", str(tmp_path / "subs.opml"), "--config", str(config_path)]) == 0
    text = config_path.read_text(encoding="utf-8")
    assert "# my precious comment" in text and "# keep me" in text and "# inline" in text
    config = load_config(config_path)
    assert [s.url for s in config.sources].count("https://lwn.net/headlines/rss") == 1
    assert config.sources[1].categories == ("tech",)  # folder title matched the existing category
    assert "already in the config" in capsys.readouterr().out


@pytest.mark.parametrize("junk", ["<opml><body>", "<html><body/></html>", "not xml at all",
                                  '<!DOCTYPE x [<!ENTITY a "aaaa">]><opml><body>&a;</body></opml>'])
def test_import_opml_junk_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], junk: str) -> None:
    (tmp_path / "bad.opml").write_text(junk, encoding="utf-8")
    code = main(["import-opml", str(tmp_path / "bad.opml"), "--config", str(tmp_path / "feeds.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.opml" in err and "Traceback" not in err
    assert not (tmp_path / "feeds.yaml").exists()


def test_export_opml_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text("categories:\n  tech: {title: Tech & <News>}\n  zh: {title: 中文}\nsources:\n"
                           "  - {url: 'https://a.example/rss?x=1&y=2', category: tech, name: 'A \"quoted\" feed'}\n"
                           "  - {url: https://b.example/atom, category: [zh, tech]}\n", encoding="utf-8")
    assert main(["export-opml", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    root = etree.fromstring(out.encode())
    assert root.get("version") == "2.0"
    folders = {o.get("text"): [c.get("xmlUrl") for c in o] for o in root.find("body")}
    assert folders == {"Tech & <News>": ["https://a.example/rss?x=1&y=2", "https://b.example/atom"],
                       "中文": ["https://b.example/atom"]}
    (tmp_path / "out.opml").write_text(out, encoding="utf-8")
    assert main(["import-opml", str(tmp_path / "out.opml"), "--config", str(tmp_path / "new.yaml")]) == 0
    imported = load_config(tmp_path / "new.yaml")
    assert {s.url for s in imported.sources} == {"https://a.example/rss?x=1&y=2", "https://b.example/atom"}
    assert any(s.name == 'A "quoted" feed' for s in imported.sources)
