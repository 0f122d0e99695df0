"""Dependencies are honest: every declared distribution is imported by the package, and everything the
package imports is declared (optional ones in their extra)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE = ROOT / "aggregator"


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _distributions_of(modules: set[str]) -> set[str]:
    mapping = packages_distributions()
    return {dist.lower().replace("_", "-") for m in modules for dist in mapping.get(m, ())}


def _imported_top_level_modules() -> set[str]:
    """Every top-level module the package's own code imports (the AST of every file)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"aggregator"}


def test_every_import_is_declared() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared = _names(PYPROJECT["project"]["dependencies"]) | _names(extras["fulltext"]) | _names(extras["postgres"])
    for module in _imported_top_level_modules():
        assert _distributions_of({module}) & declared, f"aggregator imports {module!r}, which no dependency declares"


def test_every_declared_dependency_is_imported_by_the_package() -> None:
    """Each declared distribution is imported by the package's code (lazily or not), or loaded when the
    package is, through the library that needs it (chardet by feedparser, cssselect by lxml.cssselect)."""
    script = (
        "import importlib, json, pkgutil, sys, aggregator\n"
        "for info in pkgutil.walk_packages(aggregator.__path__, 'aggregator.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                           check=True, cwd=ROOT).stdout))
    used = _distributions_of(loaded | _imported_top_level_modules())
    for name in sorted(_names(PYPROJECT["project"]["dependencies"])):
        assert name in used, f"{name} is declared but the package never imports it"


def test_full_text_extra_is_optional() -> None:
    """The base install never imports the fulltext extra's libraries on its own."""
    script = (
        "import importlib, json, pkgutil, sys, aggregator\n"
        "for info in pkgutil.walk_packages(aggregator.__path__, 'aggregator.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(json.dumps('trafilatura' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) is False


def test_postgres_extra_is_optional() -> None:
    """Only store.postgres and the worker package (`aggregator worker`, PostgreSQL only) import psycopg and
    procrastinate (a SQLite state never loads them), and a run opens them only for a postgresql:// state."""
    script = (
        "import importlib, json, pkgutil, sys, aggregator\n"
        "for info in pkgutil.walk_packages(aggregator.__path__, 'aggregator.'):\n"
        "    if info.name != 'aggregator.store.postgres' and not info.name.startswith('aggregator.worker'):\n"
        "        importlib.import_module(info.name)\n"
        "print(json.dumps(sorted({'psycopg', 'procrastinate'} & set(sys.modules))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []
