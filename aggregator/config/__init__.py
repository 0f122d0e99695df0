"""YAML file -> validated, frozen Config. Owns every config rule; fetches and writes nothing.

All problems are collected and raised as one ConfigError, each line naming file, line and key:
    config/feeds.yaml:14: sources[3].categroy: unknown key (did you mean 'category'?)
Relative paths resolve against the folder of the file that names them.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator.errors import ConfigError
from aggregator.model import Category, CleanConfig, Config, FetchConfig, OutputConfig, Source
from aggregator.text import parse_duration, parse_size

from .urls import checked_http_url, looks_like_a_host, scheme_of
from .yamlfile import Doc, Problems, Reader, display, format_key, line_of

DEFAULT_CONFIG = "config/feeds.yaml"
SLUG_MAX = 100  # publish refuses longer file names; refusing them here keeps `check` honest
# match with fullmatch: `$` also matches before a final "\n" ("news\n" would pass .match)
SLUG = re.compile(rf"^[a-z0-9_-]{{1,{SLUG_MAX}}}$")
RESERVED_SLUGS = {"all"}  # all.atom is the combined feed

TOP_KEYS = ("output", "state", "fetch", "clean", "categories", "sources", "filters", "include", "retention",
            "health", "metrics", "burst_threshold", "lock_timeout")
CATEGORY_KEYS = ("title", "subtitle", "filters", "interval", "headers", "user_agent", "full_text", "clean_rules")
SOURCE_KEYS = ("url", "category", "name", "interval", "headers", "user_agent", "full_text", "filters", "clean_rules")
SECTIONS: dict[str, type] = {"output": OutputConfig, "fetch": FetchConfig, "clean": CleanConfig}


def load_config(path: str | Path = DEFAULT_CONFIG, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file (and its includes). Raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    config_path = Path(path).absolute()
    problems = Problems()
    reader = Reader(env, problems)
    root = reader.read(config_path)
    if root is None:
        raise ConfigError(problems.items)
    if not isinstance(root.data, dict):
        raise ConfigError(f"{display(config_path)}: expected a mapping of settings at the top, "
                          f"got {_type_name(root.data)}")
    base = config_path.parent
    _check_keys(root, (), root.data, TOP_KEYS, problems)
    documents = [root] + _read_includes(root, reader)

    output = _section(root, "output", OutputConfig, base, problems)
    fetch = _section(root, "fetch", FetchConfig, base, problems)
    clean = _section(root, "clean", CleanConfig, base, problems)
    state = _path_value(root, ("state",), base, problems, default="state/state.db")
    health = _path_value(root, ("health",), base, problems, default=str(Path(state).with_name("health.json")))
    metrics = _path_value(root, ("metrics",), base, problems, default="") if "metrics" in root.data else ""
    retention = _convert(root, ("retention",), root.data.get("retention", "180d"), "duration", base, problems)
    burst = _convert(root, ("burst_threshold",), root.data.get("burst_threshold", 20), "int", base, problems)
    lock_timeout = _convert(root, ("lock_timeout",), root.data.get("lock_timeout", 60), "duration", base, problems)
    filters = _rule_list(root, ("filters",), problems)

    categories: dict[str, Category] = {}
    category_defaults: dict[str, dict[str, Any]] = {}
    for doc in documents:
        _read_categories(doc, categories, category_defaults, problems)
    sources: list[Source] = []
    seen_urls: dict[str, str] = {}
    for doc in documents:
        _read_sources(doc, categories, category_defaults, seen_urls, sources, problems)
    if not categories and not problems.items:
        problems.add(root, ("categories",), "define at least one category")

    _check_clean_rules(root, ("clean", "rules"), clean.rules, problems)
    for doc in documents:
        for index, body in enumerate(doc.data.get("sources") or []):
            if isinstance(body, dict) and isinstance(body.get("clean_rules"), list):
                _check_clean_rules(doc, ("sources", index, "clean_rules"), body["clean_rules"], problems)
    if problems.items:
        raise ConfigError(problems.items)
    return Config(
        path=str(config_path), state=state, output=output, fetch=fetch, clean=clean,
        categories=categories, sources=tuple(sources), filters=filters,
        retention=float(retention) if retention is not _INVALID else 0.0, health=health, metrics=metrics,
        burst_threshold=int(burst) if burst is not _INVALID else 20,
        lock_timeout=float(lock_timeout) if lock_timeout is not _INVALID else 60.0,
    )


# --- includes ----------------------------------------------------------------------------


def _read_includes(root: Doc, reader: Reader) -> list[Doc]:
    problems = reader.problems
    raw = root.data.get("include")
    if raw is None:
        return []
    entries = raw if isinstance(raw, list) else [raw]
    docs: list[Doc] = []
    for i, entry in enumerate(entries):
        key = ("include", i) if isinstance(raw, list) else ("include",)
        if not isinstance(entry, str):
            problems.add(root, key, f"expected a file or folder path, got {_type_name(entry)}")
            continue
        target = (root.path.parent / entry).absolute()
        files = sorted(p for p in target.glob("*.y*ml") if p.is_file()) if target.is_dir() else [target]
        for file in files:
            doc = reader.read(file)
            if doc is None:
                continue
            if not isinstance(doc.data, dict):
                problems.items.append(f"{display(file)}: expected a mapping with 'sources' and/or 'categories', "
                                      f"got {_type_name(doc.data)}")
                continue
            _check_keys(doc, (), doc.data, ("categories", "sources"), problems)
            docs.append(doc)
    return docs


# --- sections driven by dataclass metadata ---------------------------------------------


def _section(doc: Doc, name: str, cls: type, base: Path, problems: Problems) -> Any:
    raw = doc.data.get(name)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.add(doc, (name,), f"expected a mapping, got {_describe(raw)}")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(doc, (name,), raw, tuple(fields), problems)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in fields:
            converted = _convert(doc, (name, key), value, fields[key].metadata["kind"], base, problems)
            if converted is not _INVALID:
                values[key] = converted
    if name == "output":
        values.setdefault("dir", os.path.normpath(base / "feeds"))
        _check_output(doc, values, problems)
    return cls(**values)


_INVALID = object()


def _convert(doc: Doc, key_path: tuple[object, ...], value: Any, kind: str, base: Path,
             problems: Problems) -> Any:
    """Check one value against its kind; return the converted value or _INVALID (problem recorded)."""
    try:
        return _CONVERTERS[kind](value, base)
    except ValueError as exc:
        problems.add(doc, key_path, str(exc))
        return _INVALID


def _want_int(value: Any, _base: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {_describe(value)}")
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {value}")
    return value


def _want_bool(value: Any, _base: Path) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _want_str(value: Any, _base: Path) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    return value


def _want_url(value: Any, _base: Path) -> str:
    text = _want_str(value, _base)
    scheme = scheme_of(text)
    if text and scheme not in ("http", "https"):
        raise ValueError(f"expected an http(s) URL, got {text!r}")
    return scheme + text[len(scheme):]  # schemes are case-insensitive: HTTPS:// is written https://


def _want_path(value: Any, base: Path) -> str:
    text = _want_str(value, base)
    if not text:
        raise ValueError("expected a path, got an empty string")
    return os.path.normpath(base / Path(text).expanduser())  # base is absolute: so is the result


def _want_strlist(value: Any, _base: Path) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {_describe(value)}")
    return list(value)


def _want_map(value: Any, _base: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {_describe(value)}")
    return dict(value)


def _want_list(value: Any, _base: Path) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {_describe(value)}")
    return list(value)


def _want_duration(value: Any, _base: Path) -> float | int:
    seconds = parse_duration(value)
    return int(seconds) if seconds == int(seconds) else seconds


def _want_size(value: Any, _base: Path) -> int:
    return parse_size(value)


_CONVERTERS = {
    "int": _want_int, "bool": _want_bool, "str": _want_str, "url": _want_url, "path": _want_path,
    "strlist": _want_strlist, "map": _want_map, "list": _want_list, "duration": _want_duration,
    "size": _want_size,
}

FORMATS = ("atom", "rss", "json")


def _check_output(doc: Doc, values: dict[str, Any], problems: Problems) -> None:
    for fmt in values.get("formats", []):
        if fmt not in FORMATS:
            problems.add(doc, ("output", "formats"), f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    base_url = values.get("base_url")
    if base_url is not None and not base_url:
        problems.add(doc, ("output", "base_url"), "must not be empty")
    if base_url and not base_url.endswith("/"):
        values["base_url"] = base_url + "/"
    hexo = values.get("hexo")
    if hexo:
        if not isinstance(hexo.get("dir"), str) or not hexo["dir"]:
            problems.add(doc, ("output", "hexo", "dir"), "missing key: the folder for Markdown posts")
        else:
            hexo["dir"] = os.path.normpath(doc.path.parent / hexo["dir"])


def _path_value(doc: Doc, key_path: tuple[str, ...], base: Path, problems: Problems, *, default: str) -> str:
    raw = doc.data.get(key_path[0], default)
    converted = _convert(doc, key_path, raw, "path", base, problems)
    return str((base / default).absolute()) if converted is _INVALID else str(converted)


def _rule_list(doc: Doc, key_path: tuple[object, ...], problems: Problems) -> tuple[dict[str, Any], ...]:
    raw = _get(doc.data, key_path)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        problems.add(doc, key_path, f"expected a list of rules (mappings), got {_describe(raw)}")
        return ()
    _compile_filter_rules(doc, key_path, raw, problems)
    return tuple(raw)


def _compile_filter_rules(doc: Doc, key_path: tuple[object, ...], rules: list[dict[str, Any]],
                          problems: Problems) -> None:
    """Let the filters module validate rule syntax, so config errors surface before any fetch."""
    try:
        from aggregator.filters import compile_filters
    except ImportError:  # filters stage not installed yet
        return
    where = f"{display(doc.path)}:{line_of(doc, key_path)}: {format_key(key_path)}"
    try:
        compile_filters(rules, where)
    except ConfigError as exc:
        problems.items.extend(exc.problems)


def _check_clean_rules(doc: Doc, key_path: tuple[object, ...], rules: Any, problems: Problems) -> None:
    """Site rules are compiled (selectors, regexes) now, so a typo is a config error, not a silent no-op."""
    if not rules:
        return
    from aggregator.clean import load_site_rules

    try:
        load_site_rules(rules)
    except (ValueError, TypeError) as exc:
        problems.add(doc, key_path, f"invalid cleaning rule: {exc}")


# --- categories and sources -------------------------------------------------------------

_OVERRIDE_KINDS = {"interval": "duration", "headers": "map", "user_agent": "str", "full_text": "bool",
                   "clean_rules": "list"}


def _read_categories(doc: Doc, categories: dict[str, Category], defaults: dict[str, dict[str, Any]],
                     problems: Problems) -> None:
    raw = doc.data.get("categories")
    if raw is None:
        return
    if not isinstance(raw, dict):
        problems.add(doc, ("categories",), f"expected a mapping of slug: {{title: ...}}, got {_describe(raw)}")
        return
    for slug, body in raw.items():
        key_path: tuple[object, ...] = ("categories", slug)
        if not isinstance(slug, str) or not SLUG.fullmatch(slug):
            problems.add(doc, key_path, slug_problem(slug))
            continue
        if slug in RESERVED_SLUGS:
            problems.add(doc, key_path, f"the slug {slug!r} is reserved for the combined feed")
            continue
        if slug in categories:
            problems.add(doc, key_path, "category defined twice")
            continue
        if body is None:
            body = {}
        if not isinstance(body, dict):
            problems.add(doc, key_path, f"expected a mapping with 'title', got {_describe(body)}")
            continue
        _check_keys(doc, key_path, body, CATEGORY_KEYS, problems)
        title = body.get("title", slug)
        subtitle = body.get("subtitle", "")
        for key, value in (("title", title), ("subtitle", subtitle)):
            if not isinstance(value, str):
                problems.add(doc, key_path + (key,), f"expected a string, got {_describe(value)}")
        defaults[slug] = _overrides(doc, key_path, body, problems)
        categories[slug] = Category(
            slug=slug, title=str(title), subtitle=str(subtitle),
            filters=_rule_list(doc, key_path + ("filters",), problems),
        )


def slug_problem(slug: object) -> str:
    """What is wrong with a slug that SLUG.fullmatch refuses."""
    if isinstance(slug, str) and len(slug) > SLUG_MAX:
        return f"category slug of {len(slug)} characters: at most {SLUG_MAX}"
    return "unsafe category slug: use only lower-case a-z, 0-9, '_' and '-'"


def _overrides(doc: Doc, key_path: tuple[object, ...], body: Mapping[str, Any],
               problems: Problems) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, kind in _OVERRIDE_KINDS.items():
        if key in body:
            converted = _convert(doc, key_path + (key,), body[key], kind, doc.path.parent, problems)
            if converted is _INVALID:
                continue
            if key == "headers" and not all(isinstance(v, (str, int)) for v in converted.values()):
                problems.add(doc, key_path + (key,), "header values must be strings")
                continue
            values[key] = converted
    return values


def _read_sources(doc: Doc, categories: Mapping[str, Category], category_defaults: Mapping[str, dict[str, Any]],
                  seen_urls: dict[str, str], out: list[Source], problems: Problems) -> None:
    raw = doc.data.get("sources")
    if raw is None:
        return
    if not isinstance(raw, list):
        problems.add(doc, ("sources",), f"expected a list of sources, got {_describe(raw)}")
        return
    shown = display(doc.path)
    for index, body in enumerate(raw):
        source = _read_source(doc, index, body, categories, category_defaults, problems)
        if source is None:
            continue
        if source.url in seen_urls:
            problems.add(doc, ("sources", index, "url"), f"duplicate URL, already listed at {seen_urls[source.url]}")
            continue
        seen_urls[source.url] = f"{shown}:{line_of(doc, ('sources', index))}"
        out.append(source)


def _read_source(doc: Doc, index: int, body: Any, categories: Mapping[str, Category],
                 category_defaults: Mapping[str, dict[str, Any]], problems: Problems) -> Source | None:
    key_path: tuple[object, ...] = ("sources", index)
    if isinstance(body, str):
        problems.add(doc, key_path, "expected a mapping with 'url' and 'category', got a string")
        return None
    if not isinstance(body, dict):
        problems.add(doc, key_path, f"expected a mapping with 'url' and 'category', got {_describe(body)}")
        return None
    before = len(problems.items)
    _check_keys(doc, key_path, body, SOURCE_KEYS, problems)
    url = _source_url(doc, key_path, body, problems)
    slugs = _source_categories(doc, key_path, body, categories, problems)
    name = body.get("name", "")
    if not isinstance(name, str):
        problems.add(doc, key_path + ("name",), f"expected a string, got {_describe(name)}")
    own = _overrides(doc, key_path, body, problems)
    filters = _rule_list(doc, key_path + ("filters",), problems)
    if len(problems.items) > before or url is None or not slugs:
        return None
    merged: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for slug in slugs:  # category defaults, then the source's own values win
        merged.update({k: v for k, v in category_defaults.get(slug, {}).items() if k != "headers"})
        headers.update({str(k): str(v) for k, v in category_defaults.get(slug, {}).get("headers", {}).items()})
    merged.update({k: v for k, v in own.items() if k != "headers"})
    headers.update({str(k): str(v) for k, v in own.get("headers", {}).items()})
    if merged.get("full_text"):  # refused here rather than teasers kept silently at run time
        from aggregator.fulltext import missing_extractor

        if missing := missing_extractor():
            problems.add(doc, key_path + ("full_text",), missing)
    return Source(
        url=url, categories=tuple(slugs), name=str(name).strip(),
        interval=int(merged["interval"]) if "interval" in merged else None,
        headers=tuple(sorted(headers.items())), user_agent=merged.get("user_agent", ""),
        full_text=bool(merged.get("full_text", False)), filters=filters,
        clean_rules=tuple(merged.get("clean_rules", ())),
    )


def _source_url(doc: Doc, key_path: tuple[object, ...], body: Mapping[str, Any], problems: Problems) -> str | None:
    if "url" not in body:
        problems.add(doc, key_path, "missing key: url")
        return None
    url = body["url"]
    if not isinstance(url, str) or not url.strip():
        problems.add(doc, key_path + ("url",), f"expected an http(s) URL or a file path, got {_describe(url)}")
        return None
    url = url.strip()
    scheme = scheme_of(url)
    try:
        if scheme in ("http", "https"):
            return checked_http_url(url)
        if scheme == "file":
            return str(Path(urlsplit(url).path).absolute())
        if scheme:
            hint = f" (did you mean 'http://{url}'?)" if re.match(r"[^:]+:[0-9]+(/|$)", url) else ""
            raise ValueError(f"expected an http(s) URL or a file path, got {url!r}{hint}")
        return _local_path(doc, url)
    except ValueError as exc:
        problems.add(doc, key_path + ("url",), str(exc))
        return None


def _local_path(doc: Doc, value: str) -> str:
    """A scheme-less value is a file path, unless it reads as a URL that lost its scheme."""
    path = os.path.normpath(doc.path.parent / Path(value).expanduser())
    if value.startswith("//") or (looks_like_a_host(value) and not os.path.exists(path)):
        bare = value.lstrip("/")
        raise ValueError(f"{value!r} has no scheme: write 'https://{bare}' for a URL, or './{bare}' for a file "
                         "beside the config")
    return path


def _source_categories(doc: Doc, key_path: tuple[object, ...], body: Mapping[str, Any],
                       categories: Mapping[str, Category], problems: Problems) -> list[str]:
    if "category" not in body:
        problems.add(doc, key_path, "missing key: category")
        return []
    raw = body["category"]
    slugs = [raw] if isinstance(raw, str) else raw
    if not isinstance(slugs, list) or not slugs or not all(isinstance(s, str) for s in slugs):
        problems.add(doc, key_path + ("category",), f"expected a category slug or a list of slugs, got {_describe(raw)}")
        return []
    good: list[str] = []
    for slug in slugs:
        if slug not in categories:
            hint = _suggest(slug, categories)
            problems.add(doc, key_path + ("category",), f"undefined category {slug!r}{hint}")
        elif slug not in good:
            good.append(slug)
    return good if len(good) == len(set(slugs)) else []


# --- small helpers ----------------------------------------------------------------------


def _check_keys(doc: Doc, key_path: tuple[object, ...], body: Mapping[Any, Any], allowed: tuple[str, ...],
                problems: Problems) -> None:
    for key in body:
        if key not in allowed:
            problems.add(doc, key_path + (key,), f"unknown key{_suggest(str(key), allowed)}")


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _get(data: Any, key_path: tuple[object, ...]) -> Any:
    for key in key_path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def _type_name(value: Any) -> str:
    return {list: "a list", dict: "a mapping", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "nothing"}.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return _type_name(value)
    return f"{_type_name(value)} {value!r}"


def config_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the config file, built from the same tables the loader uses."""
    kind_schema: dict[str, dict[str, Any]] = {
        "int": {"type": "integer", "minimum": 0}, "bool": {"type": "boolean"}, "str": {"type": "string"},
        "url": {"type": "string", "format": "uri"}, "path": {"type": "string"},
        "strlist": {"type": "array", "items": {"type": "string"}}, "map": {"type": "object"},
        "list": {"type": "array"},
        "duration": {"anyOf": [{"type": "number", "minimum": 0},
                               {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|min|h|d|w)?\s*$"}]},
        "size": {"anyOf": [{"type": "integer", "minimum": 0},
                           {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kmg]i?b?|b)?\s*$"}]},
    }

    def section(cls: type) -> dict[str, Any]:
        props = {f.name: {**kind_schema[f.metadata["kind"]], "description": f.metadata["doc"]}
                 for f in dataclasses.fields(cls)}
        return {"type": "object", "additionalProperties": False, "properties": props}

    rules = {"type": "array", "items": {"type": "object"}, "description": "filter rules: {keep|drop: {field: regex}}, "
             "{max_age: duration}, {min_length: n}"}
    overrides = {k: kind_schema[v] for k, v in _OVERRIDE_KINDS.items()}
    category = {"type": "object", "additionalProperties": False,
                "properties": {"title": {"type": "string"}, "subtitle": {"type": "string"}, "filters": rules,
                               **overrides}}
    source = {"type": "object", "additionalProperties": False, "required": ["url", "category"],
              "properties": {"url": {"type": "string", "description": "http(s) URL or a local file path"},
                             "category": {"anyOf": [{"type": "string", "pattern": SLUG.pattern},
                                                    {"type": "array", "items": {"type": "string",
                                                                                "pattern": SLUG.pattern}}]},
                             "name": {"type": "string"}, "filters": rules, **overrides}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "aggregator configuration",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **{name: section(cls) for name, cls in SECTIONS.items()},
            "state": {"type": "string", "description": "the SQLite state file"},
            "categories": {"type": "object", "propertyNames": {"pattern": SLUG.pattern},
                           "additionalProperties": category},
            "sources": {"type": "array", "items": source},
            "filters": rules,
            "retention": {**kind_schema["duration"], "description": "how long state keeps unpublished articles"},
            "burst_threshold": {"type": "integer", "minimum": 0,
                                "description": "old-dated new articles from one source in one run before they "
                                               "are held back"},
            "lock_timeout": {**kind_schema["duration"], "description": "how long a run waits for another "
                                                                          "run's lock before exiting with code 3"},
            "health": {"type": "string", "description": "JSON health file written after each run"},
            "metrics": {"type": "string", "description": "Prometheus textfile-collector file"},
            "include": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                        "description": "more YAML files, or folders of them, holding categories and sources"},
        },
    }
