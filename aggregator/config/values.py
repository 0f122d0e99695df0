"""One config value checked against its kind (int, duration, path, ...), and the words for what was wrong.

The kinds are named in the dataclass metadata of aggregator.model (OutputConfig, FetchConfig, CleanConfig)
and in the category/source override table; convert() records a problem and returns INVALID instead of raising.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aggregator.text import parse_duration, parse_size

from .urls import scheme_of
from .yamlfile import Doc, Problems

INVALID = object()


def convert(doc: Doc, key_path: tuple[object, ...], value: Any, kind: str, base: Path,
            problems: Problems) -> Any:
    """Check one value against its kind; return the converted value or INVALID (problem recorded)."""
    try:
        return _CONVERTERS[kind](value, base)
    except ValueError as exc:
        problems.add(doc, key_path, str(exc))
        return INVALID


def _want_int(value: Any, _base: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {describe(value)}")
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {value}")
    return value


def _want_bool(value: Any, _base: Path) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {describe(value)}")
    return value


def _want_str(value: Any, _base: Path) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {describe(value)}")
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
        raise ValueError(f"expected a list of strings, got {describe(value)}")
    return list(value)


def _want_map(value: Any, _base: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {describe(value)}")
    return dict(value)


def _want_list(value: Any, _base: Path) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {describe(value)}")
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


def check_keys(doc: Doc, key_path: tuple[object, ...], body: Mapping[Any, Any], allowed: tuple[str, ...],
               problems: Problems) -> None:
    for key in body:
        if key not in allowed:
            problems.add(doc, key_path + (key,), f"unknown key{suggest(str(key), allowed)}")


def suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def type_name(value: Any) -> str:
    return {list: "a list", dict: "a mapping", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "nothing"}.get(type(value), type(value).__name__)


def describe(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return type_name(value)
    return f"{type_name(value)} {value!r}"
