"""The JSON Schema of the config file (`aggregator schema`), built from the tables the loader uses."""

from __future__ import annotations

import dataclasses
from typing import Any

from .sections import SECTIONS
from .sources import OVERRIDE_KINDS, SLUG


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
    overrides = {k: kind_schema[v] for k, v in OVERRIDE_KINDS.items()}
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
            "state": {"type": "string", "description": "the SQLite state file, or a postgresql:// URL of the database to keep it in"},
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
