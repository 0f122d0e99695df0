"""Appending one source to a config file as text: every byte already there stays (comments, order, quoting).

The new entry goes right after the last item of the main file's `sources:` list, indented like that item
(in a flow list `[...]`, as one more `{url: ..., category: ...}`), or into a new `sources:` list at the end
when the file has none. Includes are never edited. Values are written by the YAML emitter (quoted only
where YAML needs it) with every `$` doubled, so nothing in them reads as `${NAME}`. The result must load
with load_config and list the new source before it replaces the file (same folder, same mode, atomic
rename), so a failed append leaves the config as it was.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from aggregator.errors import ConfigError, naming

from .yamlfile import _LOADER, escape_env

_WIDE = 1 << 30  # never fold a long URL or name over lines


def append_source(config_path: str | Path, url: str, category: str, name: str = "") -> None:
    """Append `{url, category, name}` to the config's sources. Raises ConfigError, file untouched, when the
    result would not load."""
    path = Path(config_path)
    target = path.resolve()  # a symlinked config stays a symlink: its target is rewritten
    with naming(target):
        text = target.read_text(encoding="utf-8")
    entry = {"url": escape_env(url), "category": category}
    if name:
        entry["name"] = escape_env(name)
    try:
        new_text = text_with_source(text, entry)
    except ValueError as exc:
        raise ConfigError(f"{path}: not changed: {exc}; add the source by hand") from exc
    tmp = target.with_name(f".{target.name}.add-tmp")
    tmp.unlink(missing_ok=True)  # left by an add that was killed
    try:
        # created with the config's permissions: a config holding tokens may be readable by its owner only
        mode = stat.S_IMODE(target.stat().st_mode)
        with naming(tmp), os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as handle:
            handle.write(new_text.encode("utf-8"))
        _check_loads(tmp, url, path)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def text_with_source(text: str, entry: dict[str, str]) -> str:
    """`text` with `entry` appended to its top-level `sources:` list; the rest unchanged byte for byte.
    Raises ValueError when the file is shaped so that appending is not safe."""
    if "\r\n" in text:  # a file with Windows line ends gets them on the new lines too
        return text_with_source(text.replace("\r\n", "\n"), entry).replace("\n", "\r\n")
    root = yaml.compose(text, Loader=_LOADER)
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise ValueError("the config's top level is not a block mapping")
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "sources":
            if value.start_mark.index < key.end_mark.index:  # `sources: *alias`: the list lives elsewhere
                raise ValueError("`sources:` is a YAML alias")
            return _insert(text, key, value, entry)
    ending = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{ending}sources:\n{_block_item(entry, '  ', 2)}"


def names_includes(config_path: str | Path) -> bool:
    """Whether the config file has an `include:` key (appending never edits the included files)."""
    root = yaml.compose(Path(config_path).read_text(encoding="utf-8"), Loader=_LOADER)
    return isinstance(root, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value == "include" for k, _ in root.value)


def _insert(text: str, key: yaml.Node, value: yaml.Node, entry: dict[str, str]) -> str:
    if isinstance(value, yaml.SequenceNode) and not value.flow_style and value.value:
        last = value.value[-1]
        dash = text.rfind("-", 0, last.start_mark.index)
        dash_column = dash - (text.rfind("\n", 0, dash) + 1)
        same_line = "\n" not in text[dash:last.start_mark.index]
        gap = last.start_mark.column - dash_column if same_line else 2
        at = _line_end_after(text, _end_of(last))
        newline = "" if text[at - 1] == "\n" else "\n"  # the last item ends the file, without a newline
        return text[:at] + newline + _block_item(entry, " " * dash_column, gap) + text[at:]
    flow: str = yaml.safe_dump(entry, default_flow_style=True, allow_unicode=True, width=_WIDE, sort_keys=False)
    if isinstance(value, yaml.SequenceNode):  # a flow list: one more item before its `]`
        close = value.end_mark.index - 1
        before = text[value.start_mark.index + 1:close].rstrip()
        separator = "" if not before else " " if before.endswith(",") else ", "
        return text[:close] + separator + flow.strip() + text[close:]
    if isinstance(value, yaml.ScalarNode) and value.tag == "tag:yaml.org,2002:null":  # `sources:` or `~`
        start, end = value.start_mark.index, value.end_mark.index
        space = " " if text[start - 1:start] == ":" else ""
        return text[:start] + f"{space}[{flow.strip()}]" + text[end:]
    raise ValueError(f"line {key.start_mark.line + 1}: `sources:` is not a list")


def _block_item(entry: dict[str, str], indent: str, gap: int) -> str:
    """The entry as a block list item: `- url: ...` at `indent`, its keys `gap` columns after the dash."""
    dumped = yaml.safe_dump([entry], default_flow_style=False, allow_unicode=True, width=_WIDE, sort_keys=False)
    lines = dumped.splitlines()
    out = [indent + "-" + " " * (gap - 1) + lines[0][2:]]
    out += [indent + " " * gap + line[2:] for line in lines[1:]]
    return "\n".join(out) + "\n"


def _end_of(node: yaml.Node) -> int:
    """Where the last value inside `node` ends (a block mapping's own end mark is past trailing comments)."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return int(node.end_mark.index)


def _line_end_after(text: str, index: int) -> int:
    """The start of the line after the one `index` ends on (a value ending with its newline: `index`)."""
    if index > 0 and text[index - 1] == "\n":
        return index
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _check_loads(candidate: Path, url: str, shown: Path) -> None:
    from . import load_config
    from .urls import url_identity

    try:
        config = load_config(candidate)
    except ConfigError as exc:
        problems = [f"{shown}: not changed: with the new source it would not load:", *exc.problems]
        raise ConfigError(problems) from exc
    if not any(url_identity(s.url) == url_identity(url) for s in config.sources):
        raise ConfigError(f"{shown}: not changed: the new source did not land in its sources list; "
                          "add it by hand")
