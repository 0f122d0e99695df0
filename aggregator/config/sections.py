"""The top-level settings sections (output, fetch, clean, dedup) filled from dataclass metadata, and path values."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from aggregator.model import CleanConfig, DedupConfig, FetchConfig, OutputConfig

from .values import INVALID, check_keys, convert, describe
from .yamlfile import Doc, Problems

SECTIONS: dict[str, type] = {"output": OutputConfig, "fetch": FetchConfig, "clean": CleanConfig, "dedup": DedupConfig}
FORMATS = ("atom", "rss", "json")


def section(doc: Doc, name: str, cls: type, base: Path, problems: Problems) -> Any:
    raw = doc.data.get(name)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.add(doc, (name,), f"expected a mapping, got {describe(raw)}")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_keys(doc, (name,), raw, tuple(fields), problems)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in fields:
            converted = convert(doc, (name, key), value, fields[key].metadata["kind"], base, problems)
            if converted is not INVALID:
                values[key] = converted
    if name == "output":
        values.setdefault("dir", os.path.normpath(base / "feeds"))
        _check_output(doc, values, problems)
    return cls(**values)


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


def path_value(doc: Doc, key_path: tuple[str, ...], base: Path, problems: Problems, *, default: str) -> str:
    raw = doc.data.get(key_path[0], default)
    converted = convert(doc, key_path, raw, "path", base, problems)
    return str((base / default).absolute()) if converted is INVALID else str(converted)
