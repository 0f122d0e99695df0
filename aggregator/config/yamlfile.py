"""One YAML config file -> plain values with the line of every value; validates no config keys.

Only what a config needs gets through: strings, numbers, booleans, null, lists and mappings with
plain keys. Refused with file:line, never a traceback (issue 20, items 7 and 8): tags beyond those
types (`!!python/name:...`, `!foo`, `!!set`, merge keys `<<`), a list or mapping as a key, a value
its own tag cannot build (`2024-13-45`), nesting deeper than MAX_DEPTH, aliases that refer to
their own parent, and aliases that together copy more than ALIAS_BUDGET values, counted over the
file and its includes (a 418-byte "billion laughs" file would otherwise expand to gigabytes).

`${NAME}` in a string value is replaced from the environment; `$$` stands for a literal `$`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser (when PyYAML was built with it) is far faster for large source lists; same nodes, same marks
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ENV = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")  # `$$` (a literal $) or `${NAME}`
MAX_DEPTH = 50
ALIAS_BUDGET = 100_000  # values that aliases may copy in one load; shared filters for thousands of sources fit

_CORE = "tag:yaml.org,2002:"
_STR_TAG = _CORE + "str"
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MAP_TAG, _SEQ_TAG = _CORE + "map", _CORE + "seq"
_ONLY = "a config holds only strings, numbers, booleans, null, lists and mappings"
_REFUSED: Any = object()  # a value or key left out of the data; its problem is recorded


@dataclasses.dataclass
class Doc:
    """One YAML file as plain values, with the line of every value by its key path."""

    path: Path
    data: Any
    lines: dict[tuple[object, ...], int]
    name: str = ""  # how a filter rule's origin names the file: relative to the main config's folder


class Problems:
    """Every problem found in one load, each a line naming file:line and key."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, doc: Doc, key_path: tuple[object, ...], message: str) -> None:
        line = line_of(doc, key_path)
        where = f"{display(doc.path)}:{line}" if line else display(doc.path)
        key = format_key(key_path)
        self.items.append(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclasses.dataclass
class _Walk:
    """One file's walk over its node graph (ids are stable while the graph is alive)."""

    doc: Doc
    built: dict[int, Any] = dataclasses.field(default_factory=dict)  # nodes visited: a scalar's value
    parents: set[int] = dataclasses.field(default_factory=set)  # lists and mappings being built


class _Refused(Exception):
    """Stops reading a file whose values cannot be built (problem already recorded)."""


@dataclasses.dataclass
class Reader:
    """Reads the files of one load: shares the environment, the problems and the alias budget."""

    env: Mapping[str, str]
    problems: Problems
    copies_left: int = ALIAS_BUDGET

    def read(self, path: Path) -> Doc | None:
        """The file as plain values; None when it cannot be read at all (the problem is recorded)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problems.items.append(f"{display(path)}: file not found")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.items.append(f"{display(path)}: cannot read: {exc}")
            return None
        try:
            node = yaml.compose(text, Loader=_LOADER)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{display(path)}:{mark.line + 1}" if mark else display(path)
            reason = getattr(exc, "problem", None) or str(exc)
            self.problems.items.append(f"{where}: YAML syntax error: {reason}")
            return None
        except RecursionError:  # the pure-Python composer recurses per level; libyaml stops at its own limit
            self.problems.items.append(f"{display(path)}: YAML syntax error: exceeded maximum nesting depth")
            return None
        if node is None:
            self.problems.items.append(f"{display(path)}: the file is empty")
            return None
        walk = _Walk(Doc(path, None, {}))
        try:
            walk.doc.data = self._value(node, (), walk)
        except _Refused:
            return None
        return walk.doc

    def _value(self, node: yaml.Node, key_path: tuple[object, ...], walk: _Walk) -> Any:
        doc = walk.doc
        if id(node) in walk.built:  # a second visit: an alias copies this node
            self.copies_left -= 1
            if self.copies_left < 0:
                self._refuse(doc, node, f"YAML aliases copy more than {ALIAS_BUDGET:,} values (the last "
                                        "copy is of the anchor on this line); write the values out instead")
            if id(node) in walk.parents:
                self._refuse(doc, node, "this list or mapping contains a YAML alias to itself")
        if len(key_path) > MAX_DEPTH:  # the walk recurses per level; no config nests anywhere near this
            self._refuse(doc, node, f"lists and mappings nested deeper than {MAX_DEPTH} levels")
        doc.lines[key_path] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            if id(node) not in walk.built:  # built once: a long string is not copied (nor expanded) per alias
                value = self._scalar(node, key_path, doc)
                if isinstance(value, str) and "$" in value:
                    value = self._expand_env(value, key_path, doc)
                walk.built[id(node)] = value
            return walk.built[id(node)]
        walk.built[id(node)] = None
        if node.tag != (_MAP_TAG if isinstance(node, yaml.MappingNode) else _SEQ_TAG):
            self.problems.add(doc, key_path, f"YAML tag {_short(node.tag)} is not allowed: {_ONLY}")
            return _REFUSED
        walk.parents.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                items = (self._value(item, key_path + (i,), walk) for i, item in enumerate(node.value))
                return [item for item in items if item is not _REFUSED]
            return self._mapping(node, key_path, walk)
        finally:
            walk.parents.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, key_path: tuple[object, ...], walk: _Walk) -> dict[Any, Any]:
        doc = walk.doc
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                self.problems.items.append(f"{display(doc.path)}:{line}: {_key_or_file(key_path)}"
                                           f"a key must be a plain value, got a {kind}")
                continue
            key = self._scalar(key_node, key_path, doc)
            if key is _REFUSED:
                continue
            if key in result:
                doc.lines[key_path + (key,)] = line
                self.problems.add(doc, key_path + (key,), "duplicate key")
            value = self._value(value_node, key_path + (key,), walk)
            doc.lines[key_path + (key,)] = line
            if value is not _REFUSED:
                result[key] = value
        return result

    def _scalar(self, node: yaml.ScalarNode, key_path: tuple[object, ...], doc: Doc) -> Any:
        if node.tag == _STR_TAG:
            return node.value  # most values: what the constructor would return, without building one
        where = f"{display(doc.path)}:{node.start_mark.line + 1}: {_key_or_file(key_path)}"
        if node.tag == _CORE + "merge":
            self.problems.items.append(f"{where}YAML merge keys (<<) are not supported: write the keys out")
            return _REFUSED
        if node.tag not in _SCALAR_TAGS:
            self.problems.items.append(f"{where}YAML tag {_short(node.tag)} is not allowed: {_ONLY}")
            return _REFUSED
        try:  # a fresh constructor per other scalar: no state leaks between values
            return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            kind = node.tag.removeprefix(_CORE)
            self.problems.items.append(f"{where}{node.value!r} is not a valid {kind}: {exc}")
            return _REFUSED

    def _expand_env(self, value: str, key_path: tuple[object, ...], doc: Doc) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "$"
            if name not in self.env:
                self.problems.add(doc, key_path, f"environment variable ${{{name}}} is not set "
                                                 "(write $$ for a literal $)")
                return ""
            return self.env[name]

        return _ENV.sub(replace, value)

    def _refuse(self, doc: Doc, node: yaml.Node, message: str) -> None:
        self.problems.items.append(f"{display(doc.path)}:{node.start_mark.line + 1}: {message}")
        raise _Refused


def escape_env(text: str) -> str:
    """`text` as a config value that loads back unchanged: every `$` doubled, so no `${NAME}` expands."""
    return text.replace("$", "$$")


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _key_or_file(key_path: tuple[object, ...]) -> str:
    return f"{format_key(key_path)}: " if key_path else ""


def line_of(doc: Doc, key_path: tuple[object, ...]) -> int | None:
    while key_path not in doc.lines and key_path:
        key_path = key_path[:-1]
    return doc.lines.get(key_path)


def format_key(key_path: tuple[object, ...]) -> str:
    text = ""
    for key in key_path:
        name = str(key) if str(key).isprintable() else repr(key)  # a "news\n" key stays on its line
        text += f"[{key}]" if isinstance(key, int) else (f".{name}" if text else name)
    return text


def display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
