"""Every hostile vector comes out clean, judged by the corpus's own checker (issue 2 step 4, issue 4 Safety).

Policy note (hostile/xss/README.md asks for it): issue 4 keeps iframes from an allowlist of video hosts
(CleanConfig.iframe_hosts), sandboxed. With an empty allowlist the checker's strict policy holds with no
exception. With the default allowlist, the one item we drop on purpose is '<iframe' when every iframe left
is an https player from an allowlisted host carrying our sandbox attribute; every other item still holds.
"""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import pytest
from test_clean_support import CORPUS

from aggregator.clean import clean_article, clean_html
from aggregator.clean.sanitize import IFRAME_SANDBOX
from aggregator.model import Article, CleanConfig

XSS = CORPUS / "hostile" / "xss"
VECTORS = [json.loads(line) for line in XSS.joinpath("vectors.jsonl").read_text("utf-8").split("\n") if line.strip()]


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_clean", XSS / "check_clean.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK = _checker()
CONFIG = CleanConfig()
STRICT = CleanConfig(iframe_hosts=[])


def _only_allowed_iframes(cleaned: str) -> bool:
    """Every iframe is an https player on an allowlisted host with our sandbox (html5lib's view)."""
    import html5lib

    frag = html5lib.parseFragment(cleaned, container="div", treebuilder="etree", namespaceHTMLElements=False)
    frames = [el for el in frag.iter() if isinstance(el.tag, str) and el.tag.lower().endswith("iframe")]
    return all(
        el.tag == "iframe"
        and el.get("sandbox") == IFRAME_SANDBOX
        and any(el.get("src", "").startswith(f"https://{host}/") for host in CONFIG.iframe_hosts)
        for el in frames
    )


def test_corpus_is_all_there() -> None:
    assert len(VECTORS) == 630


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector_leaves_no_survivor(vector: dict[str, object]) -> None:
    html = str(vector["html"])
    strict = clean_html(html, "https://example.org/post/1", STRICT)
    assert CHECK.violations(strict, vector["must_not_contain"]) == []
    cleaned = clean_html(html, "https://example.org/post/1", CONFIG)
    found = CHECK.violations(cleaned, vector["must_not_contain"])
    if found == ["<iframe"] and _only_allowed_iframes(cleaned):
        found = []  # the documented policy exception above
    assert found == []
    # the article path (title and summary too) is as safe, and cleaning is idempotent on hostile input
    article = clean_article(
        Article(id="x", source_url="s", source_name="s", link="https://example.org/post/1", title=html,
                summary=html, content_html=html),
        CONFIG,
    )
    assert article.content_html == cleaned
    assert clean_html(cleaned, "https://example.org/post/1", CONFIG) == cleaned


def test_sanitizer_alone_is_safe_too() -> None:
    """The fallback when the DOM pass fails is the sanitizer alone: it must hold on its own."""
    from aggregator.clean.sanitize import sanitize

    survivors = [v["id"] for v in VECTORS if CHECK.violations(sanitize(str(v["html"])), v["must_not_contain"])]
    assert survivors == []
