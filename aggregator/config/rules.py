"""Filter and cleaning rule lists in the config, compiled at load time so a typo is a config error."""

from __future__ import annotations

from typing import Any

from aggregator.errors import ConfigError
from aggregator.model import FilterSpec

from .values import describe
from .yamlfile import Doc, Problems, display, format_key, line_of


def rule_list(doc: Doc, key_path: tuple[object, ...], problems: Problems) -> tuple[FilterSpec, ...]:
    """The filter rules at key_path, checked, each with its file and line (what `--explain`, the run
    summary and the logs name a rule by)."""
    raw = _get(doc.data, key_path)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        problems.add(doc, key_path, f"expected a list of rules (mappings), got {describe(raw)}")
        return ()
    _compile_filter_rules(doc, key_path, raw, problems)
    return tuple(FilterSpec(rule, f"{doc.name or display(doc.path)}:{line_of(doc, key_path + (i,))}")
                 for i, rule in enumerate(raw))


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


def check_clean_rules(doc: Doc, key_path: tuple[object, ...], rules: Any, problems: Problems) -> None:
    """Site rules are compiled (selectors, regexes) now, so a typo is a config error, not a silent no-op."""
    if not rules:
        return
    from aggregator.clean import load_site_rules

    try:
        load_site_rules(rules)
    except (ValueError, TypeError) as exc:
        problems.add(doc, key_path, f"invalid cleaning rule: {exc}")


def _get(data: Any, key_path: tuple[object, ...]) -> Any:
    for key in key_path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data
