"""Config contract: the issue's shape loads; every kind of mistake gives file, line and key, exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from aggregator.cli import main
from aggregator.config import config_schema, load_config
from aggregator.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

CONTRACT = """\
output:
  dir: /srv/news/feeds
  base_url: https://news.example.org/feeds/
  max_entries: 50
state: /var/lib/aggregator/state.db
categories:
  finance:
    title: 金融
sources:
  - url: https://example.org/feed.xml
    category: finance
    name: 新浪财经
"""


def write(tmp_path: Path, text: str, name: str = "feeds.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_contract_shape_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONTRACT))
    assert config.output.dir == "/srv/news/feeds"
    assert config.output.base_url == "https://news.example.org/feeds/"
    assert config.output.max_entries == 50
    assert config.state == "/var/lib/aggregator/state.db"
    assert config.categories["finance"].title == "金融"
    (source,) = config.sources
    assert (source.url, source.categories, source.name) == ("https://example.org/feed.xml", ("finance",), "新浪财经")


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    text = CONTRACT.replace("/srv/news/feeds", "out").replace("/var/lib/aggregator/state.db", "st/s.db")
    text += "  - url: local/feed.xml\n    category: [finance]\n"
    config = load_config(write(tmp_path, text, "conf/feeds.yaml"))
    assert config.output.dir == str(tmp_path / "conf" / "out")
    assert config.state == str(tmp_path / "conf" / "st" / "s.db")
    assert config.sources[1].url == str(tmp_path / "conf" / "local" / "feed.xml")


def test_durations_sizes_and_overrides(tmp_path: Path) -> None:
    text = """\
fetch: {interval: 15m, max_body: 2MiB, per_host: 4}
categories:
  finance:
    title: 金融
    interval: 2h
    headers: {X-Cat: a, X-Both: cat}
sources:
  - url: https://example.org/feed.xml
    category: finance
    headers: {X-Both: src}
"""
    config = load_config(write(tmp_path, text))
    assert config.fetch.interval == 900 and config.fetch.max_body == 2 * 1024 * 1024 and config.fetch.per_host == 4
    (source,) = config.sources
    assert source.interval == 7200
    assert dict(source.headers) == {"X-Cat": "a", "X-Both": "src"}


def test_env_vars_expand_and_unset_ones_are_named(tmp_path: Path) -> None:
    text = CONTRACT + "    headers: {Authorization: 'Bearer ${API_TOKEN}'}\n"
    config = load_config(write(tmp_path, text), env={"API_TOKEN": "s3cret"})
    assert dict(config.sources[0].headers) == {"Authorization": "Bearer s3cret"}
    with pytest.raises(ConfigError, match=r"feeds.yaml:13: sources\[0\]\.headers\.Authorization: "
                                          r"environment variable \$\{API_TOKEN\} is not set"):
        load_config(write(tmp_path, text), env={})


def test_include_files_and_conf_d_folders(tmp_path: Path) -> None:
    write(tmp_path, "categories:\n  tech: {title: Tech}\nsources:\n  - {url: https://a.org/rss, category: tech}\n",
          "conf.d/a.yaml")
    write(tmp_path, "sources:\n  - {url: https://b.org/rss, category: finance}\n", "conf.d/b.yml")
    write(tmp_path, "sources:\n  - {url: https://c.org/rss, category: tech}\n", "extra.yaml")
    config = load_config(write(tmp_path, CONTRACT + "include: [conf.d, extra.yaml]\n"))
    assert [s.url for s in config.sources] == [
        "https://example.org/feed.xml", "https://a.org/rss", "https://b.org/rss", "https://c.org/rss"]
    assert set(config.categories) == {"finance", "tech"}


def test_duplicate_url_across_includes_names_both_places(tmp_path: Path) -> None:
    write(tmp_path, "sources:\n  - {url: https://example.org/feed.xml, category: finance}\n", "more.yaml")
    with pytest.raises(ConfigError, match=r"more.yaml:2: sources\[0\]\.url: duplicate URL, already listed at "
                                          r".*feeds.yaml:10"):
        load_config(write(tmp_path, CONTRACT + "include: more.yaml\n"))


def test_all_problems_are_collected_in_one_error(tmp_path: Path) -> None:
    text = """\
output:
  max_entires: 5
  base_url: ftp://nope
categories:
  Finance!: {title: x}
  news: {title: News}
