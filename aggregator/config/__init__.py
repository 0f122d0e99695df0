"""YAML file -> validated, frozen Config: load_config reads it and its includes and assembles the parts.

All problems are collected and raised as one ConfigError, each line naming file, line and key:
    config/feeds.yaml:14: sources[3].categroy: unknown key (did you mean 'category'?)
Relative paths resolve against the folder of the file that names them.

The rules live beside it, one module per part of the file; none fetches or writes anything:
    yamlfile  reading YAML (with ${ENV} and line numbers) and collecting problems
    values    one value checked against its kind (int, duration, path, ...)
    sections  the output, fetch, clean and dedup sections and path settings
    rules     filter and cleaning rule lists
    sources   categories and sources (slugs, defaults, URLs)
    urls      which source strings are http(s) URLs and which are local paths
    schema    the JSON Schema of the file, from the same tables
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aggregator.errors import ConfigError
from aggregator.model import Category, CleanConfig, Config, DedupConfig, FetchConfig, OutputConfig, Source
from aggregator.state_location import is_database_url, local_base

from .rules import check_clean_rules, rule_list
from .schema import config_schema
from .sections import path_value, section
from .sources import SLUG, read_categories, read_sources, slug_problem
from .values import INVALID, check_keys, convert, type_name
from .yamlfile import Doc, Problems, Reader, display

__all__ = ["DEFAULT_CONFIG", "SLUG", "config_schema", "load_config", "slug_problem"]

DEFAULT_CONFIG = "config/feeds.yaml"
TOP_KEYS = ("output", "state", "fetch", "clean", "dedup", "categories", "sources", "filters", "include", "retention",
            "health", "metrics", "burst_threshold", "lock_timeout")


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
                          f"got {type_name(root.data)}")
    base = config_path.parent
    root.name = config_path.name
    check_keys(root, (), root.data, TOP_KEYS, problems)
    documents = [root] + _read_includes(root, reader)

    output = section(root, "output", OutputConfig, base, problems)
    fetch = section(root, "fetch", FetchConfig, base, problems)
    clean = section(root, "clean", CleanConfig, base, problems)
    dedup = section(root, "dedup", DedupConfig, base, problems)
    state = _state(root, base, problems)
    health = path_value(root, ("health",), base, problems, default=str(Path(local_base(state, str(config_path)))
                                                                        .with_name("health.json")))
    metrics = path_value(root, ("metrics",), base, problems, default="") if "metrics" in root.data else ""
    retention = convert(root, ("retention",), root.data.get("retention", "180d"), "duration", base, problems)
    burst = convert(root, ("burst_threshold",), root.data.get("burst_threshold", 20), "int", base, problems)
    lock_timeout = convert(root, ("lock_timeout",), root.data.get("lock_timeout", 60), "duration", base, problems)
    filters = rule_list(root, ("filters",), problems)

    categories: dict[str, Category] = {}
    category_defaults: dict[str, dict[str, Any]] = {}
    for doc in documents:
        read_categories(doc, categories, category_defaults, problems)
    sources: list[Source] = []
    seen_urls: dict[str, str] = {}
    for doc in documents:
        read_sources(doc, categories, category_defaults, seen_urls, sources, problems)
    if not categories and not problems.items:
        problems.add(root, ("categories",), "define at least one category")

    check_clean_rules(root, ("clean", "rules"), clean.rules, problems)
    for doc in documents:
        for index, body in enumerate(doc.data.get("sources") or []):
            if isinstance(body, dict) and isinstance(body.get("clean_rules"), list):
                check_clean_rules(doc, ("sources", index, "clean_rules"), body["clean_rules"], problems)
    if problems.items:
        raise ConfigError(problems.items)
    return Config(
        path=str(config_path), state=state, output=output, fetch=fetch, clean=clean,
        categories=categories, sources=tuple(sources), filters=filters,
        retention=float(retention) if retention is not INVALID else 0.0, health=health, metrics=metrics,
        burst_threshold=int(burst) if burst is not INVALID else 20,
        lock_timeout=float(lock_timeout) if lock_timeout is not INVALID else 60.0, dedup=dedup,
    )


# --- includes ----------------------------------------------------------------------------


def _state(root: Doc, base: Path, problems: Problems) -> str:
    """The state: a SQLite file (a path, relative to the config) or a PostgreSQL URL, kept as written."""
    raw = root.data.get("state")
    if isinstance(raw, str) and is_database_url(raw.strip()):
        return raw.strip()
    return path_value(root, ("state",), base, problems, default="state/state.db")


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
            problems.add(root, key, f"expected a file or folder path, got {type_name(entry)}")
            continue
        target = (root.path.parent / entry).absolute()
        files = sorted(p for p in target.glob("*.y*ml") if p.is_file()) if target.is_dir() else [target]
        for file in files:
            doc = reader.read(file)
            if doc is None:
                continue
            if not isinstance(doc.data, dict):
                problems.items.append(f"{display(file)}: expected a mapping with 'sources' and/or 'categories', "
                                      f"got {type_name(doc.data)}")
                continue
            check_keys(doc, (), doc.data, ("categories", "sources"), problems)
            doc.name = _name_within(file, root.path.parent)
            docs.append(doc)
    return docs


def _name_within(path: Path, folder: Path) -> str:
    """`path` relative to `folder` when it is inside it (conf.d/news.yaml), else in full."""
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)