sources:
  - url: https://a.org/f.xml
    category: nwes
  - {url: https://a.org/g.xml, category: news, intervall: 5m}
  - {category: news}
"""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    problems = info.value.problems
    assert len(problems) == 6, problems
    joined = "\n".join(problems)
    assert "feeds.yaml:2: output.max_entires: unknown key (did you mean 'max_entries'?)" in joined
    assert "feeds.yaml:3: output.base_url: expected an http(s) URL, got 'ftp://nope'" in joined
    assert "feeds.yaml:5: categories.Finance!: unsafe category slug" in joined
    assert "feeds.yaml:9: sources[0].category: undefined category 'nwes' (did you mean 'news'?)" in joined
    assert "feeds.yaml:10: sources[1].intervall: unknown key (did you mean 'interval'?)" in joined
    assert "feeds.yaml:11: sources[2]: missing key: url" in joined


def laughs(levels: int, prefix: str = "") -> str:
    """The "billion laughs": each level a list of nine aliases to the level before."""
    lines = [f'{prefix}l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{prefix}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


# Thirty broken configs (issue 7): each gives a one-screen message naming file, line and key.
BROKEN = [
    ("yaml syntax", "output: [unclosed\n", r"feeds.yaml:\d+: YAML syntax error"),
    ("tab indentation", "output:\n\tdir: x\n", r"feeds.yaml:\d+: YAML syntax error"),
    ("list at top", "- url: x\n", r"feeds.yaml: expected a mapping of settings at the top, got a list"),
    ("scalar at top", "hello\n", r"expected a mapping of settings at the top, got a string"),
    ("empty file", "", r"feeds.yaml: the file is empty"),
    ("unknown top key", CONTRACT + "sourcse: []\n", r"feeds.yaml:13: sourcse: unknown key \(did you mean 'sources'\?\)"),
    ("output not mapping", CONTRACT.replace("output:\n  dir: /srv/news/feeds\n  base_url: https://news.example.org/feeds/\n"
                                           "  max_entries: 50\n", "output: 5\n"),
     r"feeds.yaml:1: output: expected a mapping, got a number 5"),
    ("max_entries string", CONTRACT.replace("max_entries: 50", "max_entries: lots"),
     r"feeds.yaml:4: output.max_entries: expected an integer, got a string 'lots'"),
    ("max_entries negative", CONTRACT.replace("max_entries: 50", "max_entries: -1"),
     r"output.max_entries: expected a non-negative integer"),
    ("bad duration", CONTRACT + "fetch: {interval: soon}\n", r"feeds.yaml:13: fetch.interval: expected a duration"),
    ("bad size", CONTRACT + "fetch: {max_body: huge}\n", r"fetch.max_body: expected a size"),
    ("bool wrong", CONTRACT + "fetch: {allow_private_addresses: maybe}\n",
     r"fetch.allow_private_addresses: expected true or false"),
    ("unknown fetch key", CONTRACT + "fetch: {concurency: 3}\n", r"fetch.concurency: unknown key \(did you mean 'concurrency'\?\)"),
    ("bad format", CONTRACT.replace("max_entries: 50", "max_entries: 50\n  formats: [atom, xml]"),
     r"output.formats: unknown format 'xml'"),
    ("state empty", CONTRACT.replace("state: /var/lib/aggregator/state.db", "state: ''"), r"feeds.yaml:5: state: expected a path"),
    ("categories list", CONTRACT.replace("categories:\n  finance:\n    title: 金融\n", "categories: [finance]\n"),
     r"feeds.yaml:6: categories: expected a mapping"),
    ("unsafe slug", CONTRACT.replace("  finance:\n    title", "  ../etc:\n    title"), r"categories.../etc: unsafe category slug"),
    ("reserved slug", CONTRACT.replace("  finance:\n    title", "  all:\n    title"), r"categories.all: the slug 'all' is reserved"),
    ("title not string", CONTRACT.replace("title: 金融", "title: [a]"), r"categories.finance.title: expected a string"),
    ("category unknown key", CONTRACT.replace("title: 金融", "title: 金融\n    titel: x"),
     r"categories.finance.titel: unknown key \(did you mean 'title'\?\)"),
    ("sources mapping", CONTRACT.split("sources:")[0] + "sources: {url: x}\n", r"feeds.yaml:9: sources: expected a list"),
    ("source is string", CONTRACT.split("sources:")[0] + "sources:\n  - https://x.org/rss\n",
     r"feeds.yaml:10: sources\[0\]: expected a mapping with 'url' and 'category', got a string"),
    ("missing url", CONTRACT.replace("  - url: https://example.org/feed.xml\n    category", "  - category"),
     r"sources\[0\]: missing key: url"),
    ("missing category", CONTRACT.replace("    category: finance\n", ""), r"sources\[0\]: missing key: category"),
    ("undefined category", CONTRACT.replace("category: finance", "category: sports"),
     r"feeds.yaml:11: sources\[0\]\.category: undefined category 'sports'"),
    ("ftp url", CONTRACT.replace("https://example.org/feed.xml", "ftp://example.org/feed.xml"),
     r"feeds.yaml:10: sources\[0\]\.url: expected an http\(s\) URL or a file path"),
    ("url without host", CONTRACT.replace("https://example.org/feed.xml", "https:///feed.xml"), r"URL has no host"),
    ("duplicate url", CONTRACT + "  - {url: https://example.org/feed.xml, category: finance}\n",
     r"feeds.yaml:13: sources\[1\]\.url: duplicate URL"),
    ("headers not mapping", CONTRACT + "    headers: [a]\n", r"sources\[0\]\.headers: expected a mapping"),
    ("unset env", CONTRACT + "    headers: {X: '${NO_SUCH_VAR_HERE}'}\n", r"environment variable \$\{NO_SUCH_VAR_HERE\} is not set"),
    ("include missing", CONTRACT + "include: nowhere.yaml\n", r"nowhere.yaml: file not found"),
    ("duplicate key", CONTRACT + "state: /tmp/x.db\n", r"feeds.yaml:13: state: duplicate key"),
    ("bad site rule", CONTRACT + "    clean_rules: [{hosts: ['*'], remove: ['div..x[']}]\n",
     r"feeds.yaml:13: sources\[0\]\.clean_rules: invalid cleaning rule: .*bad selector"),
    ("bad filter regex", CONTRACT + "    filters: [{drop: {title: '(unclosed'}}]\n",
     r"sources\[0\]\.filters.*invalid regular expression"),
]


# Hostile YAML (issue 20, items 7 and 8): refused with file:line, never a traceback or a hang.
BROKEN += [
    ("tag on a value", CONTRACT + "state: !!python/name:os.system\n",
     r"feeds.yaml:13: state: YAML tag !!python/name:os.system is not allowed"),
    ("tag on a key", CONTRACT + "!!python/name:os.system : x\n",
     r"feeds.yaml:13: YAML tag !!python/name:os.system is not allowed"),
    ("local tag", CONTRACT + "retention: !secret 5d\n", r"feeds.yaml:13: retention: YAML tag !secret is not allowed"),
    ("tag on a mapping", CONTRACT + "fetch: !!python/object:os.system {interval: 5m}\n",
     r"feeds.yaml:13: fetch: YAML tag !!python/object:os.system is not allowed"),
    ("set", CONTRACT + "fetch: !!set {interval}\n", r"feeds.yaml:13: fetch: YAML tag !!set is not allowed"),
    ("binary", CONTRACT + "state: !!binary aGk=\n", r"feeds.yaml:13: state: YAML tag !!binary is not allowed"),
    ("list as a key", CONTRACT + "? [a, b]\n: x\n", r"feeds.yaml:13: a key must be a plain value, got a list"),
    ("mapping as a nested key", CONTRACT + "fetch:\n  ? {a: 1}\n  : x\n",
     r"feeds.yaml:14: fetch: a key must be a plain value, got a mapping"),
    ("impossible date", CONTRACT + "retention: 2024-13-45\n",
     r"feeds.yaml:13: retention: '2024-13-45' is not a valid timestamp: month must be in 1..12"),
    ("int tag on a word", CONTRACT + "retention: !!int abc\n", r"feeds.yaml:13: retention: 'abc' is not a valid int"),
    ("merge key", CONTRACT + "fetch:\n  <<: {interval: 5m}\n",
     r"feeds.yaml:14: fetch: YAML merge keys \(<<\) are not supported"),
    ("recursive alias", CONTRACT + "filters: &x [*x]\n",
     r"feeds.yaml:13: this list or mapping contains a YAML alias to itself"),
    ("billion laughs", CONTRACT + laughs(10), r"feeds.yaml:13: YAML aliases copy more than 100,000 values"),
    ("deep nesting", CONTRACT + "x: " + "[" * 500 + "]" * 500 + "\n",
     r"feeds.yaml:13: lists and mappings nested deeper than 50 levels"),
]


@pytest.mark.parametrize(("name", "text", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_configs_exit_2_with_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      name: str, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    code = main(["run", "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(expected, err), err
    assert "Traceback" not in err
    assert len(err.splitlines()) < 25  # one screen
    assert [p.name for p in tmp_path.iterdir()] == ["feeds.yaml"]  # nothing written


def test_missing_config_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: file not found" in capsys.readouterr().err


def test_schema_accepts_bundled_config_and_rejects_typos(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    bundled = yaml.safe_load((ROOT / "config" / "feeds.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(bundled, schema)
    contract = yaml.safe_load(CONTRACT)
    jsonschema.validate(contract, schema)
    contract["output"]["max_entires"] = 5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(contract, schema)


def test_bundled_default_config_loads() -> None:
    config = load_config(ROOT / "config" / "feeds.yaml")
    assert len(config.categories) >= 3 and len(config.sources) >= 4
    for source in config.sources:
        assert Path(source.url).is_file(), source.url
